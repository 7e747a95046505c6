"""Records: Arrow stream files per process, merged back to one row per request, robust to SIGKILL."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from _load_helpers import wait_until
from dcc_capacity.load.records import COLUMNS, RecordWriter, iter_raw_batches, load_records

ROOT = Path(__file__).resolve().parents[1]


def _req(w: RecordWriter, rid: str, outcome: str = "pending", **kw) -> None:
    w.write(request_id=rid, user_class="Reads", srv_variant="4.6.1", label="4.6.1", intended_ts=100.0,
            sent_ts=100.001, ack_ts=100.01, ack_ms=10.0, ack_code=200, outcome=outcome, **kw)


def test_callback_rows_fold_into_their_request(tmp_path):
    with RecordWriter(tmp_path, tag="p1", start_flusher=False) as w:
        _req(w, "a")  # answered in time
        _req(w, "b")  # declared missing, then the response came after all
        _req(w, "c", outcome="error", error="HTTP 500")  # failed ack: its callback (if any) cannot make it ok
        _req(w, "d")  # run stopped before the response was due
        w.write(kind="callback", request_id="a", callback_ts=100.5, trt_ms=500.0, response_code="I0", outcome="ok")
        w.write(kind="callback", request_id="b", outcome="missing", error="no async response within 2 s")
        w.write(kind="callback", request_id="b", callback_ts=103.0, trt_ms=3000.0, outcome="late")
        w.write(kind="callback", request_id="c", callback_ts=100.2, trt_ms=200.0, outcome="ok")
        w.write(kind="alert", callback_ts=101.0)
    df = load_records(tmp_path).set_index("request_id")
    assert list(load_records(tmp_path).columns) == list(COLUMNS)
    assert df.loc["a", "outcome"] == "ok" and df.loc["a", "trt_ms"] == 500.0 and df.loc["a", "response_code"] == "I0"
    assert df.loc["b", "outcome"] == "late" and df.loc["b", "trt_ms"] == 3000.0
    assert df.loc["c", "outcome"] == "error" and df.loc["c", "error"] == "HTTP 500"
    assert df.loc["d", "outcome"] == "pending" and math.isnan(df.loc["d", "trt_ms"])
    assert (load_records(tmp_path)["kind"] == "alert").sum() == 1
    assert len(load_records(tmp_path, raw=True)) == 9


def test_several_process_files_load_as_one_frame(tmp_path):
    for tag in ("host-1", "host-2"):
        with RecordWriter(tmp_path, tag=tag, start_flusher=False) as w:
            for i in range(3):
                _req(w, f"{tag}-{i}", outcome="ok")
    df = load_records(tmp_path)
    assert sorted(df["process"].unique()) == ["host-1", "host-2"] and len(df) == 6


def test_unknown_field_is_an_error(tmp_path):
    with RecordWriter(tmp_path, start_flusher=False) as w, pytest.raises(TypeError, match="trt"):
        w.write(trt=1.0)


def test_truncated_tail_is_skipped(tmp_path):
    w = RecordWriter(tmp_path, tag="t", start_flusher=False)
    for batch in range(3):
        for i in range(100):
            _req(w, f"{batch}-{i}", outcome="ok")
        w.flush()
    size = w.path.stat().st_size
    w._sink.close()  # simulate a crash: no end-of-stream marker
    with open(w.path, "r+b") as f:
        f.truncate(size - 50)  # the last batch is cut mid-message
    assert [b.num_rows for b in iter_raw_batches(w.path)] == [100, 100]
    assert len(load_records(tmp_path)) == 200


def test_empty_run_folder_gives_empty_frame(tmp_path):
    df = load_records(tmp_path)
    assert df.empty and list(df.columns) == list(COLUMNS)


WRITER = """
import sys, time, gevent
from dcc_capacity.load.records import RecordWriter
w = RecordWriter(sys.argv[1], tag="victim")
i = 0
print("ready", flush=True)
while True:
    for _ in range(20):
        w.write(request_id=str(i), intended_ts=time.time(), outcome="ok", step=i % 1000)
        i += 1
    gevent.sleep(0.01)
"""


def _rows(folder) -> int:
    try:
        return len(load_records(folder))
    except Exception:  # noqa: BLE001 - no complete batch on disk yet
        return 0


def test_sigkill_loses_at_most_the_last_second(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, env=env)
    assert proc.stdout.readline().strip() == b"ready"
    wait_until(lambda: _rows(tmp_path) > 1500, 30.0, "1,500 rows flushed", every=0.2)  # ~2,000 rows/s
    killed_at = time.time()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=5)
    df = load_records(tmp_path)
    ids = df["request_id"].astype(int)
    assert len(df) > 1500  # at least what was on disk before the kill
    assert (ids.sort_values().diff().dropna() == 1).all()  # a prefix of what was written, no holes
    assert df["intended_ts"].max() >= killed_at - 1.25  # lost at most the last second (+ scheduling slack)


def test_writer_throughput(tmp_path):
    n = 50_000
    with RecordWriter(tmp_path, start_flusher=False) as w:
        t = time.perf_counter()
        for i in range(n):
            _req(w, str(i), outcome="ok")
        rate = n / (time.perf_counter() - t)
    print(f"records written: {rate:,.0f} rows/s")
    assert rate > 20_000  # measured ~260k rows/s; the generator needs a few thousand per second
    assert len(load_records(tmp_path)) == n


def test_iter_records_streams_the_same_fold_and_reads_old_folders(tmp_path):
    from dcc_capacity.load.records import RecordStats, iter_records

    legacy = tmp_path / "records-old.arrows"  # runs before records/ existed wrote into the run folder itself
    with RecordWriter(tmp_path, tag="p1", start_flusher=False) as w:
        _req(w, "a")
        w.flush()
        _req(w, "b")
        w.write(kind="callback", request_id="b", outcome="missing", error="no async response")
        w.flush()
        w.write(kind="alert", callback_ts=101.0)
        w.write(kind="callback", request_id="a", callback_ts=100.5, trt_ms=500.0, response_code="I0", outcome="ok")
        w.flush()
        w.write(kind="callback", request_id="b", callback_ts=103.0, trt_ms=3000.0, outcome="late")
    (tmp_path / "records" / "records-p1.arrows").rename(legacy)
    stats = RecordStats()
    batches = list(iter_records(tmp_path, batch_rows=1, kinds=("request", "alert"), stats=stats))
    df = pd.concat(batches, ignore_index=True)
    assert len(batches) >= 2 and stats.files == 1 and stats.alerts == 1 and not stats.truncated
    rows = df[df.kind == "request"].set_index("request_id")
    assert rows.loc["a", "outcome"] == "ok" and rows.loc["a", "trt_ms"] == 500.0
    assert rows.loc["b", "outcome"] == "late" and rows.loc["b", "trt_ms"] == 3000.0
    assert (df.kind == "alert").sum() == 1
