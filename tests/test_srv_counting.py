"""A critical SRV is one request in summary.json and the report, however many steps (CV 4 + CV 5) it took."""

from __future__ import annotations

import json

import pytest

from _report_helpers import START, Page, make_records, make_run
from dcc_capacity.load.records import RecordWriter
from dcc_capacity.report.build import build_report

pytestmark = pytest.mark.timeout(60)
CRIT, READ = "6.15.1", "4.6.1"


def _write(w: RecordWriter) -> None:
    """40 critical SRV attempts (4 throttled at CV 4; of 36 CV 5s, 35 answered and 1 missing) + 60 meter reads.

    Each critical attempt: CV 4 due at t, acked at t+50 ms; CV 5 due at t+60 ms, acked at t+80 ms,
    answered at t+500 ms (the missing one: censored at the 2 s timeout, from the CV 5's own due time).
    """
    for i in range(40):
        t = START + 10 + i
        rid = f"90B3D51F30010000:00DB12345678900{i % 10}:{1000 + i}"
        if i < 4:
            w.write_step(rid, "Bau", CRIT, f"{CRIT} CV4", i, 0, t, t, t + 0.05, 50.0, 200, "throttled", "E48")
            continue
        w.write_step(rid, "Bau", CRIT, f"{CRIT} CV4", i, 0, t, t, t + 0.05, 50.0, 200, "ok", "")
        w.write_step(rid, "Bau", CRIT, f"{CRIT} CV5", i, 1, t + 0.06, t + 0.06, t + 0.08, 20.0, 200, "pending", "")
        if i == 39:
            w.write_callback(rid, "Bau", CRIT, f"{CRIT} CV5", i, 1, t + 0.06, float("nan"), 2000.0, "", "missing",
                             "no async response within 2 s")
        else:
            w.write_callback(rid, "Bau", CRIT, f"{CRIT} CV5", i, 1, t + 0.06, t + 0.5, 440.0, "I0", "ok", "")
    for i in range(60):
        t = START + 10 + i * 0.5
        rid = f"90B3D51F30010000:00DB123456789001:{5000 + i}"
        w.write_step(rid, "MeterReads", READ, READ, 100 + i, 0, t, t, t + 0.03, 30.0, 200, "pending", "")
        w.write_callback(rid, "MeterReads", READ, READ, 100 + i, 0, t, t + 0.3, 300.0, "I0", "ok", "")


def test_n_critical_srvs_are_n_requests_with_steps_kept_per_label(tmp_path):
    run = make_run(tmp_path / "run", records=make_records(n=0), duration_s=100.0)
    with RecordWriter(run, tag="gen-1", start_flusher=False) as w:
        _write(w)
    outcome = build_report(run)
    doc = json.loads(outcome.summary.read_text())
    assert doc["requests"] == 100  # 40 critical SRVs + 60 reads, not 40 + 36 + 60 step rows
    assert doc["offered_rate"] == pytest.approx(100 / 100.0)
    assert doc["outcomes"]["ok"] == 95 and doc["outcomes"]["throttled"] == 4 and doc["outcomes"]["missing"] == 1
    crit = doc["by_srv"][CRIT]
    assert (crit["requests"], crit["ok"], crit["failures"]) == (40, 35, 5)
    # ack from the CV 4 due time to the CV 5 ack: 80 ms (the 4 throttled ones: their CV 4 ack, 50 ms)
    assert crit["ack_ms"]["p50"] == pytest.approx(80.0) and crit["ack_ms"]["count"] == 40
    # TRT from the CV 4 due time: 60 + 440 = 500 ms; the missing one 60 + 2000 (censored)
    assert crit["trt_ms"]["p50"] == pytest.approx(500.0) and crit["trt_ms"]["max"] == pytest.approx(2060.0)
    assert crit["trt_ms"]["count"] == 36 and crit["trt_ms"]["missing"] == 1
    assert doc["by_class"]["Bau"]["requests"] == 40 and doc["by_srv"][READ]["requests"] == 60
    steps = doc["by_label"]
    assert steps[f"{CRIT} CV4"]["requests"] == 40 and steps[f"{CRIT} CV4"]["outcomes"]["throttled"] == 4
    assert steps[f"{CRIT} CV5"]["requests"] == 36 and steps[f"{CRIT} CV5"]["outcomes"]["missing"] == 1
    assert steps[f"{CRIT} CV5"]["ack_ms"]["p50"] == pytest.approx(20.0)  # a step is timed from its own due time
    assert steps[READ]["requests"] == 60
    page = Page(outcome.html)
    assert "100 requests (SRV attempts" in page.text
    table = page.by_id("t-label")
    assert f"{CRIT} CV4" in table.text_content() and f"{CRIT} CV5" in table.text_content()


def test_an_open_attempt_at_the_end_is_pending_and_a_batch_boundary_does_not_split_a_pair(tmp_path):
    run = make_run(tmp_path / "run", records=make_records(n=0), duration_s=100.0)
    with RecordWriter(run, tag="gen-1", start_flusher=False) as w:
        t = START + 5
        w.write_step("A:B:1", "Bau", CRIT, f"{CRIT} CV4", 1, 0, t, t, t + 0.05, 50.0, 200, "ok", "")
        w.flush()  # the CV 5 comes in a later batch
        w.write_step("A:B:1", "Bau", CRIT, f"{CRIT} CV5", 1, 1, t + 0.06, t + 0.06, t + 0.08, 20.0, 200, "pending", "")
        w.flush()
        w.write_callback("A:B:1", "Bau", CRIT, f"{CRIT} CV5", 1, 1, t + 0.06, t + 0.4, 340.0, "I0", "ok", "")
        w.write_step("A:B:2", "Bau", CRIT, f"{CRIT} CV4", 2, 0, t + 1, t + 1, t + 1.05, 50.0, 200, "ok", "")
    doc = json.loads(build_report(run, batch_rows=1).summary.read_text())
    assert doc["requests"] == 2
    assert doc["outcomes"]["ok"] == 1 and doc["outcomes"]["pending"] == 1
    assert doc["by_srv"][CRIT]["trt_ms"]["p50"] == pytest.approx(400.0)


def test_a_cv4_answer_without_a_precommand_is_an_error_step():
    from types import SimpleNamespace

    from dcc_capacity.load.openmodel import Step
    from dcc_capacity.load.users.base import DuisUser

    user = SimpleNamespace(throttle_codes=frozenset({429}), ctx=SimpleNamespace(response_trust=None),
                           kit=SimpleNamespace(paths={"S": "/api/v1/serviceS"}))
    head = b"<sr:Response xmlns:sr='x'><sr:Header><sr:ResponseCode>I0</sr:ResponseCode></sr:Header>"
    with_pc = head + b"<sr:Body><sr:ResponseMessage><sr:PreCommand><sr:GBCSPayload>AA==</sr:GBCSPayload>" \
                     b"</sr:PreCommand></sr:ResponseMessage></sr:Body></sr:Response>"
    cv4 = Step(f"{CRIT} CV4", "/api/v1/serviceT")
    assert DuisUser.classify_ack(user, cv4, 200, with_pc) == ("ok", "")
    assert DuisUser.classify_ack(user, cv4, 200, head + b"</sr:Response>") == (
        "error", "no PreCommand in the CV 4 answer")  # no CV 5 can follow: the SRV attempt failed here
    assert DuisUser.classify_ack(user, Step(READ, "/api/v1/serviceS"), 200, head + b"</sr:Response>") == ("ok", "")


def test_run_json_rates_count_the_same_srv_attempts(tmp_path):
    from dcc_capacity.orchestrate.finish import rates_from_records

    run = tmp_path / "run"
    with RecordWriter(run, tag="gen-1", start_flusher=False) as w:
        _write(w)
    _first, _last, counts = rates_from_records(run)
    assert counts["Bau"] == {"requests": 40, "ok": 35}  # 4 throttled at CV 4 count, as attempts that failed
    assert counts["MeterReads"] == {"requests": 60, "ok": 60}


def test_the_live_stats_count_the_same_srv_attempts():
    """Locust's stats of the same 100 attempts (as the load code names its entries): 100 offered, 95 achieved."""
    from locust.env import Environment
    from locust.event import Events

    from dcc_capacity.load.locuststats import read_stats

    env = Environment(events=Events())
    log = env.stats.log_request
    for i in range(40):
        log("ACK", f"{CRIT} CV4 ack", 50, 10)
        if i < 4:
            env.stats.log_error("ACK", f"{CRIT} CV4 ack", "E48 throttled")
            continue
        log("ACK", f"{CRIT} CV5 ack", 20, 10)
        log("TRT", f"{CRIT} CV5 TRT", 2000 if i == 39 else 440, 10)
    env.stats.log_error("TRT", f"{CRIT} CV5 TRT", "missing")
    for _ in range(60):
        log("ACK", f"{READ} ack", 30, 10)
        log("TRT", f"{READ} TRT", 300, 10)
    view = read_stats(env.stats)
    assert (view.offered, view.achieved, view.failed) == (100, 95, 5)  # summary.json: 100 requests, 95 ok
    assert view.n("ACK") == 136 and view.tally("ACK").percentile(0.5) == 30  # per exchange: 40 + 36 + 60 acks
    step = read_stats(env.stats, ("ACK",)).attempts  # the stress judgement's view: attempts and their acks
    assert (step.requests, step.failures) == (100, 4)
