"""The NFR catalogue: validation with file/key/line errors, and judge() on metrics from real records."""

from __future__ import annotations

import pytest

from dcc_capacity.errors import InputError
from dcc_capacity.load.records import RecordWriter
from dcc_capacity.model.nfr import Nfr, judge, load_catalogue, load_nfrs
from dcc_capacity.report.inputs import iter_record_batches
from dcc_capacity.report.metrics import NEEDED_COLUMNS, compute_metrics


def metrics_of(run_dir, rows: list[dict]):
    with RecordWriter(run_dir, tag="syn", start_flusher=False) as w:
        for r in rows:
            w.write(**r)
    return compute_metrics(lambda: iter_record_batches(run_dir, NEEDED_COLUMNS, 50), 1000.0, "night", 10.0)


def synthetic(run_dir):
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
    rows.append(dict(request_id="p0", user_class="Bau", srv_variant="6.15.1", label="6.15.1", intended_ts=1009.9,
                     ack_ts=1010.0, ack_ms=100.0, ack_code=200, outcome="pending"))  # run ended first
    return metrics_of(run_dir, rows)


def nfr(**kw) -> Nfr:
    return Nfr(id=kw.pop("id", "N"), **kw)


def test_judge_pass_and_fail_on_records(tmp_path):
    m = synthetic(tmp_path)
    cases = [
        nfr(id="ack-reads", metric="ack_ms", stat="p95", max=95.05, user_class="Reads"),
        nfr(id="ack-reads-tight", metric="ack_ms", stat="p95", max=95.0, user_class="Reads"),
        nfr(id="ack-srv", metric="ack_ms", stat="max", max=100, srv="4.6.1"),
        nfr(id="trt-per-class", metric="trt_ms", stat="p50", max=60000, per="user_class"),
        nfr(id="trt-per-srv-tight", metric="trt_ms", stat="max", max=50000, per="srv"),
        nfr(id="fail", metric="failure_rate", max=0.02),
        nfr(id="err-bau", metric="error_rate", max=0.25, srv="6.15.1"),
        nfr(id="lost", metric="missing_rate", max=0),
        nfr(id="rate", metric="achieved_ratio", min=0.97),
        nfr(id="no-data", metric="ack_ms", stat="p95", max=1, srv="9.9.9"),
        nfr(id="optional", metric="ack_ms", stat="p95", max=1, srv="9.9.9", required=False),
    ]
    r = {n.id: judge(n, m.groups, 10.0) for n in cases}
    # linear interpolation, as numpy: p95 of 1..100 = 95.05
    assert r["ack-reads"].passed and r["ack-reads"].measured == pytest.approx(95.05)
    assert not r["ack-reads-tight"].passed and "needs <= 95" in r["ack-reads-tight"].message
    assert r["ack-srv"].passed and r["ack-srv"].samples == 100 and r["ack-srv"].evidence == ("srv", "4.6.1")
    per = r["trt-per-class"]
    assert per.groups == {"Bau": 2000.0, "Reads": pytest.approx(50500.0)} and per.passed
    assert per.measured == pytest.approx(50500.0) and per.evidence == ("class", "Reads")
    tight = r["trt-per-srv-tight"]
    assert not tight.passed and tight.measured == 100000.0 and "failing: 4.6.1" in tight.message
    # 110 finished (the pending one is left out): 2 errors + 1 missing
    assert r["fail"].measured == pytest.approx(3 / 110) and not r["fail"].passed and r["fail"].samples == 110
    assert r["err-bau"].measured == pytest.approx(0.2) and r["err-bau"].passed
    assert r["lost"].measured == pytest.approx(1 / 110) and not r["lost"].passed
    assert r["rate"].measured == pytest.approx(107 / 110) and r["rate"].passed
    assert r["no-data"].status == "no data" and not r["no-data"].passed
    assert r["optional"].passed and "not required" in r["optional"].message


def test_default_catalogue_keeps_the_ids_and_traces_every_nfr():
    cat = load_catalogue()
    ids = [n.id for n in cat.nfrs]
    assert ids == ["NFR-ACK-P95", "NFR-ACK-P99", "NFR-TRT-P95", "NFR-TRT-P99-SRV", "NFR-ERR", "NFR-LOST", "NFR-RATE",
                   "NFR-CPU", "NFR-NEG", "NFR-0192-TPS", "NFR-0192-TRT"]
    assert {i for t in cat.tests for i in t.nfr_ids} == set(ids)
    assert cat.issue_thresholds == {1: 0, 2: 0, 3: 5, 4: 10}
    assert load_nfrs() == cat.nfrs


@pytest.mark.parametrize(("text", "key", "line", "message"), [
    ("schema_version: 2\nnfrs:\n  - {id: A, metric: ack_ms, stat: p95, max: 1,\n     colour: red}\n",
     "nfrs[0].colour", 4, "unknown key"),
    ("schema_version: 2\nnfrs:\n  - {id: A, metric: ack_ms, max: 1}\n", "nfrs[0]", 3, "stat: required"),
    ("schema_version: 2\nnfrs:\n  - {id: A, metric: latency, stat: p95, max: 1}\n", "nfrs[0].metric", 3,
     "'latency'"),
    ("schema_version: 2\nnfrs:\n  - {id: A, metric: error_rate, max: 1, min: 0}\n", "nfrs[0]", 3,
     "exactly one of max or min"),
    ("schema_version: 2\nnfrs:\n  - {id: A, metric: error_rate, max: -1}\n", "nfrs[0].max", 3, ">= 0 (got -1)"),
    ("schema_version: 2\nnfrs:\n  - {id: A, metric: tps, stat: p95, max: 450}\n", "nfrs[0]", 3, "tps takes max"),
    ("schema_version: 2\nnfrs:\n  - {id: A, metric: tps, stat: max, max: 450, per: srv}\n", "nfrs[0]", 3,
     "no scope or per"),
    ("schema_version: 2\nnfrs:\n  - {id: A, metric: error_rate, max: 1, srv: '4.6.1', per: srv}\n", "nfrs[0]", 3,
     "at most one of"),
    ("schema_version: 2\nnfrs:\n  - {id: A, metric: error_rate, max: 1}\n  - {id: A, metric: error_rate, max: 1}\n",
     "nfrs[1].id", 4, "duplicate NFR id 'A'"),
    ("schema_version: 2\nnfrs:\n  - {id: A, metric: error_rate, max: 1}\ntests:\n"
     "  - {id: T, type: load, nfr_ids: [B]}\n", "tests[0].nfr_ids", 5, "unknown NFR 'B'"),
    ("schema_version: 2\nnfrs:\n  - {id: A, metric: error_rate, max: 1}\ntests:\n"
     "  - {id: T, type: lod, nfr_ids: [A]}\n", "tests[0].type", 5, "must be one of"),
    ("schema_version: 1\nnfrs:\n  - {id: A, metric: error_rate, max: 1}\n", "schema_version", 1, "must be 2"),
    ("nfrs: [\n", None, None, "YAML syntax error"),
])
def test_bad_catalogues_name_the_file_key_and_line(tmp_path, text, key, line, message):
    path = tmp_path / "nfr.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        load_catalogue(path)
    err = info.value
    assert err.file == str(path) and message in str(err), str(err)
    assert err.key == key
    if line is not None:
        assert err.line == line
    assert err.exit_code == 2
