"""Static parts of the Capacity tab: the volume plan (Table A7, per-class targets) and the NFR thresholds.

Both are read defensively: the plan may be a :class:`~dcc_capacity.model.volume.VolumePlan`,
a profile path, or nothing; NFRs may be :class:`~dcc_capacity.model.nfr.Nfr` models or
plain ``{id, metric, stat, threshold}`` dicts (or ``max``/``min`` instead of
``threshold``), because other parts of the suite hand over whichever they have.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["judge_nfrs", "normalise_nfrs", "plan_view"]

_TIMED = {"ack_ms": "ACK", "trt_ms": "TRT"}


def plan_view(plan: Any, sp: str | None = None, slot: str | None = None,
              row_classes: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """JSON for the plan panel: A7 (SP x slot, SRV/s), the chosen SP/slot, and the target SRV/s per row/class."""
    if plan is None:
        return None
    if isinstance(plan, (str, Path)):
        from dcc_capacity.model.volume import load_plan

        plan = load_plan(plan)
    a7 = getattr(plan, "a7", None)
    if a7 is None:
        return None
    sp = sp or ("DSP" if "DSP" in a7.index else str(a7.index[0]))
    slot = slot or plan.busiest_slot(sp)
    rows = plan.row_rates(sp, slot)
    row_classes = dict(row_classes or {})
    targets = [{"row": row, "user_class": row_classes.get(row, row), "rate": float(rate)} for row, rate in rows.items()]
    profile = getattr(plan, "profile", None)
    return {"profile": getattr(profile, "name", None), "sp": sp, "slot": slot,
            "slots": [str(c) for c in a7.columns],
            "a7": [{"sp": str(idx), **{str(c): float(a7.loc[idx, c]) for c in a7.columns}} for idx in a7.index],
            "a7_rate": float(a7.loc[sp, slot]), "targets": targets}


def _get(item: Any, key: str) -> Any:
    if isinstance(item, Mapping):
        return item.get(key)
    return getattr(item, key, None)


def normalise_nfrs(nfrs: Iterable[Any] | None) -> list[dict[str, Any]]:
    """[{id, metric, stat, threshold, bound}] from whatever NFR objects or dicts were given (bad ones skipped)."""
    out = []
    for item in nfrs or []:
        nid, metric = _get(item, "id"), _get(item, "metric")
        if not nid or not metric:
            continue
        threshold = _get(item, "threshold")
        bound = "max"
        if threshold is None or callable(threshold):
            if _get(item, "max") is not None:
                threshold = _get(item, "max")
            elif _get(item, "min") is not None:
                threshold, bound = _get(item, "min"), "min"
        elif metric in ("achieved_ratio", "achieved_rate"):
            bound = "min"
        try:
            threshold = float(threshold)
        except (TypeError, ValueError):
            continue
        out.append({"id": str(nid), "metric": str(metric), "stat": _get(item, "stat"), "threshold": threshold,
                    "bound": bound, "srv": _get(item, "srv"), "user_class": _get(item, "user_class"),
                    "scoped": any(_get(item, k) for k in ("srv", "user_class", "srv_class", "slot", "per"))})
    return out


def judge_nfrs(nfrs: list[dict[str, Any]], live: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each NFR with the live (windowed, whole-run-wide) value and ok True/False, or None when not judged live.

    Only NFRs without an SRV or class filter are judged live; the others say so
    (the records judge them at the end).
    """
    latency = live.get("latency", {})
    classes = live.get("classes", {})
    out = []
    for n in nfrs:
        value: float | None = None
        note = ""
        if n.get("scoped") or n.get("srv") or n.get("user_class"):
            note = "judged from the records at the end"
        elif n["metric"] in _TIMED:
            value = latency.get(_TIMED[n["metric"]], {}).get(str(n.get("stat") or "p95"))
            if n.get("stat") not in ("p50", "p95", "p99", "max"):
                value, note = None, f"{n.get('stat')}: judged at the end"
        elif n["metric"] in ("error_rate", "failure_rate"):
            # Live, Locust's stats know failures, not their kinds: the end-of-run records split them.
            value = live.get("srv", {}).get("error_rate")
        elif n["metric"] == "achieved_ratio":
            off = sum(c.get("offered_rate", 0.0) for c in classes.values())
            ach = sum(c.get("achieved_rate", 0.0) for c in classes.values())
            value = ach / off if off > 0 else None
        ok = None
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            ok = value <= n["threshold"] if n["bound"] == "max" else value >= n["threshold"]
        out.append({**n, "value": value, "ok": ok, "note": note})
    return out
