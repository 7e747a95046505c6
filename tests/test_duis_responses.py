"""DCC-signed responses: schema-valid, verifiable by signxml and by us; the client-side parser."""

from __future__ import annotations

import pytest
import signxml
from lxml import etree

from _emulator_helpers import SUPPLIER, pki
from dcc_capacity.duis.responses import (
    ResponseParseError,
    ResponseSigner,
    build_dcc_alert,
    build_device_alert,
    build_response,
    is_success,
    parse_response,
    payload_dsp_schedule_id,
    payload_gbcs,
    payload_local_command,
    payload_pre_command,
    s1sp_alert,
)
from dcc_capacity.duis.schema import schema_errors
from dcc_capacity.duis.verify import TrustStore, verify_enveloped

RID = f"{SUPPLIER}:00-DB-12-34-56-78-90-A0:1001"
RESPID = f"00-DB-12-34-56-78-90-A0:{SUPPLIER}:7"


@pytest.fixture(scope="module")
def signer():
    return ResponseSigner.from_credential(pki().dcc)


def _docs(signer):
    return {
        "ack": build_response(signer=signer, response_code="I99", srv="4.1", srv_variant="4.1.1", request_id=RID),
        "gbcs": build_response(signer=signer, response_code="I0", srv="4.1", srv_variant="4.1.1", request_id=RID,
                               payload=payload_gbcs(b"\x01\x02")),
        "precommand": build_response(signer=signer, response_code="I0", srv="7.1", srv_variant="7.1",
                                     request_id=RID, payload=payload_pre_command(b"pc")),
        "local": build_response(signer=signer, response_code="I0", srv="4.1", srv_variant="4.1.1", request_id=RID,
                                payload=payload_local_command(b"lc")),
        "schedule": build_response(signer=signer, response_code="I0", srv="5.1", srv_variant="5.1",
                                   request_id=RID, payload=payload_dsp_schedule_id(42)),
        "error": build_response(signer=signer, response_code="E050110", srv="5.1", srv_variant="5.1",
                                request_id=RID),
        "device_alert": build_device_alert(signer=signer, response_id=RESPID, alert_code="8f3e", gbcs=b"a"),
        "dcc_alert": build_dcc_alert(signer=signer, response_id=RESPID, dcc_alert_code="N999",
                                     alert=s1sp_alert(signer, code="S1VE12", request_id=RID, schedule_id=3)),
    }


def test_responses_verify_with_our_verifier(signer):
    trust = TrustStore.from_pki(pki())
    for name, doc in _docs(signer).items():
        assert verify_enveloped(doc, trust).signer.eui == "90-B3-D5-1F-30-00-00-02", name


def test_responses_verify_with_signxml(signer):
    cert = pki().dcc.cert_pem().decode()
    cfg = signxml.SignatureConfiguration(require_x509=False)
    for name, doc in _docs(signer).items():
        if name == "dcc_alert":
            continue  # nested S1SP signature: signxml picks the first Signature it meets
        signxml.XMLVerifier().verify(doc, x509_cert=cert, expect_config=cfg)


@pytest.mark.peer
def test_responses_validate_against_the_official_schema(signer, duis_xsd):
    for name, doc in _docs(signer).items():
        assert schema_errors(duis_xsd, etree.fromstring(doc)) == [], name


def test_parse_response_reads_every_kind(signer):
    d = {k: parse_response(v) for k, v in _docs(signer).items()}
    assert d["ack"].response_code == "I99" and d["ack"].correlation_id == RID and d["ack"].signed
    assert d["gbcs"].gbcs_payload == b"\x01\x02" and d["gbcs"].success
    assert d["precommand"].payload_kind == "PreCommand" and d["precommand"].gbcs_payload == b"pc"
    assert d["precommand"].gbcs_version == "3.0"
    assert d["schedule"].schedule_id == 42
    assert not d["error"].success and d["error"].response_code == "E050110"
    assert d["device_alert"].kind == "device_alert" and d["device_alert"].alert_code == "8F3E"
    assert d["device_alert"].correlation_id == f"{SUPPLIER}:00-DB-12-34-56-78-90-A0:7"
    assert d["dcc_alert"].s1sp_alert_code == "S1VE12"


def test_missing_response_code_parses_as_failure():
    doc = build_response(signer=None, response_code=None, srv="4.1", srv_variant="4.1.1", request_id=RID)
    r = parse_response(doc)
    assert r.response_code is None and not r.success and not r.signed


@pytest.mark.parametrize("bad", [b"", b"<x/>", b"<sr:Response xmlns:sr='urn:wrong'/>", b"\xff\xfe garbage",
                                 b"<!DOCTYPE a [<!ENTITY e 'x'>]><a>&e;</a>",
                                 b'<sr:Response xmlns:sr="http://www.dccinterface.co.uk/ServiceUserGateway"/>'])
def test_malformed_responses_raise_one_clear_error(bad):
    with pytest.raises(ResponseParseError):
        parse_response(bad)


def test_is_success():
    assert is_success("I0") and is_success("I99") and not is_success("E1") and not is_success(None)
