"""Holding the planned rate against systems that answer seconds later, or never (issue: real response times).

Rates here are measured where requests land (the SUT counts them) and from
send timestamps; planned times only say what was due.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import gevent
import pytest
from locust.env import Environment
from locust.event import Events

from _lanes import background, cli
from _load_helpers import ROOT, free_port, slow_sut
from dcc_capacity.load.adapters import TargetAdapter
from dcc_capacity.load.openmodel import OpenModelUser, Step
from dcc_capacity.load.records import load_records
from dcc_capacity.load.runcontext import MeasureConfig, install

pytestmark = pytest.mark.quiet  # in-process timing and a flood beside a run would starve it (tests/_lanes.py)

_ids = itertools.count(1)


def _step(label: str, **kw) -> Step:
    rid = f"90-B3-D5-1F-30-01-00-00:00-00-00-00-00-00-00-01:{next(_ids)}"
    return Step(label, "/api/v1/serviceS", body=f"<sr:RequestID>{rid}</sr:RequestID>".encode(), request_id=rid,
                expect_callback=True, **kw)


class Reads(OpenModelUser):
    """Single-SRV arrivals: nothing after the step looks at the response."""

    abstract = True
    rate = 100.0
    max_in_flight = 50

    def arrival(self):
        yield _step("read", needs_response=False)


class TwoStep(OpenModelUser):
    """Journeys whose second step needs the first one's response (parked in between)."""

    abstract = True
    rate = 100.0
    srvs_per_arrival = 2.0
    max_in_flight = 50

    def arrival(self):
        first = yield _step("j0")
        if first.ok:
            yield _step("j1", needs_response=False)


def sent_rate(ts) -> float:
    ts = ts.dropna().sort_values()
    return (len(ts) - 1) / (ts.iloc[-1] - ts.iloc[0])


@pytest.mark.slow
def test_awaited_responses_hold_no_slot_and_journeys_park_until_their_response(tmp_path):
    """50 HTTP slots per class, 100 SRV/s each, responses 0.5-1.5 s later: ~150 awaited at once, none dropped."""
    port = free_port()
    with slow_sut(tmp_path, callback_url=f"http://127.0.0.1:{port}/", delay=(0.5, 1.5)) as sut:
        env = Environment(user_classes=[Reads, TwoStep], events=Events(), host=sut.url)
        runner = env.create_local_runner()
        ctx = install(env, MeasureConfig(run_dir=tmp_path, callback_port=port, trt_late_s=5, trt_missing_s=5))
        runner.start(2, spawn_rate=100)
        gevent.sleep(4)
        peak_awaited = ctx.awaited
        runner.stop()  # the drain waits for what is still awaited
        drain = dict(ctx.drain)
        runner.quit()
        ctx.close()
    df = load_records(tmp_path)
    req = df[df["kind"] == "request"]
    assert (req["outcome"] == "dropped").sum() == 0
    assert peak_awaited > 110  # more than the 100 HTTP slots: awaiting a response holds none
    assert drain["at_stop"]["awaited"] > 30 and drain["closed_missing"] == 0 and drain["took_s"] < 5
    assert set(req["outcome"]) == {"ok"}  # every awaited response was correlated, none left pending
    assert sut.stats["requests"] == req["sent_ts"].notna().sum()  # what landed is what the records say was sent
    reads = req[req["user_class"] == "Reads"]
    assert sent_rate(reads["sent_ts"]) == pytest.approx(100, rel=0.05)
    j = req[req["user_class"] == "TwoStep"]
    starts = j[j["step"] == 0]
    assert sent_rate(starts["sent_ts"]) == pytest.approx(50, rel=0.05)  # journeys/s = SRV/s / 2, kept
    pairs = starts.merge(j[j["step"] == 1], on=["process", "arrival"], suffixes=("_0", "_1"))
    assert len(pairs) >= 0.9 * len(starts)  # the drain let the parked journeys finish
    assert (pairs["sent_ts_1"] >= pairs["callback_ts_0"]).all()  # step 1 only after step 0's response came
    lag = (req["sent_ts"] - req["intended_ts"]).dropna() * 1000
    assert (lag >= 0).all() and lag.quantile(0.5) < 10


def _single_srv_rate(target: float) -> tuple[float, tuple[str, ...]]:
    """The --rate that gives ``target`` SRV/s once the journey classes are left out (they need callbacks)."""
    from dcc_capacity.spec.resolve import TestSpec, resolve

    exclude = ("S2IcCredit", "S2IcPrepay", "S1MigrationCredit", "S1MigrationPrepay")
    full = sum(resolve(TestSpec(test="load", profile=str(ROOT / "volume_profiles" / "foc.yaml"))).rates.values())
    kept = sum(resolve(TestSpec(test="load", profile=str(ROOT / "volume_profiles" / "foc.yaml"),
                                exclude=exclude)).rates.values())
    return target * full / kept, exclude


def _silent_gateway(tmp: Path):  # noqa: ANN202 - a job (tests/_lanes.py)
    rate, exclude = _single_srv_rate(100.0)
    with slow_sut(tmp, stall=2.0, period=5.0) as sut:
        ran = yield cli(["run", "--test", "load", "--rate", f"{rate:.4f}", "--duration", "20s", "--host", sut.url,
                         "--exclude", ",".join(exclude), "--trt-late", "2s", "--trt-missing", "3s"], tmp / "silent",
                         timeout=120)
    return ran, sut


@pytest.mark.slow
@pytest.mark.timeout(300)
@background(_silent_gateway)
def test_a_gateway_that_acks_stalls_and_never_calls_back(background_run):
    """100 SRV/s for 20 s at a SUT that acks every request, stalls 2 s in every 5 s and never calls back.

    The SUT counts 2,000 +- 3 %, nothing is dropped, ack p99 shows the stall (theory from the planned send:
    P(ack > x) = (2 - x) / 5, p99 = 1.95 s), and every awaited response ends recorded missing after the drain.
    """
    p, sut = background_run
    out = p.out
    assert p.returncode == 1, p.stderr[-3000:]  # the NFRs fail (nothing answered); the run itself is valid
    assert sut.stats["requests"] == pytest.approx(2000, rel=0.03)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["valid"] is True and summary["outcomes"]["dropped"] == 0
    assert summary["send_lag_ms"]["p99"] < 50
    assert summary["ack_ms"]["p99"] >= 1500  # the stall, counted from the planned send
    assert summary["outcomes"]["pending"] == 0
    df = load_records(out)
    req = df[df["kind"] == "request"]
    missing = req[req["outcome"] == "missing"]
    assert len(missing) >= 0.7 * len(req)  # the device SRVs (meter reads, most of BAU): all awaited, none came
    assert missing["error"].str.contains("no async response|still awaited").all()
    assert (missing["trt_ms"] == 3000).all()  # counted as the timeout in the TRT percentiles
    assert summary["drain"]["awaited_at_stop"] > 100 and summary["drain"]["took_s"] <= 3.5
    assert sut.stats["requests"] == int(req["sent_ts"].notna().sum())
    assert "awaiting" in p.stderr and "send lag p99" in p.stderr  # the live line says what is outstanding
    assert "NO async response received yet" in p.stderr and "callback.public_url" in p.stderr  # and what to fix


@pytest.mark.slow
def test_a_generator_that_cannot_keep_up_makes_the_run_invalid(tmp_path):
    """20,000 SRV/s from one process is far beyond it: INVALID banner, valid false, exit 3."""
    out = tmp_path / "flood"
    with slow_sut(tmp_path) as sut:
        p = subprocess.run([sys.executable, "-m", "dcc_capacity", "run", "--test", "load", "--rate", "20000",
                            "--duration", "3s", "--host", sut.url, "--trt-late", "1s", "--trt-missing", "1s",
                            "--max-send-lag", "50", "--out", str(out)],
                           capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert p.returncode == 3, p.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["valid"] is False and summary["pass"] is False
    assert any("send lag p99" in r or "dropped" in r for r in summary["invalid_reasons"])
    html = (out / "report.html").read_text()
    assert 'id="invalid" class="banner INVALID"' in html and "not evidence (run INVALID)" in html
    assert "run INVALID" in p.stderr
    junit = (out / "junit.xml").read_text()
    assert 'type="run invalid"' in junit


def test_validity_is_judged_from_the_records_exactly(tmp_path):
    """Send lag percentiles from sent - intended over every request; drops or a late p99 make the run INVALID."""
    import numpy as np

    from _report_helpers import make_records, make_run
    from dcc_capacity.report.build import build_report

    rec = make_records(n=4000, duration_s=120.0)
    rng = np.random.default_rng(3)
    lag_ms = rng.exponential(2.0, len(rec))
    rec["sent_ts"] = rec["intended_ts"] + lag_ms / 1000
    ok_run = make_run(tmp_path / "ok", rec, duration_s=120.0)
    out = build_report(ok_run)
    doc = out.summary_doc
    assert doc["valid"] is True and doc["invalid_reasons"] == []
    as_recorded = (rec["sent_ts"] - rec["intended_ts"]).to_numpy() * 1000  # epoch floats: what an auditor gets
    assert doc["send_lag_ms"]["p99"] == pytest.approx(np.percentile(as_recorded, 99), rel=1e-9)
    assert doc["send_lag_ms"]["max"] == pytest.approx(as_recorded.max(), rel=1e-9)
    assert doc["send_lag_ms"]["limit"] == 50.0 and doc["send_lag_ms"]["limit_source"] == "project default"
    assert out.exit_code != 3 and 'class="banner INVALID"' not in out.html.read_text()

    bad = rec.copy()
    bad.loc[bad.index[:100], "sent_ts"] = bad["intended_ts"].iloc[:100] + 0.2  # 2.5 % of sends 200 ms late
    bad.loc[bad.index[-3:], ["outcome", "sent_ts", "error"]] = ["dropped", np.nan, "dropped: client saturated"]
    out = build_report(make_run(tmp_path / "bad", bad, duration_s=120.0,
                                validity={"max_send_lag_ms": 100.0, "max_send_lag_source": "the user's setting"}))
    doc = out.summary_doc
    assert out.exit_code == 3 and doc["valid"] is False and doc["pass"] is False and doc["dropped"] == 3
    assert doc["invalid_reasons"] == [
        "the generator dropped 3 arrivals (client saturated): load the plan asked for was never sent",
        "send lag p99 200.0 ms exceeds the 100 ms limit: the generator, not the system, was late"]
    assert doc["send_lag_ms"]["limit_source"] == "the user's setting"
    html = out.html.read_text()
    assert 'class="banner INVALID"' in html and "[INVALID]" in html and 'id="generator-table"' in html
    assert "not evidence (run INVALID)" in html
    assert 'type="run invalid"' in out.junit.read_text()


class AnswersBeforeTheAck(TargetAdapter):
    """An adapter whose SUT delivers the async response before the sender has even read the acknowledgement."""

    def send(self, step):
        self.settings.listener().resolve(step.request_id, b"<ResponseCode>I0</ResponseCode>", "I0")
        return 200, b"<sr:ResponseCode>I99</sr:ResponseCode>"


class EarlyTwoStep(TwoStep):
    abstract = True
    target_adapter = "test_pending:AnswersBeforeTheAck"


def test_a_response_that_beats_its_acknowledgement_still_resumes_the_journey(tmp_path):
    env = Environment(user_classes=[EarlyTwoStep], events=Events(), host="internal://early")
    runner = env.create_local_runner()
    ctx = install(env, MeasureConfig(run_dir=tmp_path, trt_late_s=5, trt_missing_s=5))
    runner.start(1, spawn_rate=10)
    gevent.sleep(1.0)
    runner.stop()
    drain = dict(ctx.drain)
    runner.quit()
    ctx.close()
    req = load_records(tmp_path)
    req = req[req["kind"] == "request"]
    starts, seconds = req[req["step"] == 0], req[req["step"] == 1]
    assert len(starts) >= 20 and len(seconds) >= len(starts) - 1  # every journey went on to its second step
    assert ctx.parked == 0 and drain["parked_left"] == 0 and drain["took_s"] < 1.0  # nothing stuck parked
    assert ctx.achieved["EarlyTwoStep"] == len(req[req["outcome"] == "ok"])
