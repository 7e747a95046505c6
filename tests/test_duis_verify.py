"""The fast enveloped-signature verifier against three independent signers, and hostile input."""

from __future__ import annotations

import pytest

from _emulator_helpers import SUPPLIER, pki, sign, signed_request, unsigned_request
from dcc_capacity.duis.pki import load_certificate
from dcc_capacity.duis.responses import ResponseSigner, build_response
from dcc_capacity.duis.verify import (
    SignatureError,
    TrustStore,
    UnknownSignerError,
    XmlError,
    cert_eui,
    normalise_dn,
    parse_hardened,
    verify_enveloped,
)


@pytest.fixture(scope="module")
def trust():
    return TrustStore.from_pki(pki())


def test_signxml_signed_request_verifies_and_names_the_signer(trust):
    v = verify_enveloped(signed_request("4.1.1"), trust)
    assert v.signer.eui == SUPPLIER
    assert v.signer.roles == frozenset({"IS", "GS"})
    assert v.root[-1].tag.endswith("}Signature")  # the document is left intact


def test_our_own_response_signer_verifies(trust):
    signer = ResponseSigner.from_credential(pki().dcc)
    doc = build_response(signer=signer, response_code="I0", srv="4.1", srv_variant="4.1.1",
                         request_id=f"{SUPPLIER}:00-DB-12-34-56-78-90-A0:1")
    assert verify_enveloped(doc, trust).signer.eui == "90-B3-D5-1F-30-00-00-02"


def test_tampering_is_caught(trust):
    doc = signed_request("4.1.1")
    with pytest.raises(SignatureError, match="digest"):
        verify_enveloped(doc.replace(b"4.1.1<", b"4.1.2<", 1), trust)


def test_unknown_certificate_is_its_own_error():
    with pytest.raises(UnknownSignerError):
        verify_enveloped(signed_request("4.1.1"), TrustStore())


def test_unsigned_document_is_refused(trust):
    with pytest.raises(SignatureError, match="no enveloped"):
        verify_enveloped(unsigned_request("4.1.1"), trust)


def test_wrong_key_for_the_named_certificate(trust):
    p = pki()
    cred = p.credential(SUPPLIER)
    other = p.credential("90-B3-D5-1F-30-04-00-00")
    forged = sign(unsigned_request("4.1.1"), type(cred)(key=other.key, cert=cred.cert, eui=cred.eui))
    with pytest.raises(SignatureError, match="does not verify"):
        verify_enveloped(forged, trust)


@pytest.mark.parametrize("a,b", [("CN=Z1, OU=07", "OU=07,CN=Z1"), ("cn=Z1,ou=07", "CN=Z1,OU=07"),
                                 ("2.5.4.3=Z1,OU=07", "CN=Z1, OU=07"), ('CN="Z1",OU=07', "CN=Z1,OU=07")])
def test_dn_spellings_normalise_alike(a, b):
    assert normalise_dn(a) == normalise_dn(b)


def test_dn_values_still_matter():
    assert normalise_dn("CN=Z1,OU=07") != normalise_dn("CN=Z2,OU=07")


@pytest.mark.parametrize("data", [
    b"", b"   ", b"<a>", b"not xml at all", b"<a></b>",
    b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>',
    b'<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><a>&lol2;</a>',
    b'<a xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="file:///etc/passwd"/></a>' + b"<",
])
def test_hostile_or_malformed_xml_is_an_xml_error(data):
    with pytest.raises(XmlError):
        parse_hardened(data)


def test_xinclude_is_never_processed():
    root = parse_hardened(b'<a xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="/etc/passwd"/></a>')
    assert b"root:" not in __import__("lxml.etree").etree.tostring(root)


@pytest.mark.peer
def test_dcc_boxed_signed_response_verifies(sign_wrap):
    """DCC Boxed's own signed response (its signer digests with inclusive C14N) verifies."""
    folder = sign_wrap.unpacked
    store = TrustStore()
    cert = load_certificate(folder / "Z1-accessControlBroker-ds.pem")
    store.add(cert)
    assert cert_eui(cert) == "90-B3-D5-1F-30-00-00-02"
    assert verify_enveloped((folder / "message.xml").read_bytes(), store).signer.serial == cert.serial_number


@pytest.mark.peer
def test_dcc_boxed_sign_tool_request_verifies(sign_wrap):
    store = TrustStore()
    store.add(load_certificate(sign_wrap.user_cert()), roles={"IS"})
    done = sign_wrap.sign(unsigned_request("4.1.1"))
    assert done.returncode == 0, done.stderr.decode()
    v = verify_enveloped(done.stdout, store)
    assert v.signer.eui == SUPPLIER
