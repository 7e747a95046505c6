"""The emulator's gateway end to end over real HTTP: ack then callback, and one DUIS error per failed check."""

from __future__ import annotations

import base64
import time

import httpx
import pytest

from _emulator_helpers import (
    ESME,
    NETWORK_OP,
    OTHER_USER,
    PKI_DIR,
    S1_ESME,
    SUPPLIER,
    CallbackListener,
    next_counter,
    pki,
    post,
    schedule_body,
    sign,
    signed_request,
    unsigned_request,
)
from dcc_capacity.duis.responses import parse_response
from dcc_capacity.emulator import codes as C
from dcc_capacity.emulator import start_emulator
from dcc_capacity.model.catalogue import DCC_EUI

FAST = {"device": {"mean_ms": 10}, "critical": {"mean_ms": 10}}
WINDOW_S = 0.5


@pytest.fixture(scope="module")
def listener():
    cb = CallbackListener()
    yield cb
    cb.close()


@pytest.fixture(scope="module")
def emu(listener):
    with start_emulator({"port": 0, "pki_dir": str(PKI_DIR), "callback_url": listener.url,
                         "capacity": {"device_delay": FAST}, "counter_window_s": WINDOW_S}) as h:
        yield h


@pytest.fixture
def client():
    with httpx.Client(timeout=10) as c:
        yield c


def _code(resp: httpx.Response) -> str | None:
    return parse_response(resp.content).response_code


def test_device_request_is_acked_then_answered_at_the_callback(emu, listener, client):
    before = len(listener.bodies)
    req = signed_request("4.1.1")
    r = post(client, emu, "S", req)
    ack = parse_response(r.content)
    assert r.status_code == 200 and ack.response_code == "I99" and ack.signed
    bodies = listener.wait_for(before + 1)
    answers = [parse_response(b) for b in bodies[before:]]
    mine = [a for a in answers if a.request_id == ack.request_id]
    assert mine and mine[0].response_code == "I0" and mine[0].gbcs_payload
    assert mine[0].response_id.startswith(ESME)


def test_non_device_request_gets_a_final_synchronous_answer(emu, client):
    r = post(client, emu, "D", signed_request("12.2"))
    assert r.status_code == 200 and _code(r) == "I0"


def test_critical_round_trip_cv4_precommand_then_cv5(emu, listener, client):
    counter = next_counter()
    r = post(client, emu, "T", signed_request("7.1", counter=counter))
    pre = parse_response(r.content)
    assert pre.response_code == "I0" and pre.payload_kind == "PreCommand" and pre.gbcs_payload
    signed_pc = base64.b64encode(pre.gbcs_payload + b"\x00GBCS-SIGNATURE").decode()
    body = f"<sr:SignedPreCommand><sr:GBCSPayload>{signed_pc}</sr:GBCSPayload></sr:SignedPreCommand>"
    before = len(listener.bodies)
    r = post(client, emu, "S", signed_request("7.1", counter=counter, cv=5, body=body))
    assert _code(r) == "I99"
    answers = [parse_response(b) for b in listener.wait_for(before + 1)[before:]]
    assert any(a.request_id == pre.request_id and a.response_code == "I0" for a in answers)
    # the Pre-Command is consumed: the same CV 5 again is refused
    r = post(client, emu, "S", signed_request("7.1", counter=counter, cv=5, body=body))
    assert _code(r) == C.E_PRECOMMAND


def test_cv5_without_a_precommand(emu, client):
    body = "<sr:SignedPreCommand><sr:GBCSPayload>AAAA</sr:GBCSPayload></sr:SignedPreCommand>"
    assert _code(post(client, emu, "S", signed_request("7.1", cv=5, body=body))) == C.E_PRECOMMAND


@pytest.mark.parametrize("variant,service,cv,code", [
    ("4.1.1", "T", 1, C.E_URL),      # right CV, wrong URL
    ("12.2", "T", 8, C.E_URL),       # non-device SRV to the Transform service
    ("4.1.1", "S", 4, C.E_CV),       # non-critical SRV sent as critical
    ("7.1", "S", 1, C.E_CV),         # critical SRV without the Transform step
    ("12.2", "D", 1, C.E_CV),
    ("4.1.1", "S", 7, C.E_CV),       # DCC Boxed does not support CV 3/7
])
def test_wrong_url_or_command_variant(emu, client, variant, service, cv, code):
    assert _code(post(client, emu, service, signed_request(variant, cv=cv))) == code


def test_role_not_eligible_for_the_srv(emu, client):
    # 7.1 Enable Supply is for Import Suppliers; the Network Operator (ED, GT) may not send it.
    r = post(client, emu, "T", signed_request("7.1", originator=NETWORK_OP))
    assert _code(r) == C.E_ROLE_SRV


def test_other_user_role_may_send_what_it_is_eligible_for(emu, client):
    r = post(client, emu, "D", signed_request("12.2", originator=OTHER_USER))
    assert _code(r) == "I0"


def test_signer_is_not_the_originator(emu, client):
    forged = sign(unsigned_request("4.1.1", originator=SUPPLIER), pki().credential("90-B3-D5-1F-30-04-00-00"))
    assert _code(post(client, emu, "S", forged)) == C.E_ROLE_USER


def test_tampered_signature(emu, client):
    req = signed_request("4.1.1").replace(b"4.1.1</sr:ServiceReferenceVariant>",
                                          b"4.1.1</sr:ServiceReferenceVariant> ", 1)
    assert _code(post(client, emu, "S", req)) == C.E_SIGNATURE


def test_unsigned_request(emu, client):
    assert _code(post(client, emu, "S", unsigned_request("4.1.1"))) == C.E_SIGNATURE


def test_unknown_certificate(emu, client, tmp_path):
    from dcc_capacity.duis.pki import TestPKI

    stranger = TestPKI.load_or_create(tmp_path / "other-pki")
    req = sign(unsigned_request("4.1.1"), stranger.credential(SUPPLIER))
    assert _code(post(client, emu, "S", req)) == C.E_UNKNOWN_CERT


def test_replayed_request_id(emu, client):
    req = signed_request("4.1.1")
    assert _code(post(client, emu, "S", req)) == "I99"
    assert _code(post(client, emu, "S", req)) == C.E_REPLAY


def test_old_counter_is_refused_but_small_reordering_is_not(emu, client):
    n = next_counter() + 10
    first, late, later, after, stale = (signed_request("4.1.1", counter=c) for c in (n, n - 1, n - 2, n + 1, 1))
    assert _code(post(client, emu, "S", first)) == "I99"
    assert _code(post(client, emu, "S", late)) == "I99"          # overtaken by n, but within the window
    assert _code(post(client, emu, "S", late)) == C.E_REPLAY     # a replay inside the window
    time.sleep(WINDOW_S + 0.1)
    assert _code(post(client, emu, "S", after)) == "I99"
    assert _code(post(client, emu, "S", later)) == C.E_REPLAY    # never seen, but n arrived > WINDOW_S ago
    assert _code(post(client, emu, "S", stale)) == C.E_REPLAY
    assert _code(post(client, emu, "S", first)) == C.E_REPLAY    # a replay after the window: still refused


def test_body_too_large(emu, client):
    r = post(client, emu, "S", b"<a>" + b"x" * (300 * 1024) + b"</a>")
    assert r.status_code == 413 and _code(r) == C.E_TOO_LARGE


def test_malformed_and_wrong_namespace(emu, client):
    r = post(client, emu, "S", b"<sr:Request")
    assert r.status_code == 400 and _code(r) == C.E_MALFORMED
    wrong = unsigned_request("4.1.1").replace(b"http://www.dccinterface.co.uk/ServiceUserGateway", b"urn:other")
    assert _code(post(client, emu, "S", wrong)) == C.E_MALFORMED


def test_structural_checks_without_a_schema(emu, client):
    bad_variant = signed_request("4.1.1").replace(b">4.1.1<", b">4.1.9<")
    assert _code(post(client, emu, "S", bad_variant)) == C.E_SCHEMA
    no_dcc = signed_request("12.2", target=ESME)
    assert _code(post(client, emu, "D", no_dcc)) == C.E_SCHEMA


def test_secmp0192_schedule_of_4_3_smets2_rejected_smets1_accepted(emu, client):
    r = post(client, emu, "D", signed_request("5.1", body=schedule_body("4.3", ESME)))
    assert _code(r) == C.E_SECMP0192
    r = post(client, emu, "D", signed_request("5.1", body=schedule_body("4.4.3", ESME)))
    assert _code(r) == C.E_SECMP0192
    r = post(client, emu, "D", signed_request("5.1", body=schedule_body("4.3", S1_ESME)))
    ok = parse_response(r.content)
    assert ok.response_code == "I0" and ok.schedule_id and ok.schedule_id > 0
    assert ok.request_id.split(":")[1] == DCC_EUI


def test_unknown_paths_and_methods(emu, client):
    assert client.get(emu.url + "/nope").status_code == 404
    assert client.get(emu.path("S")).status_code == 405


def test_metrics_json_and_prometheus(emu, client):
    m = client.get(emu.url + "/metrics").json()
    assert {"cpu_percent", "rss_bytes", "queue_depth", "in_flight", "by_class", "totals"} <= set(m)
    assert set(m["by_class"]) >= {"critical", "device", "non_device"}
    assert m["totals"]["received"] > 0 and m["totals"]["rejected"] > 0
    text = client.get(emu.url + "/metrics?format=prometheus").text
    assert 'dcc_emulator_throttled_total{srv_class="device"}' in text
    assert "# TYPE dcc_emulator_rss_bytes gauge" in text


@pytest.mark.peer
def test_dcc_boxed_signed_request_is_acknowledged(listener, sign_wrap, client):
    cfg = {"port": 0, "pki_dir": str(PKI_DIR), "callback_url": listener.url,
           "trust_certs": [str(sign_wrap.user_cert())], "schema_path": str(sign_wrap.xsd),
           "capacity": {"device_delay": FAST}}
    with start_emulator(cfg) as h:
        done = sign_wrap.sign(unsigned_request("4.1.1"))
        assert done.returncode == 0, done.stderr.decode()
        r = post(client, h, "S", done.stdout)
        assert _code(r) == "I99", parse_response(r.content)
        # schema on: a schema-invalid (but signed) request is E41
        bad = signed_request("4.1.1", body="<sr:ReadInstantaneousImportRegisters><sr:Bogus/>"
                                           "</sr:ReadInstantaneousImportRegisters>")
        assert _code(post(client, h, "S", bad)) == C.E_SCHEMA
        # and a valid one signed by signxml with the test PKI still passes the schema
        assert _code(post(client, h, "S", signed_request("11.2"))) == "I99"
