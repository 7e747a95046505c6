"""Derived findings: the stress knee and the extrapolation to production (SCTAD 3.5, 6.3.6).

Kept apart from :mod:`.metrics` because these are judgements on top of the
numbers (what counts as "degraded", how a test environment scales), which a
reader of the report must be able to see stated.
"""

from __future__ import annotations

import math
from typing import Any

from dcc_capacity.model.nfr import Nfr
from dcc_capacity.report.inputs import RunFolder
from dcc_capacity.report.metrics import Metrics

__all__ = ["stress_steps", "extrapolation", "DEGRADED_ERROR_RATE", "DEGRADED_ACHIEVED_RATIO"]

DEGRADED_ERROR_RATE = 0.01
"""A step with more than 1 % errors (of any kind) is past the knee."""
DEGRADED_ACHIEVED_RATIO = 0.95
"""A step achieving less than 95 % of what was offered is past the knee."""


def _ack_limit(nfrs: list[Nfr]) -> tuple[str, float] | None:
    for metric in ("ack_ms.p95", "trt_ms.p95", "ack_ms.p99", "trt_ms.p99"):
        for n in nfrs:
            if n.what == metric and n.scope == ("all", None) and not n.per and n.max is not None:
                return metric, n.max
    return None


def stress_steps(folder: RunFolder, metrics: Metrics) -> dict[str, Any] | None:
    """Per step: target, offered and achieved rate, p95s, error rate; and the knee (last step still good)."""
    stress = folder.run.get("stress") or {}
    table = metrics.groups["step"]
    declared = {str(s["step"]): s for s in stress.get("steps") or []}
    labels = [s for s in table.index if s != "-"]
    if not labels and not declared:
        return None
    limit = _ack_limit(folder.nfrs)
    rows = []
    for label in sorted(set(labels) | set(declared), key=_step_key):
        decl = declared.get(label, {})
        row: dict[str, Any] = {"step": label, "target_rate": decl.get("target_rate")}
        if label in table.index:
            r = table.loc[label]
            span = None
            if decl.get("start_s") is not None and decl.get("end_s") is not None:
                span = float(decl["end_s"]) - float(decl["start_s"])
            elif label in metrics.step_span.index:
                s = metrics.step_span.loc[label]
                span = float(s["last_ts"] - s["first_ts"]) or None
            row.update(requests=int(r["requests"]), ack_p95=r["ack_p95"], trt_p95=r["trt_p95"],
                       error_rate=r["failures"] / r["requests"] if r["requests"] else math.nan,
                       offered_rate=r["requests"] / span if span else math.nan,
                       achieved_rate=r["ok"] / span if span else math.nan)
            reasons = []
            if row["error_rate"] > DEGRADED_ERROR_RATE:
                reasons.append(f"failures {row['error_rate']:.1%} > {DEGRADED_ERROR_RATE:.0%}")
            if r["requests"] and r["ok"] / r["requests"] < DEGRADED_ACHIEVED_RATIO:
                reasons.append(f"achieved {r['ok'] / r['requests']:.1%} of offered")
            if limit:
                value = r[limit[0].replace("_ms.", "_")]  # "ack_ms.p95" -> column "ack_p95"
                if not math.isnan(value) and value > limit[1]:
                    reasons.append(f"{limit[0]} {value:.0f} ms > {limit[1]:.0f} ms")
            row["degraded"] = "; ".join(reasons)
        rows.append(row)
    knee = None
    for row in rows:
        if row.get("degraded"):
            break
        if "requests" in row:
            knee = row
    return {"steps": rows, "knee": knee, "declared_knee": stress.get("knee"),
            "criteria": {"error_rate": DEGRADED_ERROR_RATE, "achieved_ratio": DEGRADED_ACHIEVED_RATIO,
                         "latency": limit}}


def _step_key(label: str) -> tuple[int, float | str]:
    try:
        return (0, float(label))
    except ValueError:
        return (1, label)


def _test_scale(folder: RunFolder) -> float | None:
    sp = folder.run["sp"]
    plan = folder.plan or {}
    scale = (plan.get("test_scale") or {}).get(sp)
    if scale is None:
        ent = (plan.get("inputs") or {}).get(f"test_scale.{sp}")
        scale = ent.get("value") if isinstance(ent, dict) else ent
    return float(scale) if isinstance(scale, (int, float)) and scale > 0 else None


def extrapolation(folder: RunFolder, metrics: Metrics, stress: dict[str, Any] | None,
                  duration_s: float | None, all_pass: bool, resources: Any = None) -> dict[str, Any]:
    """Test-environment capacity scaled to production through the profile's ``test_scale``.

    Assumes capacity scales linearly with the environment (SCTAD 3.6: the SPs
    demonstrate linear, dynamic scaling); the report states that assumption.
    ``resources`` (:class:`.resources.Resources`): the SUT's peak utilisation per
    host; without it, the embedded emulator's own CPU from metrics.csv.
    """
    from dcc_capacity.report.required import plan_sp

    sp, slot = plan_sp(folder.run), folder.run.get("slot")
    a7 = ((folder.plan or {}).get("A7") or {}).get(sp, {})
    required = a7.get(slot) if slot else (max(a7.values()) if a7 else None)
    scale = _test_scale(folder)
    overall = metrics.overall()
    achieved = overall.get("ok", 0) / duration_s if duration_s else None
    if stress and stress.get("knee") and not math.isnan(stress["knee"].get("achieved_rate", math.nan)):
        capacity, basis = stress["knee"]["achieved_rate"], f"stress knee (step {stress['knee']['step']})"
    elif all_pass and achieved:
        capacity, basis = achieved, "achieved rate with all NFRs met (a lower bound: no stress knee measured)"
    else:
        capacity, basis = None, "no rate at which all NFRs were met"
    alerts_rate = folder.alerts / duration_s if duration_s and folder.alerts else 0.0
    if capacity and alerts_rate:  # Table A7 counts the alerts the SUT raises itself: they are part of its load
        capacity += alerts_rate
        basis += f" + {alerts_rate:.2f}/s alerts the SUT raised (Table A7 includes them)"
    cpu = None
    if folder.sut_metrics is not None and "cpu_percent" in folder.sut_metrics:
        cpu = float(folder.sut_metrics["cpu_percent"].max())
    from dcc_capacity.report.resources import Resources, utilisation

    # The SUT's own hosts (report/resources.py); the same keys, all None, when nothing was collected.
    util = utilisation(resources if resources is not None else Resources(None), folder.nfrs, capacity)
    if util["peak_cpu"] is not None:
        cpu = util["peak_cpu"]
    elif cpu is not None:
        util["peak_cpu_host"], util["peak_cpu_basis"] = "emulator", "embedded emulator process (metrics.csv)"
    headroom = capacity / required if capacity and required else None
    return {
        "sp": sp, "slot": slot, "required_test": required, "test_scale": scale,
        "required_production": required / scale if required is not None and scale else None,
        "capacity_test": capacity, "basis": basis,
        "capacity_production": capacity / scale if capacity and scale else None,
        "headroom": headroom, "peak_cpu": cpu,
        "cpu_headroom": (100.0 - cpu) if cpu is not None else None,
        "met": bool(headroom is not None and headroom >= 1.0 and all_pass),
        **{k: v for k, v in util.items() if k != "peak_cpu"},
    }
