"""summary.json and junit.xml: the machine-readable halves of the evidence.

summary.json follows the design.md CLI contract (CI and ``--baseline`` read
it); junit.xml gives one testcase per NFR so any CI dashboard shows the
verdicts without parsing HTML.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pandas as pd

from dcc_capacity.load.records import OUTCOMES
from dcc_capacity.report.metrics import Metrics
from dcc_capacity.report.traceability import Traceability

__all__ = ["summary", "write_json", "write_junit", "clean"]


def clean(value: Any) -> Any:
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python, recursively."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value


def _lat(row: pd.Series | dict[str, Any], short: str) -> dict[str, Any]:
    out: dict[str, Any] = {q: row.get(f"{short}_{q}") for q in ("p50", "p95", "p99", "max")}
    out["count"] = int(row.get(f"{short}_n") or 0)
    return out


def _group(row: dict[str, Any], duration_s: float | None) -> dict[str, Any]:
    return {"requests": int(row["requests"]), "failures": int(row["failures"]), "ok": int(row["ok"]),
            "offered_rate": row["requests"] / duration_s if duration_s else None,
            "achieved_rate": row["ok"] / duration_s if duration_s else None,
            "ack_ms": _lat(row, "ack"), "trt_ms": _lat(row, "trt") | {"missing": int(row["missing"])},
            "outcomes": {k: int(row.get(k, 0)) for k in OUTCOMES}}


def summary(run: dict[str, Any], metrics: Metrics, trace: Traceability, duration_s: float | None,
            incomplete: bool, extra: dict[str, Any], alerts: int = 0) -> dict[str, Any]:
    """The summary.json document: the design.md contract keys first, then detail.

    ``requests`` counts SRV attempts (sent or dropped, ``pending`` included): one per request row, except
    that a critical SRV's CV 4 and CV 5 rows are one attempt (:mod:`.srvfold`); ``by_label`` keeps the steps;
    SECMP0192 executions' responses are none of them (``scheduled``, :mod:`.scheduled`, added by the build);
    ``failures`` those whose outcome is error, throttled, late, missing or
    dropped; ``offered_rate`` = requests / duration, ``achieved_rate`` = ok
    requests / duration. Percentiles are exact (linear interpolation, as
    numpy/pandas); a missing response counts in TRT as the timeout (the
    listener records it censored, docs/measurement.md) and ``trt_ms.missing``
    says how many of ``trt_ms.count`` are such (NFR-LOST judges them too).
    """
    overall = metrics.overall()
    req = int(overall.get("requests", 0))
    groups = metrics.groups
    doc: dict[str, Any] = {
        "test": run["test_id"], "offered_rate": req / duration_s if duration_s else None,
        "achieved_rate": overall.get("ok", 0) / duration_s if duration_s else None,
        "duration_s": duration_s, "requests": req, "failures": int(overall.get("failures", 0)),
        "ack_ms": _lat(overall, "ack"), "trt_ms": _lat(overall, "trt") | {"missing": int(overall.get("missing", 0))},
        "by_srv": {str(k): _group(r, duration_s) for k, r in groups["srv"].to_dict("index").items()},
        "nfr": [{"id": r.nfr.id, "pass": r.status == "pass", "status": r.status, "test_id": r.test_id,
                 "metric": r.nfr.what, "scope": r.nfr.scope_text, "measured": r.measured, "op": r.nfr.op,
                 "threshold": r.nfr.threshold, "samples": r.samples, "message": r.message,
                 **({"groups": r.groups} if r.groups else {}),
                 **({"baseline": r.baseline, "no_degradation": r.no_degradation} if r.baseline is not None else {})}
                for r in trace.results if r.status != "not run"],
        "pass": trace.all_pass and not incomplete,
        "test_type": run["test_type"], "sp": run["sp"], "slot": run.get("slot"),
        "status": run["status"], "complete": not incomplete,
        "failure_rate": overall.get("failures", 0) / req if req else None,
        "outcomes": {k: int(overall.get(k, 0)) for k in OUTCOMES},
        "failure_reasons": dict(getattr(metrics, "failure_reasons", {}) or {}),
        "alerts": alerts,
        "by_class": {str(k): _group(r, duration_s) for k, r in groups["class"].to_dict("index").items()},
        "by_slot": {str(k): _group(r, duration_s) for k, r in groups["slot"].to_dict("index").items()},
        "by_label": {str(k): _group(r, duration_s) for k, r in groups["label"].to_dict("index").items()}
        if "label" in groups else {},
    }
    doc.update(extra)
    return clean(doc)


def write_json(path: Path, doc: dict[str, Any]) -> None:
    path.write_text(json.dumps(clean(doc), indent=1, allow_nan=False) + "\n", encoding="utf-8")


def write_junit(path: Path, trace: Traceability, incomplete: bool, suite: str, invalid: str = "") -> None:
    """One <testcase> per NFR this run judged; an incomplete or INVALID run (``invalid``: why) fails every one.

    Rows of the catalogue's other tests ("not run" here) stay in the HTML
    traceability matrix but are left out: a CI dashboard shows this run's verdicts.
    """
    cases = []
    for r in trace.results:
        if r.status == "not run":
            continue
        case = ET.Element("testcase", name=r.nfr.id, classname=r.test_id)
        detail = (f"{r.nfr.text}\n{r.nfr.what} [{r.nfr.scope_text}] measured {r.measured} {r.nfr.op} "
                  f"{r.nfr.threshold} (samples {r.samples})" + (f"; {r.message}" if r.message else ""))
        if r.groups:
            detail += "\n" + "\n".join(f"  {g}: {v}" for g, v in r.groups.items())
        if invalid:
            ET.SubElement(case, "failure", message=f"run INVALID ({invalid}): not evidence; {detail}",
                          type="run invalid")
        elif r.status != "pass" or incomplete or r.no_degradation is False:
            why = r.status if r.status != "pass" else ("run incomplete" if incomplete else "degraded vs baseline")
            ET.SubElement(case, "failure", message=f"{why}: {detail}", type=why)
        else:
            ET.SubElement(case, "system-out").text = detail
        cases.append(case)
    ts = ET.Element("testsuite", name=suite, tests=str(len(cases)),
                    failures=str(sum(1 for c in cases if c.find("failure") is not None)),
                    skipped=str(sum(1 for c in cases if c.find("skipped") is not None)), errors="0")
    ts.extend(cases)
    root = ET.Element("testsuites")
    root.append(ts)
    ET.indent(root)
    path.write_bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))
