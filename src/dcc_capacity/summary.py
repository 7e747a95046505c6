"""A run's verdict files: ``summary.json`` (the CLI contract in design.md) and ``junit.xml`` (one testcase per NFR).

Both are computed from the records alone (never from Locust's in-memory
stats), so they can be rebuilt after the fact, also from a killed run.
Definitions: ``requests`` = request rows (sent or dropped); ``failures`` =
rows whose outcome is error, throttled, late, missing or dropped;
``offered_rate`` = requests / duration; ``achieved_rate`` = ok requests /
duration. ``ack_ms``/``trt_ms`` percentiles are nearest-rank over measured
values (a missing response has no TRT; it is counted in ``trt_ms.missing``
and fails the TRT NFRs instead).
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .nfr import FAILED_OUTCOMES, Nfr, NfrResult, evaluate, percentile
from .records import load_records

__all__ = ["finish_run", "summarize", "write_junit", "write_summary"]

_PCTS = ("p50", "p95", "p99", "max")


def _num(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else float(x)


def _timing(values: pd.Series) -> dict[str, float | None]:
    v = values.to_numpy(dtype=float)
    v = v[np.isfinite(v)]
    out: dict[str, Any] = {p: _num(percentile(v, p)) for p in _PCTS}
    out["count"] = int(v.size)
    return out


def _block(rows: pd.DataFrame, duration_s: float) -> dict[str, Any]:
    n = len(rows)
    failed = int(rows["outcome"].isin(FAILED_OUTCOMES).sum()) if n else 0
    ok = int((rows["outcome"] == "ok").sum()) if n else 0
    trt = _timing(rows["trt_ms"]) if n else _timing(pd.Series(dtype=float))
    trt["missing"] = int((rows["outcome"] == "missing").sum()) if n else 0
    return {
        "requests": n, "failures": failed, "ok": ok,
        "offered_rate": n / duration_s if duration_s > 0 else None,
        "achieved_rate": ok / duration_s if duration_s > 0 else None,
        "ack_ms": _timing(rows["ack_ms"]) if n else _timing(pd.Series(dtype=float)),
        "trt_ms": trt,
        "outcomes": {str(k): int(v) for k, v in rows["outcome"].value_counts().items()} if n else {},
    }


def _duration(req: pd.DataFrame) -> float:
    if req.empty:
        return 0.0
    ends = pd.concat([req["intended_ts"], req["ack_ts"]]).dropna()
    return float(ends.max() - req["intended_ts"].min()) if len(ends) else 0.0


def summarize(records: pd.DataFrame, *, test: str, nfr_results: Sequence[NfrResult] = (),
              duration_s: float | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The summary.json object. ``duration_s``: the test's planned length (default: span of the records)."""
    req = records[records["kind"] == "request"] if not records.empty else records
    dur = float(duration_s) if duration_s else _duration(req)
    overall = _block(req, dur)
    by_srv: dict[str, Any] = {}
    by_class: dict[str, Any] = {}
    if not req.empty:
        key = req["srv_variant"].where(req["srv_variant"] != "", req["label"])
        for g, part in req.groupby(key, sort=True):
            by_srv[str(g)] = _block(part, dur)
        for g, part in req.groupby("user_class", sort=True):
            by_class[str(g)] = _block(part, dur)
    alerts = int((records["kind"] == "alert").sum()) if not records.empty else 0
    summary: dict[str, Any] = {
        "test": test,
        "offered_rate": overall["offered_rate"],
        "achieved_rate": overall["achieved_rate"],
        "duration_s": dur,
        "requests": overall["requests"],
        "failures": overall["failures"],
        "ack_ms": overall["ack_ms"],
        "trt_ms": overall["trt_ms"],
        "outcomes": overall["outcomes"],
        "alerts": alerts,
        "processes": sorted(map(str, req["process"].unique())) if not req.empty else [],
        "by_srv": by_srv,
        "by_class": by_class,
        "nfr": [r.model_dump(by_alias=True) for r in nfr_results],
        "pass": all(r.passed for r in nfr_results),
    }
    if extra:
        summary.update(extra)
    return summary


def _clean(obj: Any) -> Any:
    """JSON has no NaN/inf: a value that was not measured (NaN) or is unbounded (a missing TRT) becomes null."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return _num(float(obj))
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def write_summary(run_dir: str | Path, summary: dict[str, Any]) -> Path:
    path = Path(run_dir) / "summary.json"
    path.write_text(json.dumps(_clean(summary), indent=2, allow_nan=False) + "\n")
    return path


def write_junit(run_dir: str | Path, results: Iterable[NfrResult], *, test: str, duration_s: float = 0.0) -> Path:
    """junit.xml: one testsuite for the run, one testcase per NFR, a <failure> for each NFR not met."""
    results = list(results)
    failures = sum(not r.passed for r in results)
    suites = ET.Element("testsuites", name="dcc-capacity", tests=str(len(results)), failures=str(failures))
    suite = ET.SubElement(suites, "testsuite", name=f"dcc-capacity {test}", tests=str(len(results)),
                          failures=str(failures), errors="0", skipped="0", time=f"{duration_s:.3f}")
    for r in results:
        case = ET.SubElement(suite, "testcase", classname=f"nfr.{test}", name=r.id, time=f"{duration_s:.3f}")
        measured = "n/a" if r.measured is None else f"{r.measured:.6g}"
        detail = (f"{r.description}\nmetric={r.metric}{' ' + r.stat if r.stat else ''} {r.bound}={r.threshold:g} "
                  f"measured={measured} samples={r.samples}")
        if r.groups:
            detail += "\n" + "\n".join(f"  {g}: {'n/a' if v is None else f'{v:.6g}'}" for g, v in r.groups.items())
        if r.passed:
            ET.SubElement(case, "system-out").text = detail
        else:
            ET.SubElement(case, "failure", message=r.message or "not met", type="NfrNotMet").text = detail
    path = Path(run_dir) / "junit.xml"
    ET.ElementTree(suites).write(path, encoding="utf-8", xml_declaration=True)
    return path


def finish_run(run_dir: str | Path, *, test: str, nfrs: Sequence[Nfr], duration_s: float | None = None,
               extra: dict[str, Any] | None = None) -> tuple[dict[str, Any], int]:
    """Load the run's records, judge the NFRs, write summary.json and junit.xml; returns (summary, exit status 0/1).

    A ``shape.json`` the load shape left in the run folder (e.g. the stress knee) is included as ``"shape"``.
    """
    records = load_records(run_dir)
    shape_file = Path(run_dir) / "shape.json"
    if shape_file.exists():
        extra = {"shape": json.loads(shape_file.read_text()), **(extra or {})}
    results = evaluate(nfrs, records)
    summary = summarize(records, test=test, nfr_results=results, duration_s=duration_s, extra=extra)
    write_summary(run_dir, summary)
    write_junit(run_dir, results, test=test, duration_s=summary["duration_s"])
    return summary, 0 if summary["pass"] else 1
