"""One evidence pipeline: RecordWriter records -> streaming fold -> build_report -> summary.json, junit.xml, matrix.

The run folder here is what the measurement core writes (records through
RecordWriter, callback rows after their requests, a killed process's
truncated tail) plus run.json/plan.json/nfr.yaml; every number in summary.json
is checked against pandas on the same records, folded independently.
"""

from __future__ import annotations

import json
import math
import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from _report_helpers import Page
from dcc_capacity.load.records import RecordStats, RecordWriter, iter_records, load_records
from dcc_capacity.model.nfr import default_nfr_path, load_catalogue
from dcc_capacity.report import build_report

START = 1_764_000_000.0
DURATION = 20.0
FAILED = ["error", "throttled", "late", "missing", "dropped"]


def _write_process(run_dir, tag: str, seed: int, n: int = 1_500) -> None:
    """One Locust process's events, in the order the writer would see them, flushed in ~1 s batches."""
    rng = np.random.default_rng(seed)
    events: list[tuple[float, dict]] = []
    for i in range(n):
        rid = f"{tag}-{i}"
        intended = START + rng.uniform(0, DURATION)
        cls = "reads" if i % 3 else "installs"
        srv = ["4.6.1", "6.15.1", "11.2"][i % 3]
        ack_ms = float(rng.lognormal(3.5, 0.7))
        ack_ts = intended + ack_ms / 1000
        base = dict(request_id=rid, user_class=cls, srv_variant=srv, label=srv, arrival=i, step=0,
                    intended_ts=intended, sent_ts=intended + 0.0002, ack_ts=ack_ts, ack_ms=ack_ms, ack_code=200)
        roll = rng.random()
        if roll < 0.02:  # client saturated: never sent
            events.append((intended, dict(user_class=cls, label=cls, arrival=i, intended_ts=intended,
                                          outcome="dropped", error="dropped: client saturated")))
            continue
        if roll < 0.05:  # throttled at the ack: no response expected
            events.append((ack_ts, {**base, "ack_code": 429, "outcome": "throttled", "error": "HTTP 429"}))
            continue
        if roll < 0.07:  # HTTP error at the ack
            events.append((ack_ts, {**base, "ack_code": 500, "outcome": "error", "error": "HTTP 500"}))
            continue
        if roll < 0.08:  # sync-only request (no callback expected)
            events.append((ack_ts, {**base, "outcome": "ok"}))
            continue
        trt = float(ack_ms + rng.lognormal(6.0, 0.8))
        cb = dict(kind="callback", request_id=rid, user_class=cls, srv_variant=srv, label=srv, arrival=i, step=0,
                  intended_ts=intended)
        if roll > 0.995 and intended < START + DURATION - 3:  # run ended before the response was due
            events.append((ack_ts, {**base, "outcome": "pending"}))
            continue
        events.append((ack_ts, {**base, "outcome": "pending"}))
        if roll < 0.10:  # never answered: declared missing (at the end of the run here)
            events.append((START + DURATION + 1, {**cb, "outcome": "missing", "error": "no async response"}))
        elif roll < 0.11:  # missing, then the response came after all: late, with its real TRT
            events.append((START + DURATION + 1, {**cb, "outcome": "missing", "error": "no async response"}))
            events.append((START + DURATION + 2, {**cb, "callback_ts": intended + 9.0, "trt_ms": 9000.0,
                                                  "response_code": "I0", "outcome": "late", "error": "after missing"}))
        elif roll < 0.13:  # late (over the TRT limit)
            events.append((intended + 4.0, {**cb, "callback_ts": intended + 4.0, "trt_ms": 4000.0,
                                            "response_code": "I0", "outcome": "late", "error": "late"}))
        elif roll < 0.15:  # async error response
            events.append((intended + trt / 1000, {**cb, "callback_ts": intended + trt / 1000, "trt_ms": trt,
                                                   "response_code": "E3", "outcome": "error", "error": "E3"}))
        elif roll < 0.16:  # the response beat the ack into the records file
            events.insert(len(events) - 1, (ack_ts - 1e-6, {**cb, "callback_ts": ack_ts - 1e-6,
                                                            "trt_ms": ack_ms - 1e-3, "response_code": "I0",
                                                            "outcome": "ok"}))
            events[-2], events[-1] = events[-1], events[-2]
        else:
            events.append((intended + trt / 1000, {**cb, "callback_ts": intended + trt / 1000, "trt_ms": trt,
                                                   "response_code": "I0", "outcome": "ok"}))
    events.append((START + 5, dict(kind="alert", callback_ts=START + 5, outcome="ok")))
    events.sort(key=lambda e: e[0])
    with RecordWriter(run_dir, tag=tag, start_flusher=False, flush_interval=1e9) as w:
        second = START
        for ts, row in events:
            if ts - second >= 1.0:  # the writer flushes once a second
                w.flush()
                second = ts
            w.write(**row)


def _reference(run_dir) -> pd.DataFrame:
    """The records folded with plain pandas: last callback row per request wins; ack failures keep their outcome."""
    frames = []
    for p in sorted((run_dir / "records").glob("*.arrows")):
        reader = pa.ipc.open_stream(pa.memory_map(str(p)))
        while True:
            try:
                frames.append(reader.read_next_batch().to_pandas())
            except StopIteration:
                break
            except OSError:  # the killed process's cut-off last batch
                break
    raw = pd.concat(frames, ignore_index=True)
    req = raw[raw.kind == "request"].copy()
    cb = raw[raw.kind == "callback"].drop_duplicates(["process", "request_id", "step"], keep="last")
    m = req.merge(cb[["process", "request_id", "step", "callback_ts", "trt_ms", "response_code", "outcome"]],
                  on=["process", "request_id", "step"], how="left", suffixes=("", "_cb"))
    hit = m["outcome_cb"].notna()
    m.loc[hit, "trt_ms"] = m.loc[hit, "trt_ms_cb"]
    take = hit & m["outcome"].isin(["ok", "pending"])
    m.loc[take, "outcome"] = m.loc[take, "outcome_cb"]
    m["srv"] = m["srv_variant"].where(m["srv_variant"] != "", m["label"])
    return m


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("e2e") / "run"
    for k in range(2):  # two Locust processes
        _write_process(run_dir, f"host-{k}", seed=k)
    cut = run_dir / "records" / "records-host-1.arrows"
    cut.write_bytes(cut.read_bytes()[:-200])  # the second process was killed mid-batch
    (run_dir / "run.json").write_text(json.dumps({
        "test_id": "LOAD", "test_type": "load", "sp": "DSP", "slot": "night", "status": "complete",
        "start": START, "duration_s": DURATION, "target": "emulator"}))
    (run_dir / "plan.json").write_text(json.dumps({"A7": {"DSP": {"night": 100.0}}}))
    shutil.copy(default_nfr_path(), run_dir / "nfr.yaml")
    outcome = build_report(run_dir)
    return run_dir, outcome, _reference(run_dir)


@pytest.mark.parametrize("batch_rows", [1, 700, 10**6])
def test_streaming_fold_equals_the_whole_run_fold(run, batch_rows):
    run_dir, _, ref = run
    stats = RecordStats()
    streamed = pd.concat(iter_records(run_dir, batch_rows=batch_rows, stats=stats), ignore_index=True)
    whole = load_records(run_dir)
    whole = whole[whole.kind == "request"]
    key = ["process", "request_id", "step", "arrival"]
    a = streamed.sort_values(key).reset_index(drop=True)
    b = whole.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_dtype=False)
    assert a["ack_code"].dtype.kind == "i" and a["step"].dtype.kind == "i"
    assert stats.truncated == ["records-host-1.arrows"] and stats.alerts >= 1 and stats.files == 2
    assert len(a) == len(ref)
    assert set(a["outcome"]) == {"ok", "error", "throttled", "late", "missing", "dropped", "pending"}


def test_summary_numbers_equal_a_pandas_reference(run):
    run_dir, outcome, ref = run
    s = json.loads((run_dir / "summary.json").read_text())
    assert s == outcome.summary_doc
    assert s["test"] == "LOAD" and s["duration_s"] == DURATION and s["complete"] is False  # the truncated file
    assert s["requests"] == len(ref)
    assert s["failures"] == ref["outcome"].isin(FAILED).sum()
    assert s["offered_rate"] == pytest.approx(len(ref) / DURATION)
    assert s["achieved_rate"] == pytest.approx((ref["outcome"] == "ok").sum() / DURATION)
    for col in ("ack_ms", "trt_ms"):
        v = ref[col].dropna()
        for q, p in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0)):
            assert s[col][q] == pytest.approx(v.quantile(p), rel=1e-12), (col, q)
    assert s["trt_ms"]["missing"] == (ref["outcome"] == "missing").sum()
    assert s["outcomes"] == {k: int((ref["outcome"] == k).sum()) for k in s["outcomes"]}
    for srv, grp in ref.groupby("srv"):
        got = s["by_srv"][srv]
        assert got["requests"] == len(grp) and got["failures"] == grp["outcome"].isin(FAILED).sum()
        for col, q, p in (("ack_ms", "p95", 0.95), ("trt_ms", "p99", 0.99)):
            v = grp[col].dropna()
            if v.empty:  # dropped arrivals (grouped under their class) were never sent: nothing measured
                assert got[col][q] is None and got[col]["count"] == 0
            else:
                assert got[col][q] == pytest.approx(v.quantile(p), rel=1e-12) and got[col]["count"] == len(v)
    assert s["by_srv"]["reads"]["outcomes"]["dropped"] == s["by_srv"]["reads"]["requests"] > 0


def test_nfr_verdicts_match_the_reference(run):
    _, outcome, ref = run
    s = outcome.summary_doc
    verdict = {n["id"]: n for n in s["nfr"]}
    finished = ref[ref["outcome"] != "pending"]
    lost = finished["outcome"].isin(["missing", "dropped"]).mean()
    assert verdict["NFR-LOST"]["measured"] == pytest.approx(lost) and verdict["NFR-LOST"]["pass"] is False
    assert verdict["NFR-ERR"]["measured"] == pytest.approx(finished["outcome"].isin(FAILED).mean())
    assert verdict["NFR-RATE"]["measured"] == pytest.approx((finished["outcome"] == "ok").mean())
    per_class = ref.groupby("user_class")["trt_ms"].quantile(0.95)
    assert verdict["NFR-TRT-P95"]["groups"] == pytest.approx(per_class.to_dict(), rel=1e-12)
    assert verdict["NFR-TRT-P95"]["measured"] == pytest.approx(per_class.max(), rel=1e-12)
    assert verdict["NFR-ACK-P95"]["measured"] == pytest.approx(ref["ack_ms"].quantile(0.95), rel=1e-12)
    assert verdict["NFR-ACK-P95"]["pass"] is True and not math.isnan(verdict["NFR-ACK-P95"]["threshold"])
    # The records hold arrivals the generator dropped: the run is INVALID (exit 3), whatever its NFRs say.
    assert outcome.exit_code == 3 and outcome.summary_doc["valid"] is False
    assert outcome.summary_doc["invalid_reasons"][0].startswith("the generator dropped")


def test_junit_has_one_testcase_per_nfr_and_the_matrix_lists_each(run):
    run_dir, _, _ = run
    cat = load_catalogue(run_dir / "nfr.yaml")
    ids = list(next(t for t in cat.tests if t.id == "LOAD").nfr_ids)  # the NFRs the executed test covers
    assert ids and set(ids) < {n.id for n in cat.nfrs}  # NFR-NEG is the negative tests' only
    suite = ET.parse(run_dir / "junit.xml").getroot().find("testsuite")
    cases = suite.findall("testcase")
    assert sorted(c.get("name") for c in cases) == sorted(ids)
    failed = {c.get("name") for c in cases if c.find("failure") is not None}
    assert "NFR-LOST" in failed and suite.get("failures") == str(len(failed))
    page = Page(run_dir / "report.html")
    for nid in ids:
        row = page.by_id(f"nfr-{nid}")
        assert nid in row.text_content()
        assert page.by_id(f"res-LOAD.{nid}") is not None
