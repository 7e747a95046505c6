"""A response that never came counts in TRT percentiles as the timeout: live line, records, summary, report."""

from __future__ import annotations

import io
import json

import pytest
from locust import User, constant, task
from locust.env import Environment
from locust.event import Events

from _report_helpers import Page, make_records, make_run
from dcc_capacity.load.callbacks import CallbackListener
from dcc_capacity.load.progress import Progress, snapshot
from dcc_capacity.load.records import RecordWriter
from dcc_capacity.model.nfr import Nfr
from dcc_capacity.report.build import build_report

pytestmark = pytest.mark.timeout(60)
TIMEOUT_S = 2.45  # not a round number: Locust's histogram would round 2450 ms down to 2400


class Idle(User):
    wait_time = constant(1)

    @task
    def t(self) -> None:
        pass


def _answer(rid: str) -> bytes:
    return (f"<sr:Response xmlns:sr='x'><sr:Header><sr:RequestID>{rid}</sr:RequestID>"
            f"<sr:ResponseCode>I0</sr:ResponseCode></sr:Header></sr:Response>").encode()


def _lose_five_of_100(listener: CallbackListener, records: RecordWriter | None, t0: float) -> None:
    """100 requests sent at t0; 95 answered after 100..570 ms, 5 never (declared missing by the sweeper)."""
    for i in range(100):
        rid = f"AA:BB:{i}"
        listener.expect(rid, label="4.6.1", intended_ts=t0, user_class="MeterReads", srv_variant="4.6.1", arrival=i)
        if records is not None:
            records.write_step(rid, "MeterReads", "4.6.1", "4.6.1", i, 0, t0, t0, t0 + 0.01, 10.0, 200, "pending", "")
    for i in range(95):
        listener.on_body(_answer(f"AA:BB:{i}"), t0 + 0.1 + i * 0.005)
    assert listener.expire(float("inf")) == 5  # the sweeper's call, as if the deadline had passed


def test_live_line_counts_missing_responses_at_the_timeout():
    env = Environment(user_classes=[Idle], events=Events())
    env.create_local_runner()
    listener = CallbackListener(env, late_after_s=1.0, missing_after_s=TIMEOUT_S)
    p = Progress(env, [Nfr(id="TRT-P99", metric="trt_ms", stat="p99", max=TIMEOUT_S * 1000 - 1),
                       Nfr(id="TRT-P95", metric="trt_ms", stat="p95", max=1000)], interval=10, stream=io.StringIO())
    p._start()
    _lose_five_of_100(listener, None, p._t0)
    s = snapshot(env.stats)
    assert s.n("TRT") == 100 and s.f("TRT") == 5
    assert s.tally("TRT").stat("p99") >= TIMEOUT_S * 1000  # 2600: the timeout's bucket, rounded up
    assert s.tally("TRT").stat("p95") <= 600  # the 95 answered ones: 100..570 ms
    line = p.line(now=p._t0 + 10)
    p._stop()
    assert "NFR 1 ok, 1 FAIL (TRT-P99)" in line  # without the missing ones p99 would be ~570 ms: a pass


def test_summary_and_report_tables_count_missing_responses_at_the_timeout(tmp_path):
    run = make_run(tmp_path / "run", records=make_records(n=0))  # run.json, plan, NFRs; the records come next
    start = 1_764_000_000.0 + 60
    with RecordWriter(run, tag="listener-1", start_flusher=False) as w:
        listener = CallbackListener(None, late_after_s=1.0, missing_after_s=TIMEOUT_S, records=w)
        _lose_five_of_100(listener, w, start)
    outcome = build_report(run)
    doc = json.loads(outcome.summary.read_text())
    trt = doc["trt_ms"]
    assert (trt["count"], trt["missing"]) == (100, 5)
    assert trt["p99"] == pytest.approx(2450.0)  # 5 % missing: p99 is the (censored) timeout
    assert trt["max"] == pytest.approx(2450.0)
    # numpy "linear" p95 over 95 answered (100..570 ms) and 5 x 2450: between 570 and 2450 at 0.05
    assert trt["p95"] == pytest.approx(570 + 0.05 * (2450 - 570))
    assert trt["p50"] == pytest.approx(100 + 49.5 * 5)
    assert doc["by_srv"]["4.6.1"]["trt_ms"]["p99"] == pytest.approx(2450.0)
    row = Page(outcome.html).by_id("m-all-all")
    assert "2,450" in row.text_content() or "2450" in row.text_content()
