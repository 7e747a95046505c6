"""Failure modes from the seeds, each switched on alone: outage backlog, error bursts, missing codes,
SR 8.11 join time, the SECMP0192 S1SP alert, and alerts at a configured rate."""

from __future__ import annotations

import time

import httpx
import pytest

from _emulator_helpers import (
    ESME,
    PKI_DIR,
    S1_ESME,
    CallbackListener,
    blast,
    join_body,
    post,
    schedule_body,
    signed_request,
)
from _load_helpers import wait_until
from dcc_capacity.duis.responses import parse_response
from dcc_capacity.emulator import codes as C
from dcc_capacity.emulator import start_emulator

pytestmark = pytest.mark.quiet  # its figures depend on the CPU it gets (tests/_lanes.py)

FAST = {"device": {"dist": "fixed", "mean_ms": 5}, "critical": {"dist": "fixed", "mean_ms": 5}}


@pytest.fixture
def listener():
    cb = CallbackListener()
    yield cb
    cb.close()


def _emu(listener, **extra):
    cfg = {"port": 0, "pki_dir": str(PKI_DIR), "callback_url": listener.url, "capacity": {"device_delay": FAST}}
    cfg.update(extra)
    return start_emulator(cfg)


def _answers(listener, n: int) -> list:
    return [parse_response(b) for b in listener.wait_for(n)]


def test_outage_queues_requests_and_the_backlog_drains_after(listener):
    with _emu(listener, faults={"outage": {"enabled": True, "windows": [{"start_s": 0.8, "duration_s": 1.0}]}}) as emu:
        wait_until(lambda: emu.metrics()["outage"] == 1, 5.0, "the outage window opens")
        bodies = [signed_request("4.1.1") for _ in range(20)]
        results = blast(emu.path("S"), bodies, rate=100, connections=20)
        assert all(s == 200 for _, s, _ in results)             # nothing refused: they waited
        assert min(lat for _, _, lat in results) > 0.2          # ... until the window closed
        assert max(lat for _, _, lat in results) < 2.0
        assert len(_answers(listener, 20)) == 20                # and every async response followed
        m = emu.metrics()
        assert m["outage"] == 0 and m["queue_depth"] == 0


def test_error_burst_fails_a_share_of_device_requests(listener):
    burst = {"enabled": True, "every_s": 3600, "duration_s": 3600, "share": 1.0, "code": "E21"}
    with _emu(listener, faults={"error_bursts": burst}) as emu, httpx.Client() as c:
        for _ in range(5):
            assert parse_response(post(c, emu, "S", signed_request("4.1.1")).content).response_code == "I99"
        assert {a.response_code for a in _answers(listener, 5)} == {"E21"}


def test_missing_response_codes(listener):
    with _emu(listener, faults={"missing_response_code": {"enabled": True, "share": 1.0}}) as emu, \
            httpx.Client() as c:
        post(c, emu, "S", signed_request("4.1.1"))
        (a,) = _answers(listener, 1)
        assert a.response_code is None and not a.success and a.request_id


def test_sr_8_11_join_time_over_255_is_rejected_for_smets1(listener):
    with _emu(listener) as emu, httpx.Client() as c:
        for target, join in ((S1_ESME, 300), (S1_ESME, 255), (ESME, 300)):
            body = join_body("00-DB-51-00-00-00-00-09", join)
            r = post(c, emu, "S", signed_request("8.11", target=target, body=body))
            assert parse_response(r.content).response_code == "I99"
        got = {(a.request_id.split(":")[1], a.response_code) for a in _answers(listener, 3)}
        assert got == {(S1_ESME, C.E_PPMID_JOIN), (S1_ESME, "I0"), (ESME, "I0")}


def test_sr_8_11_join_limit_switched_off(listener):
    with _emu(listener, faults={"ppmid_join": {"enabled": False}}) as emu, httpx.Client() as c:
        post(c, emu, "S", signed_request("8.11", target=S1_ESME, body=join_body("00-DB-51-00-00-00-00-09", 900)))
        assert _answers(listener, 1)[0].response_code == "I0"


def test_invalid_smets1_cv9_combination_raises_the_s1sp_alert(listener):
    with _emu(listener, secmp0192={"s1sp_cv9_variants": ["4.6.1"]}) as emu, httpx.Client() as c:
        r = post(c, emu, "D", signed_request("5.1", body=schedule_body("4.3", S1_ESME)))
        ok = parse_response(r.content)
        assert ok.response_code == "I0" and ok.schedule_id
        (alert,) = _answers(listener, 1)
        assert alert.kind == "dcc_alert" and alert.alert_code == C.DCC_ALERT_S1SP
        assert alert.s1sp_alert_code == "S1VE12" and alert.correlation_id == ok.request_id


def test_device_alerts_arrive_at_the_configured_rate(listener):
    with _emu(listener, alerts={"enabled": True, "rate_per_s": 40}) as emu, httpx.Client() as c:
        post(c, emu, "S", signed_request("4.1.1"))      # the emulator learns a device and its supplier
        listener.wait_for(1)
        time.sleep(1.5)
        alerts = [parse_response(b) for b in list(listener.bodies)[1:]]
        assert all(a.kind == "device_alert" and a.alert_code for a in alerts)
        assert 25 <= len(alerts) <= 100                    # ~60 expected (Poisson)
        assert {a.correlation_id.split(":")[1] for a in alerts} == {ESME}


def test_alert_rate_from_devices_and_time_scale():
    from dcc_capacity.emulator.config import AlertsConfig

    a = AlertsConfig(enabled=True, per_device_per_day=1, devices=86_400, time_scale=10)
    assert a.effective_rate() == pytest.approx(10.0)
