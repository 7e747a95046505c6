"""SECMP0192 at midnight: the profile's scheduled SRVs, executed by the embedded emulator, TPS and TRT judged.

The figures: 2.7 million scheduled SRVs a day, 5 to 11 DLMS commands each (SECMP0192 PIA 3.1, 4.3); TPS =
(request + response + alert) / s against 450 (MP192-SA5); responses within 24 h (MP192-SA3). The window
(23:00-01:00) is the example profile's assumption. Time is compressed 1,800 times (a soak compresses its
slots the same way): the two-hour window passes in 4 s. The executions' responses go to the suite's callback
listener, whose records the report reads: NFR-0192-TRT is judged there, on the emulator's clock.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from pathlib import Path

import gevent
import httpx
import pandas as pd
import pytest

from _emulator_helpers import PKI_DIR, post, schedule_body, signed_request
from _lanes import Cli, Ran, background, cli
from dcc_capacity.duis.pki import TestPKI
from dcc_capacity.duis.responses import parse_response
from dcc_capacity.emulator import start_emulator
from dcc_capacity.emulator.schedules import execution_from_plan
from dcc_capacity.model.nfr import Nfr, judge, load_catalogue
from dcc_capacity.model.secmp0192 import Secmp0192Inputs, scheduled_load
from dcc_capacity.model.volume import load_plan
from dcc_capacity.spec.rates import class_rates

SCALE = 1800.0
SCHEDULES = 120
"""The profile's 2.7 million a day, scaled down for a bounded test (the ratio is what the test is about)."""


def test_the_profile_gives_the_seeds_figures():
    plan = load_plan("volume_profiles/foc-secmp0192.yaml")
    load = plan.secmp0192
    assert load is not None and load.srvs_per_day == 2_700_000
    assert load.dlms_per_day == (13_500_000, 29_700_000)  # PIA 4.3: "between 13.5million and 29.7million"
    assert load.window_s == 7200 and load.per_slot == {"night": 1_350_000, "day": 0, "evening": 1_350_000}
    assert load.window_srv_per_s == pytest.approx(375.0)
    section = plan.to_dict()["SECMP0192"]
    s1sp = section["tps"]["S1SP"]  # MP192-SA5: each SRV a request and a response, each alert one transaction
    assert s1sp["tps"] == pytest.approx(2 * (s1sp["srv_per_s"] + 375.0) + s1sp["alerts_per_s"])
    assert s1sp["limit"] == 450 and s1sp["within"] is (s1sp["tps"] <= 450)
    # The run's Secmp0192Schedules class sends the night slot's executions; BAU keeps its whole rate.
    rates = class_rates(plan, "S1SP", "night", secmp0192_share=0.02)
    assert rates["Secmp0192Schedules"] == pytest.approx(1_350_000 / 25_200 * 1.75 * 0.25)
    assert rates["Bau"] == pytest.approx(plan.row_rates("S1SP", "night")["bau"])
    assert "Secmp0192Schedules" not in class_rates(plan, "S1SP", "day")


def test_a_window_across_midnight_is_shared_by_the_slots_it_covers():
    load = scheduled_load(Secmp0192Inputs.model_validate(
        {"scheduled_srvs_per_day": 900.0, "dlms_commands_per_srv": {"min": 5, "max": 11},
         "execution_window": {"start": "18:00", "end": "07:30"}}))
    assert load.window_s == 13.5 * 3600 and load.slots() == ("night", "day", "evening")
    assert load.per_slot == pytest.approx({"night": 900 * 7 / 13.5, "day": 900 * 1.5 / 13.5,
                                           "evening": 900 * 5 / 13.5})


def _device(i: int) -> str:
    return f"00-DB-51-00-00-00-{i // 256:02X}-{i % 256:02X}"  # SMETS1 by the emulator's default prefix rule


def _midnight(tmp_path, listener, records):
    """Send the schedules (5.1s, recorded as the open model records them), let midnight pass, return /metrics."""
    plan = load_plan("volume_profiles/foc-secmp0192.yaml")
    execution = execution_from_plan(plan.secmp0192, clock_start="22:00", time_scale=SCALE)
    cfg = {"port": 0, "pki_dir": str(PKI_DIR), "secmp0192": {"execution": execution}, "callback_url": listener.url,
           # scheduled responses in minutes, not hours, so the bounded test sees them all (24 h is the bound)
           "capacity": {"device_latency": {"smets1": {"scheduled": {"p50_ms": 300_000, "p99_ms": 1_200_000}}}}}
    requests = [signed_request("5.1", body=schedule_body("4.3" if i % 2 else "4.4.3", _device(i)))
                for i in range(SCHEDULES)]  # signed before the emulator's clock starts
    with start_emulator(cfg) as emu, httpx.Client(timeout=10) as client:
        for i, body in enumerate(requests):
            sent = time.time()
            answer = post(client, emu, "D", body)
            ack = time.time()
            parsed = parse_response(answer.content)
            assert parsed.response_code == "I0" and parsed.schedule_id is not None
            # What Secmp0192Schedules does with the 5.1's answer: its executions' responses come back here.
            listener.expect_schedule(parsed.schedule_id, parsed.request_id, user_class="Secmp0192Schedules")
            records.write_step(parsed.request_id, "Secmp0192Schedules", "5.1", "5.1", i, 0, sent, sent, ack,
                               (ack - sent) * 1000, answer.status_code, "ok", "")
        clock = client.get(emu.url + "/metrics").json()["secmp0192"]["clock_s"]
        assert clock < 23 * 3600, f"the schedules took until {clock / 3600:.2f} h to send: the box is too busy"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            snap = client.get(emu.url + "/metrics").json()
            if listener.counts["scheduled"] >= SCHEDULES and snap["secmp0192"]["sent"] >= SCHEDULES:
                break
            gevent.sleep(0.2)  # the listener serves the callbacks meanwhile (gevent, this thread)
        gevent.sleep(0.2)
        return client.get(emu.url + "/metrics").json()


def test_midnight_schedules_are_executed_answered_at_the_callback_and_judged(tmp_path):
    from dcc_capacity.load.callbacks import CallbackListener
    from dcc_capacity.load.records import RecordStats, RecordWriter
    from dcc_capacity.orchestrate.finish import rates_from_records, shares_by_user
    from dcc_capacity.report.inputs import iter_record_batches
    from dcc_capacity.report.metrics import NEEDED_COLUMNS, compute_metrics
    from dcc_capacity.report.scheduled import section
    from dcc_capacity.report.tps import tps_groups

    start = time.time()
    records = RecordWriter(tmp_path, tag="midnight-1", start_flusher=False)
    listener = CallbackListener(records=records).start()
    try:
        snap = _midnight(tmp_path, listener, records)
    finally:
        listener.stop()
        records.close()
    sched, tps = snap["secmp0192"], snap["tps"]
    assert sched["schedules"] == SCHEDULES and sched["executions"] == SCHEDULES  # each once in the window
    assert sched["executed"] == {"4.3": SCHEDULES // 2, "4.4.3": SCHEDULES // 2}
    assert 5 * SCHEDULES <= sched["dlms_commands"] <= 11 * SCHEDULES
    assert sched["responded"] == sched["sent"] == SCHEDULES and sched["late"] == 0
    assert 23 * 3600 <= sched["first_execution_s"] <= 25 * 3600  # inside 23:00-01:00
    assert snap["by_class"]["scheduled"]["callbacks_ok"] == SCHEDULES
    # MP192-SA5 counted at the SUT: the 5.1s and the executions are requests, their answers (the executions'
    # counted when the callback took them) responses.
    assert tps["request"] == 2 * SCHEDULES and tps["response"] == 2 * SCHEDULES and tps["alert"] == 0
    assert tps["max"] >= tps["mean"] > 0
    # Every scheduled response reached the listener, signed, correlated to its schedule: none unknown. They are
    # the DCC's work, not responses to what this process sent: its own counters, not ok / error.
    counts = listener.counts
    assert counts["scheduled"] == SCHEDULES and counts["ok"] == counts["error"] == counts["scheduled_failed"] == 0
    assert counts["unknown"] == counts["unknown_schedule"] == counts["alerts"] == 0

    # What the user sent, as run.json counts it: the 5.1s, not the executions (record kind "scheduled").
    _first, _last, by_class = rates_from_records(tmp_path)
    assert by_class == {"Secmp0192Schedules": {"requests": SCHEDULES, "ok": SCHEDULES}}
    assert sum(u["requests"] for u in shares_by_user(tmp_path).values()) == SCHEDULES

    # The report's reading of the records: the scheduled rows are SRV class "scheduled" and nothing else, timed
    # from their due time on the emulator's clock (at least the device latency the emulator drew, at most 1 s of
    # real time more).
    stats = RecordStats()
    metrics = compute_metrics(lambda: iter_record_batches(tmp_path, NEEDED_COLUMNS, 250_000, stats, scheduled=True),
                              start, None, time.time() - start)
    groups = {**metrics.groups, **tps_groups(metrics, stats.alerts, time.time() - start)}
    row = groups["srv_class"].loc["scheduled"]
    assert row["requests"] == row["ok"] == row["trt_n"] == SCHEDULES
    assert sched["trt_max_s"] * 1000 <= row["trt_max"] <= (sched["trt_max_s"] + SCALE) * 1000
    assert groups["srv_class"].loc["non_device", "requests"] == SCHEDULES  # the 5.1s
    # The user's SRVs are the 5.1s alone: the run's totals, every other grouping, rates, codes, failures.
    assert metrics.requests == groups["all"].loc["all", "requests"] == SCHEDULES
    assert groups["all"].loc["all", "trt_n"] == 0  # a 5.1 is answered at once: no TRT; the executions' are not here
    assert groups["class"]["requests"].to_dict() == {"Secmp0192Schedules": SCHEDULES}
    assert list(groups["srv"].index) == ["5.1"] and list(groups["label"].index) == ["5.1"]
    assert metrics.codes["count"].sum() == SCHEDULES and not metrics.failure_reasons
    assert metrics.rates["offered_rate"].sum() * metrics.bucket_s == pytest.approx(SCHEDULES)
    assert metrics.rates["achieved_rate"].sum() * metrics.bucket_s == pytest.approx(SCHEDULES)
    # TPS from the records: the 5.1s and their answers, the executions (at their due time) and their responses.
    ran = metrics.scheduled
    assert ran.rates["requests_rate"].sum() * metrics.bucket_s == pytest.approx(SCHEDULES)
    assert ran.rates["responses_rate"].sum() * metrics.bucket_s == pytest.approx(SCHEDULES)
    assert groups["tps"].loc["all", "tps_max"] >= SCHEDULES / 4 / metrics.bucket_s  # the window: 4 s real
    # The report's SECMP0192 part: counts, correlation, TRT on the schedule's clock, the target with its source.
    part = section(ran, groups["srv_class"], list(load_catalogue().nfrs))
    assert (part["responses"], part["ok"], part["failed"], part["correlated"], part["unknown"]) == \
        (SCHEDULES, SCHEDULES, 0, SCHEDULES, 0)
    assert part["trt_ms"]["max"] == row["trt_max"] and part["trt_ms"]["p50"] <= part["trt_ms"]["p95"]
    assert part["target"]["nfr"] == "NFR-0192-TRT" and part["target"]["threshold_ms"] == 24 * 3600 * 1000
    assert "MP192-SA3" in part["target"]["source"]

    catalogue = {n.id: n for n in load_catalogue().nfrs}
    assert judge(catalogue["NFR-0192-TPS"], groups, None).status == "pass"
    verdict = judge(catalogue["NFR-0192-TRT"], groups, None)
    assert verdict.status == "pass" and verdict.measured == row["trt_max"]
    tight = catalogue["NFR-0192-TRT"].model_copy(update={"max": row["trt_max"] - 1})  # the judge does judge
    assert judge(tight, groups, None).status == "fail"
    assert judge(Nfr(id="T", metric="tps", stat="max", max=groups["tps"].loc["all", "tps_max"] - 1), groups,
                 None).status == "fail"


def test_the_report_counts_tps_from_the_records_series():
    from types import SimpleNamespace

    from dcc_capacity.report.tps import tps_groups

    rates = pd.DataFrame({"t_s": [0, 0, 1, 1], "user_class": ["A", "B", "A", "B"],
                          "offered_rate": [10.0, 5.0, 20.0, 5.0], "achieved_rate": [8.0, 5.0, 18.0, 5.0]})
    groups = tps_groups(SimpleNamespace(rates=rates, bucket_s=1), alerts=20, duration_s=2.0)  # alerts: 10/s
    row = groups["tps"].loc["all"]
    assert (row["tps_max"], row["tps_mean"], row["tps_n"]) == (58.0, 48.0, 2)  # (25 + 23 + 10), (38 + 58) / 2
    nfr = {n.id: n for n in load_catalogue().nfrs}["NFR-0192-TPS"]
    assert judge(nfr, groups, 2.0).status == "pass" and judge(nfr, {}, 2.0).status == "pass"  # not required


@pytest.mark.parametrize(("section", "key", "message"), [
    ({"execution_window": {"start": "24:00", "end": "01:00"}}, "secmp0192.execution_window.start", "HH:MM"),
    ({"execution_window": {"start": "23:00", "end": "23:00"}}, "secmp0192.execution_window", "must differ"),
    ({"dlms_commands_per_srv": {"min": 11, "max": 5}}, "secmp0192.dlms_commands_per_srv", "max must be >= min"),
    ({"scheduled_srvs_per_day": -1}, "secmp0192.scheduled_srvs_per_day", ">= 0"),
    ({"colour": 1}, "secmp0192.colour", "unknown key"),
])
def test_bad_secmp0192_inputs_name_the_key(section, key, message, tmp_path):
    import yaml

    from _volume_helpers import minimal_profile
    from dcc_capacity.errors import InputError
    from dcc_capacity.model.profiles import load_profile

    data = minimal_profile()
    data["secmp0192"] = {"scheduled_srvs_per_day": 10.0, "dlms_commands_per_srv": {"min": 5, "max": 11},
                         "execution_window": {"start": "23:00", "end": "01:00"}, **section}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(InputError) as err:
        load_profile(path)
    assert "p.yaml:" in str(err.value) and key in str(err.value) and message in str(err.value)


def test_scheduled_responses_are_correlated_to_their_schedule_or_failed(tmp_path):
    """Unknown schedule, another RequestID, an E code, a bad signature, no due stamp: each as the listener rules."""
    from locust.env import Environment
    from locust.event import Events

    from dcc_capacity.duis.responses import ResponseSigner, build_response, payload_dsp_scheduled_message
    from dcc_capacity.duis.scheduled import due_stamp
    from dcc_capacity.duis.verify import TrustStore
    from dcc_capacity.emulator.faults import tamper
    from dcc_capacity.load.callbacks import CallbackListener
    from dcc_capacity.load.locuststats import read_stats
    from dcc_capacity.load.records import RecordWriter, load_records

    pki = TestPKI.load_or_create(PKI_DIR)
    signer = ResponseSigner.from_credential(pki.dcc)

    def body(sid: int, rid: str, code: str = "I0", due: float | None = 1000.0) -> bytes:
        signed = build_response(signer=signer, response_code=code, srv="4.3", srv_variant="4.3", request_id=rid,
                                payload=payload_dsp_scheduled_message(b"\xdd\x00gbcs", sid))
        return signed + (due_stamp(due, 60.0) if due is not None else b"")

    env = Environment(events=Events())  # Locust's stats, fed as a runner feeds them
    env.events.request.add_listener(lambda request_type, name, response_time, response_length, exception=None,
                                    **_kw: (env.stats.log_request(request_type, name, response_time, response_length),
                                            exception and env.stats.log_error(request_type, name, exception)))
    records = RecordWriter(tmp_path, tag="t-1", start_flusher=False)
    listener = CallbackListener(env, records=records, trust=TrustStore.from_pki(pki))
    listener.expect_schedule(7, "A:B:1", user_class="Secmp0192Schedules")
    for b in (body(7, "A:B:1"), body(8, "A:B:2"), body(7, "A:B:9"), body(7, "A:B:1", code="E3"),
              tamper(body(7, "A:B:1")), body(7, "A:B:1", due=None)):
        listener.on_body(b, arrival_ts=1001.5)
    records.close()
    c = listener.counts
    assert (c["scheduled"], c["scheduled_failed"], c["unknown_schedule"], c["bad_signature"], c["unknown"]) == \
        (6, 4, 2, 1, 0)
    assert c["ok"] == c["error"] == 0  # those count the responses to what this process sent
    # In Locust's stats as their own request type: the live progress line, live NFRs and web UI count none of them.
    assert {(rtype, e.num_requests, e.num_failures) for (_n, rtype), e in env.stats.entries.items()} == \
        {("SCHEDULED", 6, 4)}
    live = read_stats(env.stats)
    assert (live.offered, live.failed, live.achieved, live.tally("TRT").requests) == (0, 0, 0, 0)
    rows = load_records(tmp_path)
    assert set(rows["label"]) == {"4.3 scheduled"} and list(rows["kind"]) == ["scheduled"] * 6
    assert rows["trt_ms"].iloc[0] == pytest.approx(1.5 * 60 * 1000)  # (arrival - due) x time scale
    assert rows["intended_ts"].iloc[0] == 1000.0 and rows["user_class"].iloc[0] == "Secmp0192Schedules"
    assert list(rows["outcome"]) == ["ok", "error", "error", "error", "error", "ok"]
    assert rows["error"].iloc[1].startswith("unknown DSPScheduleID 8") and "A:B:9" in rows["error"].iloc[2]
    assert rows["error"].iloc[3] == "response code E3" and rows["error"].iloc[4].startswith("bad response signature")
    assert rows["trt_ms"].iloc[5] != rows["trt_ms"].iloc[5]  # no stamp (a real SUT): correlated, TRT not measured


def _secmp0192_run(tmp: Path) -> Generator[Cli, Ran, Ran]:
    return (yield cli(["run", "--test", "load", "--sp", "S1SP", "--profile", "volume_profiles/foc-secmp0192.yaml",
                       "--slot", "night", "--duration", "6s", "--rate", "40", "--device-latency", "fast",
                       "--test-id", "SECMP0192",
                       # what is judged here is counting, not the generator's timing on a busy 2-core test box
                       "--max-send-lag", "1000"], tmp / "run", timeout=120))


@pytest.mark.slow
@pytest.mark.timeout(300)
@background(_secmp0192_run)
def test_a_secmp0192_run_counts_the_executions_apart_from_the_srvs_sent(background_run):
    """`run` with the SECMP0192 profile: the emulator executes the schedules, their responses are judged, and
    the user's figures (run.json rates, summary totals, live line) are the SRVs it sent, the 5.1s among them."""
    import json
    import re

    from dcc_capacity.load.records import load_records

    p = background_run
    out = p.out
    assert p.returncode == 0, p.stderr[-2000:]
    run_doc, summary = (json.loads((out / f).read_text()) for f in ("run.json", "summary.json"))
    df = load_records(out)
    sent, ran = df[df["kind"] == "request"], df[df["kind"] == "scheduled"]
    creates = int((sent["user_class"] == "Secmp0192Schedules").sum())
    assert creates > 0 and set(sent[sent["user_class"] == "Secmp0192Schedules"]["label"]) == {"5.1"}
    assert len(ran) > 0 and set(ran["user_class"]) == {"Secmp0192Schedules"}  # executions seen, all correlated
    # The user's rates and totals: the 5.1 sends, not the executions.
    rate = run_doc["rates"]["Secmp0192Schedules"]
    assert rate["offered"] * run_doc["duration_s"] == pytest.approx(creates)
    assert rate["offered"] == pytest.approx(rate["target"], rel=0.05)
    assert summary["by_class"]["Secmp0192Schedules"]["requests"] == creates
    attempts = sent[~sent["label"].str.endswith(" CV5")]  # a critical SRV's CV 4 + CV 5: one attempt
    assert summary["requests"] == len(attempts) == sum(c["requests"] for c in summary["by_class"].values())
    ended = sent[~sent["label"].str.endswith(" CV4")]  # whose TRT an SRV has (a critical one's: its CV 5's)
    assert summary["trt_ms"]["count"] == int(ended["trt_ms"].notna().sum())  # the run's TRT: the SRVs sent
    assert not [k for k in (*summary["by_srv"], *summary["by_label"]) if k.endswith(" scheduled")]
    live = [ln for ln in p.stderr.splitlines() if re.match(r"\[dcc-capacity\] \d\d:", ln)]
    assert re.search(r"\(([\d,]+) SRV attempts\)", live[-1])[1].replace(",", "") == str(summary["requests"])
    # The executions: SECMP0192's part of the report and NFR-0192-TRT, judged on them.
    part = summary["scheduled"]
    assert part["responses"] == part["correlated"] == part["ok"] == len(ran)
    assert part["trt_ms"]["max"] == pytest.approx(ran["trt_ms"].max())
    verdict = {n["id"]: n for n in summary["nfr"]}["NFR-0192-TRT"]
    assert verdict["status"] == "pass" and verdict["measured"] == part["trt_ms"]["max"]
    assert "SECMP0192 scheduled executions" in (out / "report.html").read_text()
