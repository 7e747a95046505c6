"""NFR files: validation with clear errors, pass/fail on synthetic records, summary.json and junit.xml."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET

import pandas as pd
import pytest

from dcc_capacity.errors import InputError
from dcc_capacity.nfr import Nfr, evaluate, load_nfrs, percentile
from dcc_capacity.records import RecordWriter, load_records
from dcc_capacity.summary import finish_run, summarize


def write_records(run_dir, rows: list[dict]) -> pd.DataFrame:
    with RecordWriter(run_dir, tag="syn", start_flusher=False) as w:
        for r in rows:
            w.write(**r)
    return load_records(run_dir)


def synthetic(run_dir) -> pd.DataFrame:
    """100 meter reads (ack 1..100 ms, TRT 1..100 s) and 10 BAU (two errors, one missing TRT), over 10 s."""
    rows = []
    for i in range(100):
        rows.append(dict(request_id=f"r{i}", user_class="Reads", srv_variant="4.6.1", label="4.6.1",
                         intended_ts=1000 + i * 0.1, ack_ts=1000 + i * 0.1 + (i + 1) / 1000, ack_ms=float(i + 1),
                         ack_code=200, outcome="pending"))
        rows.append(dict(kind="callback", request_id=f"r{i}", callback_ts=1000 + i, trt_ms=(i + 1) * 1000.0,
                         outcome="ok", response_code="I0"))
    for i in range(10):
        failed = i < 2
        rows.append(dict(request_id=f"b{i}", user_class="Bau", srv_variant="6.15.1", label="6.15.1",
                         intended_ts=1000 + i, ack_ts=1000 + i + 0.5, ack_ms=500.0, ack_code=500 if failed else 200,
                         outcome="error" if failed else "pending", error="HTTP 500" if failed else ""))
        if not failed:
            missing = i == 9
            rows.append(dict(kind="callback", request_id=f"b{i}", callback_ts=float("nan") if missing else 1001 + i,
                             trt_ms=float("nan") if missing else 2000.0, outcome="missing" if missing else "ok"))
    return write_records(run_dir, rows)


def nfr(**kw) -> Nfr:
    return Nfr(id=kw.pop("id", "N"), **kw)


def test_percentile_is_nearest_rank():
    v = pd.Series(range(1, 101), dtype=float).to_numpy()
    assert percentile(v, "p95") == 95 and percentile(v, "p99") == 99 and percentile(v, "max") == 100
    assert percentile(v, "p50") == 50 and percentile(v, "mean") == 50.5
    assert math.isnan(percentile(v[:0], "p95"))


def test_evaluate_pass_and_fail_on_synthetic_records(tmp_path):
    df = synthetic(tmp_path)
    results = {r.id: r for r in evaluate([
        nfr(id="ack-reads", metric="ack_ms", stat="p95", max=95, user_class="Reads"),
        nfr(id="ack-reads-tight", metric="ack_ms", stat="p95", max=94.9, user_class="Reads"),
        nfr(id="ack-srv", metric="ack_ms", stat="max", max=100, srv="4.6.1"),
        nfr(id="trt-per-class", metric="trt_ms", stat="p50", max=60000, per="user_class"),
        nfr(id="trt-reads-p99", metric="trt_ms", stat="p99", max=99000, user_class="Reads"),
        nfr(id="err", metric="error_rate", max=0.02),
        nfr(id="err-bau", metric="error_rate", max=0.25, srv="6.15.1"),
        nfr(id="rate", metric="rate_ratio", min=0.97),
        nfr(id="no-data", metric="ack_ms", stat="p95", max=1, srv="9.9.9"),
        nfr(id="optional", metric="ack_ms", stat="p95", max=1, srv="9.9.9", required=False),
    ], df)}
    assert results["ack-reads"].passed and results["ack-reads"].measured == 95
    assert not results["ack-reads-tight"].passed and "needs <= 94.9" in results["ack-reads-tight"].message
    assert results["ack-srv"].passed and results["ack-srv"].samples == 100
    per = results["trt-per-class"]
    assert per.groups == {"Bau": 2000.0, "Reads": 50000.0} and per.measured == 50000 and per.passed
    assert results["trt-reads-p99"].measured == 99000 and results["trt-reads-p99"].passed
    assert results["err"].measured == pytest.approx(3 / 110) and not results["err"].passed  # 2 errors + 1 missing
    assert results["err-bau"].measured == pytest.approx(0.3) and not results["err-bau"].passed
    assert results["rate"].measured == pytest.approx(107 / 110) and results["rate"].passed
    assert not results["no-data"].passed and results["no-data"].message == "no data"
    assert results["optional"].passed


def test_missing_response_makes_a_trt_percentile_fail(tmp_path):
    df = synthetic(tmp_path)
    bau_max = evaluate([nfr(metric="trt_ms", stat="max", max=10**9, user_class="Bau")], df)[0]
    assert math.isinf(bau_max.measured) and not bau_max.passed
    assert bau_max.samples == 8  # 7 answered + 1 missing; the 2 failed acks never expected a response


def test_pending_rows_are_left_out(tmp_path):
    df = write_records(tmp_path, [dict(request_id="x", ack_ms=1.0, outcome="pending"),
                                  dict(request_id="y", ack_ms=2.0, outcome="ok")])
    r = evaluate([nfr(metric="error_rate", max=0.0), nfr(id="M", metric="ack_ms", stat="max", max=5)], df)
    assert r[0].samples == 1 and r[0].passed and r[1].measured == 2.0


def test_default_file_loads_with_ids():
    ids = [n.id for n in load_nfrs()]
    assert ids == ["NFR-ACK-P95", "NFR-ACK-P99", "NFR-TRT-P95", "NFR-TRT-P99-SRV", "NFR-ERR", "NFR-RATE"]


@pytest.mark.parametrize(("text", "key", "message"), [
    ("schema_version: 1\nnfrs:\n  - {id: A, metric: ack_ms, stat: p95, max: 1, colour: red}\n",
     "nfrs[0] (A).colour", "unknown key"),
    ("schema_version: 1\nnfrs:\n  - {id: A, metric: ack_ms, max: 1}\n", "nfrs[0] (A)", "stat: required"),
    ("schema_version: 1\nnfrs:\n  - {id: A, metric: latency, stat: p95, max: 1}\n", "nfrs[0] (A).metric",
     "'latency'"),
    ("schema_version: 1\nnfrs:\n  - {id: A, metric: rate_ratio, max: 1}\n", "nfrs[0] (A)", "takes min"),
    ("schema_version: 1\nnfrs:\n  - {id: A, metric: error_rate, max: -1}\n", "nfrs[0] (A).max",
     "greater than or equal to 0 (got -1)"),
    ("schema_version: 1\nnfrs:\n  - {id: A, metric: error_rate, max: 1}\n  - {id: A, metric: error_rate, max: 1}\n",
     "(top level)", "duplicate NFR id 'A'"),
    ("schema_version: 2\nnfrs: []\n", "schema_version", "1"),
    ("nfrs: [\n", None, "not valid YAML"),
])
def test_bad_nfr_files_name_the_file_and_key(tmp_path, text, key, message):
    path = tmp_path / "nfr.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        load_nfrs(path)
    err = info.value
    assert err.file == str(path) and message in str(err)
    if key is not None:
        assert err.key == key
    assert err.exit_code == 2


def test_summary_json_and_junit_from_records(tmp_path):
    synthetic(tmp_path)
    (tmp_path / "shape.json").write_text('{"shape": "StressShape", "knee_rate": 150.0}')
    nfrs = [nfr(id="NFR-ACK-P95", metric="ack_ms", stat="p95", max=1000),
            nfr(id="NFR-ERR", metric="error_rate", max=0.01),
            nfr(id="NFR-TRT-MAX", metric="trt_ms", stat="max", max=10**7)]
    summary, code = finish_run(tmp_path, test="load", nfrs=nfrs, duration_s=10.0)
    assert code == 1  # NFR-ERR and NFR-TRT-MAX (a missing response) fail
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    for key in ("test", "offered_rate", "achieved_rate", "duration_s", "requests", "failures", "ack_ms", "trt_ms",
                "by_srv", "nfr"):
        assert key in on_disk
    assert on_disk["requests"] == 110 and on_disk["failures"] == 3 and on_disk["offered_rate"] == 11.0
    assert on_disk["achieved_rate"] == pytest.approx(10.7)
    assert set(on_disk["ack_ms"]) >= {"p50", "p95", "p99", "max"}
    assert on_disk["by_srv"]["4.6.1"]["ack_ms"]["max"] == 100.0 and on_disk["by_srv"]["6.15.1"]["failures"] == 3
    assert on_disk["trt_ms"]["missing"] == 1
    assert on_disk["shape"] == {"shape": "StressShape", "knee_rate": 150.0}
    assert [(n["id"], n["pass"]) for n in on_disk["nfr"]] == [("NFR-ACK-P95", True), ("NFR-ERR", False),
                                                              ("NFR-TRT-MAX", False)]
    assert on_disk["nfr"][2]["measured"] is None  # inf is not JSON: unbounded shows as null
    suite = ET.parse(tmp_path / "junit.xml").getroot().find("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["NFR-ACK-P95", "NFR-ERR", "NFR-TRT-MAX"]
    assert [c.find("failure") is not None for c in cases] == [False, True, True]
    assert suite.get("tests") == "3" and suite.get("failures") == "2"


def test_summary_of_an_empty_run(tmp_path):
    s = summarize(load_records(tmp_path), test="load")
    assert s["requests"] == 0 and s["ack_ms"]["p95"] is None and s["pass"] is True
