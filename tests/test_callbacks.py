"""The callback listener: TRT from the intended send time, late/missing/unknown recorded, never dropped."""

from __future__ import annotations

import time

import gevent
import pytest
from geventhttpclient import HTTPClient
from locust.env import Environment
from locust.event import Events

from _load_helpers import ROOT, run_locust, stall_server
from dcc_capacity.load.callbacks import CallbackListener
from dcc_capacity.load.records import RecordWriter, load_records

pytestmark = pytest.mark.quiet  # its figures depend on the CPU it gets (tests/_lanes.py)


def response(rid: str, code: str = "I0") -> bytes:
    return (f"<sr:Response xmlns:sr='http://www.dccinterface.co.uk/ServiceUserGateway'><sr:Header>"
            f"<sr:RequestID>{rid}</sr:RequestID><sr:ResponseCode>{code}</sr:ResponseCode>"
            f"</sr:Header></sr:Response>").encode()


@pytest.fixture
def env_events():
    env = Environment(events=Events())
    seen: list[dict] = []
    env.events.request.add_listener(lambda **kw: seen.append(kw))
    return env, seen


@pytest.fixture
def listener(env_events, tmp_path):
    env, _ = env_events
    records = RecordWriter(tmp_path, tag="cb", start_flusher=False)
    lst = CallbackListener(env, late_after_s=0.5, missing_after_s=0.8, records=records, sweep_interval=0.05).start()
    yield lst
    lst.stop()
    records.close()


def post(url: str, body: bytes) -> int:
    client = HTTPClient.from_url(url)
    try:
        return client.post("/", body=body).status_code
    finally:
        client.close()


def test_response_resolves_the_waiter_with_trt_from_intended_time(listener, env_events, tmp_path):
    _, seen = env_events
    rid = "00-00-00-00-00-00-00-01:00-00-00-00-00-00-00-02:1000"
    p = listener.expect(rid, label="4.6.1", intended_ts=time.time() - 0.2, user_class="Reads", srv_variant="4.6.1")
    gevent.get_hub().loop.update_now()  # the loop's clock is cached: a stale one would fire the timer at once
    gevent.spawn_later(0.1, post, listener.url, response(rid))
    result = p.wait(timeout=5)
    assert result.outcome == "ok" and result.response_code == "I0" and rid.encode() in result.body
    assert 290 <= result.trt_ms < 1000  # 0.2 s before expect() + 0.1 s until the POST
    trt = [e for e in seen if e["request_type"] == "TRT"]
    assert trt[0]["name"] == "4.6.1 TRT" and trt[0]["exception"] is None
    assert trt[0]["response_time"] == pytest.approx(result.trt_ms)
    listener.records.flush()
    row = load_records(tmp_path, raw=True).iloc[0]
    assert row["kind"] == "callback" and row["request_id"] == rid and row["outcome"] == "ok"


def test_error_code_late_unknown_and_alert(listener, env_events):
    _, seen = env_events
    now = time.time()
    err = listener.expect("r-err", label="X", intended_ts=now)
    late = listener.expect("r-late", label="X", intended_ts=now - 0.6)  # already past late_after_s=0.5
    assert post(listener.url, response("r-err", "E51")) == 200
    post(listener.url, response("r-late"))
    post(listener.url, response("nobody-sent-this"))
    post(listener.url, b"<Alert><Code>0x8F84</Code></Alert>")
    assert err.wait(timeout=2).outcome == "error"
    assert late.wait(timeout=2).outcome == "late"
    assert listener.counts["unknown"] == 1 and listener.counts["alerts"] == 1 and listener.counts["late"] == 1
    kinds = {(e["request_type"], e["name"], type(e["exception"]).__name__) for e in seen}
    assert ("CALLBACK", "unknown RequestID", "UnknownRequestId") in kinds
    assert ("TRT", "X TRT", "LateResponse") in kinds
    assert ("ALERT", "alert", "NoneType") in kinds


def test_missing_is_declared_by_the_sweeper_and_a_later_arrival_becomes_late(listener, env_events, tmp_path):
    _, seen = env_events
    p = listener.expect("r-miss", label="Y", intended_ts=time.time(), step=2)
    result = p.wait(timeout=3)  # nobody answers: the sweeper resolves it after missing_after_s
    assert result.outcome == "missing"
    miss = [e for e in seen if e["name"] == "Y TRT"]
    assert len(miss) == 1 and type(miss[0]["exception"]).__name__ == "MissingResponse"
    assert miss[0]["response_time"] == 800  # the timeout, reported as a floor
    post(listener.url, response("r-miss"))
    assert listener.counts["after_missing"] == 1 and listener.counts["unknown"] == 0
    listener.records.write(request_id="r-miss", label="Y", step=2, intended_ts=0.0, outcome="pending")
    listener.records.flush()
    row = load_records(tmp_path).iloc[0]
    assert row["outcome"] == "late" and row["trt_ms"] > 800  # the real TRT survives in the records


@pytest.mark.slow
def test_headless_locust_run_records_trt_late_missing_and_journeys(tmp_path):
    """Real Locust, real HTTP: a server (Starlette/uvicorn) that POSTs the async response back later."""
    with stall_server() as url:
        r = run_locust(ROOT / "tests" / "_om_locustfile.py", url, tmp_path, seconds=4,
                       extra=["-u", "4", "-r", "10", "--trt-late", "1.0", "--trt-missing", "2.0", "--drain", "3"],
                       env={"OM_CLASSES": "Prompt,Slow,Silent,Journey"})
    assert r.returncode in (0, 1), r.stderr[-3000:]  # 1: Locust saw failures (the late and missing ones)
    df = load_records(tmp_path)
    req = df[df["kind"] == "request"]
    by = req.groupby("user_class")
    outcomes = {k: set(v) for k, v in by["outcome"].unique().items()}
    assert outcomes == {"Prompt": {"ok"}, "Slow": {"late"}, "Silent": {"missing"}, "Journey": {"ok"}}
    assert req[req.user_class == "Prompt"]["trt_ms"].between(295, 800).all()  # server waits 0.3 s
    assert req[req.user_class == "Slow"]["trt_ms"].between(1195, 1800).all()
    assert (req[req.user_class == "Silent"]["trt_ms"] == 2000.0).all()  # censored at --trt-missing
    # Journeys: step 1 is sent only after step 0's async response reached the listener.
    j = req[req.user_class == "Journey"]
    assert set(j["label"]) == {"J1", "J2"}
    pairs = j[j.step == 0].merge(j[j.step == 1], on=["process", "arrival"], suffixes=("_0", "_1"))
    assert len(pairs) > 5
    assert (pairs["intended_ts_1"] >= pairs["callback_ts_0"]).all()
    assert (pairs["request_id_0"] != pairs["request_id_1"]).all()
    stats = (tmp_path / "locust_stats.csv").read_text()
    for name in ("Prompt TRT", "Slow TRT", "Silent TRT", "Prompt ack", "J2 TRT"):
        assert f",{name}," in stats
