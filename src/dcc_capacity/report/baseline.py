"""Baseline comparison: "no degradation" against an earlier run (consultation response, R2.0 baseline).

The baseline is another run folder. Its ``summary.json`` (written by an
earlier ``report``) is enough, so a baseline does not need its 100 M records
kept; only if it has no summary are its records aggregated again.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dcc_capacity.errors import InputError
from dcc_capacity.report.traceability import Traceability

__all__ = ["load_baseline", "compare", "HEADLINE"]

HEADLINE = ("ack_ms.p50", "ack_ms.p95", "ack_ms.p99", "ack_ms.max", "trt_ms.p50", "trt_ms.p95", "trt_ms.p99",
            "trt_ms.max", "failure_rate", "achieved_rate")
"""Overall metrics shown beside the baseline; for all but achieved_rate, lower is better."""


def load_baseline(path: str | Path, summarise: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """The baseline's summary; ``summarise(folder)`` builds it from the records when the folder has none.

    The report builder passes its own ``summarise_folder`` (so this module does not import the builder that
    imports it)."""
    path = Path(path)
    if not path.is_dir():
        raise InputError("baseline run folder not found", file=path)
    summary = path / "summary.json"
    if not summary.exists():
        return summarise(path)
    try:
        doc = json.loads(summary.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON ({exc.msg})", file=summary, line=exc.lineno) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("nfr"), list):
        raise InputError("baseline summary has no 'nfr' list", file=summary, key="nfr")
    return doc


def _degraded(current: float, base: float, lower_is_better: bool, tolerance_pct: float) -> bool:
    tol = tolerance_pct / 100.0
    if lower_is_better:
        return current > base * (1 + tol) + 1e-12
    return current < base * (1 - tol) - 1e-12


def _change(current: float | None, base: float | None) -> float | None:
    if current is None or base is None or base == 0 or math.isnan(base) or math.isnan(current):
        return None
    return (current - base) / abs(base) * 100.0


def _common_groups(measured: float, groups: dict[str, Any] | None, base: float, base_groups: Any,
                   op: str) -> tuple[float, float]:
    """A per-group NFR compared on the groups both runs have (worst of each side over those).

    A group only this run has (SMETS1 migration traffic added to a SMETS2-only
    baseline, say) has nothing to be degraded against: its NFR judges it. So
    "no degradation" means the traffic of the baseline got no worse.
    """
    if not groups or not isinstance(base_groups, dict):
        return measured, base
    common = [g for g, v in groups.items()
              if isinstance(v, (int, float)) and isinstance(base_groups.get(g), (int, float))]
    if not common:
        return measured, base
    worst = max if op in ("<=", "<") else min
    return worst(float(groups[g]) for g in common), worst(float(base_groups[g]) for g in common)


def _headline(summary: dict[str, Any]) -> dict[str, float | None]:
    """Flatten a summary's overall figures into the HEADLINE keys."""
    out: dict[str, float | None] = {}
    for key in HEADLINE:
        if "." in key:
            base, q = key.split(".")
            out[key] = (summary.get(base) or {}).get(q)
        else:
            out[key] = summary.get(key)
    return out


def compare(current: dict[str, Any], base: dict[str, Any], trace: Traceability,
            tolerance_pct: float) -> dict[str, Any]:
    """Fill each result row's baseline columns; return the headline comparison table and the verdict."""
    base_nfr = {str(r.get("id")): r for r in base.get("nfr", [])}
    for r in trace.results:
        if r.status == "not run" or r.measured is None:
            continue
        b = base_nfr.get(r.nfr.id, {}).get("measured")
        if not isinstance(b, (int, float)):
            continue
        measured, b = _common_groups(r.measured, r.groups, b, base_nfr[r.nfr.id].get("groups"), r.nfr.op)
        r.baseline = float(b)
        r.compared = measured if measured != r.measured else None
        r.change_pct = _change(measured, r.baseline)
        r.no_degradation = not _degraded(measured, r.baseline, r.nfr.op in ("<=", "<"), tolerance_pct)
    rows = []
    cur_h, base_h = _headline(current), _headline(base)
    for key in HEADLINE:
        c, b = cur_h.get(key), base_h.get(key)
        ok = None
        if isinstance(c, (int, float)) and isinstance(b, (int, float)) and not (math.isnan(c) or math.isnan(b)):
            ok = not _degraded(c, b, key != "achieved_rate", tolerance_pct)
        rows.append({"metric": key, "current": c, "baseline": b, "change_pct": _change(c, b), "ok": ok})
    judged = [r.no_degradation for r in trace.results if r.no_degradation is not None]
    return {"test": base.get("test"), "tolerance_pct": tolerance_pct, "rows": rows,
            "no_degradation": bool(judged) and all(judged),
            "headline_ok": all(r["ok"] is not False for r in rows)}
