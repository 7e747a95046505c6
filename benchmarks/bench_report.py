"""Time and peak memory of building the whole report from N synthetic records, beside a pandas reference.

Usage: python benchmarks/bench_report.py [--records N] [--keep DIR]

The records are written exactly as the measurement core writes them
(``records/records-<host>-<pid>.arrows``, Arrow IPC stream, zstd, the
RecordWriter schema): a ``pending`` request row at the ack and a ``callback``
row when the response comes, in event-time order, 50,000 rows a batch, over
4 process files. Each measurement runs in its own subprocess so peak RSS is
that of the work alone:
- report: ``dcc_capacity.report.build.build_report`` (everything: the
  streaming fold, two passes, charts, HTML, summary, junit);
- reference: pandas reads the same files whole, folds callbacks into their
  requests with one merge and computes ack and TRT p50/p95/p99 per SRV
  (``groupby().quantile``), nothing else.
Last line: one JSON object {"records", "report_s", "peak_rss_mib", "reference_s", "ratio"}.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

SRVS = ["4.6.1", "4.8.1", "6.15.1", "1.1.1", "12.2", "8.11", "6.8", "2.1", "11.2", "4.14"]
CLASSES = ["meter_reads", "bau", "s1_migration_credit", "s2_ic_credit"]
START = 1_764_000_000.0
CHUNK = 1_000_000

REFERENCE = """
import glob, resource, sys, time, pandas as pd, pyarrow as pa
t = time.perf_counter()
cols = ["kind", "request_id", "srv_variant", "ack_ms", "trt_ms"]
df = pd.concat(pa.ipc.open_stream(pa.memory_map(f)).read_all().select(cols).to_pandas()
               for f in sorted(glob.glob(sys.argv[1] + "/records/*.arrows")))
req, cb = df[df.kind == "request"], df[df.kind == "callback"]
df = req.drop(columns="trt_ms").merge(cb[["request_id", "trt_ms"]], on="request_id", how="left")
q = df.groupby("srv_variant")[["ack_ms", "trt_ms"]].quantile([0.5, 0.95, 0.99])
print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""

BUILD = """
import resource, sys, time
from dcc_capacity.report.build import build_report
t = time.perf_counter()
build_report(sys.argv[1])
print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def write_run(root: Path, n: int, seed: int = 1, processes: int = 4) -> None:
    """A run folder with n requests over an hour at a steady rate, 0.3 % failures, in the writer's format."""
    import pyarrow as pa

    from dcc_capacity.load.records import SCHEMA

    rng = np.random.default_rng(seed)
    (root / "records").mkdir(parents=True, exist_ok=True)
    duration = 3600.0
    run = {"test_id": "SOAK", "test_type": "soak", "sp": "DSP", "slot": "night", "status": "complete",
           "start": "2025-11-24T16:00:00Z", "duration_s": duration, "target": "synthetic",
           "rates": {c: {"target": n / duration / len(CLASSES)} for c in CLASSES}}
    (root / "run.json").write_text(json.dumps(run))
    options = pa.ipc.IpcWriteOptions(compression="zstd")
    writers = [pa.ipc.new_stream(str(root / "records" / f"records-bench-{p}.arrows"), SCHEMA, options=options)
               for p in range(processes)]
    for lo in range(0, n, CHUNK):
        m = min(CHUNK, n - lo)
        intended = START + (lo + np.arange(m)) * (duration / n)
        ack = np.round(rng.lognormal(4.0, 0.6, m), 3)
        trt = np.round(ack + rng.lognormal(6.5, 0.5, m), 3)
        outcome = rng.choice(["ok", "error", "throttled", "missing"], m, p=[0.997, 0.001, 0.001, 0.001])
        trt[outcome == "missing"] = np.nan
        proc = rng.integers(0, processes, m)
        rid = pd.Series(np.arange(lo, lo + m)).astype(str).to_numpy(dtype=object)
        cls, srv = rng.choice(CLASSES, m), rng.choice(SRVS, m)
        throttled = outcome == "throttled"
        req = pd.DataFrame({
            "process": proc.astype(str), "kind": "request", "request_id": rid, "user_class": cls,
            "srv_variant": srv, "label": srv, "arrival": np.arange(lo, lo + m), "step": np.int32(0),
            "intended_ts": intended, "sent_ts": intended, "ack_ts": intended + ack / 1000, "ack_ms": ack,
            "ack_code": np.where(throttled, 429, 200).astype(np.int32), "callback_ts": np.nan, "trt_ms": np.nan,
            "response_code": "", "outcome": np.where(throttled, "throttled", "pending"), "error": "",
            "smets": np.int8(2), "prepay": False})
        cb = req[~throttled].copy()
        done = trt[~throttled]
        cb["kind"] = "callback"
        cb["callback_ts"] = cb["intended_ts"] + done / 1000
        cb["trt_ms"] = done
        cb["outcome"] = outcome[~throttled]
        cb["response_code"] = np.where(cb["outcome"] == "ok", "I0", np.where(cb["outcome"] == "error", "E3", ""))
        events = pd.concat([req.assign(_t=req["ack_ts"]), cb.assign(_t=cb["callback_ts"].fillna(cb["intended_ts"]
                                                                                              + 120))])
        events = events.sort_values("_t", kind="stable").drop(columns="_t")
        for p, part in events.groupby("process", sort=False):
            table = pa.Table.from_pandas(part.assign(process=f"bench-{p}"), schema=SCHEMA, preserve_index=False)
            for batch in table.to_batches(max_chunksize=50_000):
                writers[int(p)].write_batch(batch)
    for w in writers:
        w.close()


def timed(code: str, run_dir: Path) -> tuple[float, float]:
    """Seconds reported by the child, and the child's peak RSS in MiB."""
    out = subprocess.run([sys.executable, "-c", code, str(run_dir)], check=True, capture_output=True, text=True)
    seconds, rss = out.stdout.strip().splitlines()[-1].split()
    return float(seconds), float(rss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--keep", type=Path, help="write the run folder here and keep it")
    parser.add_argument("--write-only", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write_only:
        write_run(args.write_only, args.records)
        return
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.keep or Path(tmp) / "run"
        t = time.perf_counter()
        if not (run_dir / "run.json").exists():
            # In a child: Linux children inherit the parent's peak RSS, which would then swamp both measurements.
            subprocess.run([sys.executable, __file__, "--records", str(args.records), "--write-only", str(run_dir)],
                           check=True)
        print(f"wrote {args.records:,} records in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        reference_s, ref_rss = timed(REFERENCE, run_dir)
        print(f"reference: {reference_s:.2f} s, peak RSS {ref_rss:.0f} MiB", file=sys.stderr)
        report_s, peak = timed(BUILD, run_dir)
        print(f"report: {report_s:.2f} s, peak RSS {peak:.0f} MiB", file=sys.stderr)
    print(json.dumps({"records": args.records, "report_s": round(report_s, 2), "peak_rss_mib": round(peak),
                      "reference_s": round(reference_s, 2), "ratio": round(report_s / reference_s, 2)}))


if __name__ == "__main__":
    main()
