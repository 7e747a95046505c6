"""The scale test's figures (SCTAD 3.6, testtypes/scale.py): each down-ramp step against the up-ramp step at the
same rate, from the records. Recovered: the down step completes at least (1 - tolerance) x the share of its
offered SRVs the up step completed, and its ack p95 is at most max((1 + tolerance) x the up step's, the up
step's + the floor); the held top step crossed the knee when it broke the same rule against the last up step.
The tolerance and floor come from run.json ``scale`` (the spec's ``--recovery-tolerance``, the plugin's
RECOVERY_FLOOR_MS): project defaults, not SCTAD figures.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dcc_capacity.report.quantiles import NBINS, bin_index, quantile_from_hist
from dcc_capacity.testtypes.scale import RECOVERY_FLOOR_MS

__all__ = ["COLUMNS", "SETTLE_FRACTION", "analyse", "compare_ramps"]

SETTLE_FRACTION = 0.5
"""Each step is measured over its last half: the first half is the SUT's time to settle at the new rate (project
default; a scaling SUT adds capacity in that time, and a backlog from the step before drains)."""
COLUMNS = ["intended_ts", "ack_ms", "outcome"]


def analyse(folder: Any, metrics: Any, duration: float | None, batches: Any,
            limits: dict[str, Any]) -> dict[str, Any] | None:
    """The scale section of a run folder: its steps (run.json ``scale``) compared from the records."""
    scale = folder.run.get("scale") or {}
    steps = scale.get("steps") or []
    return compare_ramps(steps, lambda: batches(COLUMNS), folder.start_epoch,
                         float(scale.get("tolerance", 0.1)), float(scale.get("floor_ms", RECOVERY_FLOOR_MS)))


def _windows(steps: list[dict[str, Any]], batches: Any, start_epoch: float) -> list[dict[str, Any]]:
    """Per step, from the records: SRV attempts and OK SRVs (``srv_row``), ack p95 of the HTTP exchanges."""
    edges = [(start_epoch + s["start_s"] + SETTLE_FRACTION * (s["end_s"] - s["start_s"]), start_epoch + s["end_s"])
             for s in steps]
    hist = np.zeros((len(steps), NBINS), dtype=np.int64)
    sent = np.zeros(len(steps), dtype=np.int64)
    ok = np.zeros(len(steps), dtype=np.int64)
    for b in batches():
        it = b["intended_ts"].to_numpy(dtype=float, na_value=np.nan)
        ms = b["ack_ms"].to_numpy(dtype=float, na_value=np.nan)
        good = (b["outcome"].astype(str) == "ok").to_numpy()
        srv = b["srv_row"].to_numpy(dtype=bool) if "srv_row" in b.columns else np.ones(len(b), dtype=bool)
        exch = b["step_row"].to_numpy(dtype=bool) if "step_row" in b.columns else np.ones(len(b), dtype=bool)
        for i, (lo, hi) in enumerate(edges):
            m = (it >= lo) & (it < hi)
            sent[i] += int((m & srv).sum())
            ok[i] += int((m & srv & good).sum())
            e = m & exch & np.isfinite(ms)
            if e.any():
                hist[i] += np.bincount(bin_index(ms[e]), minlength=NBINS)
    out = []
    for i, s in enumerate(steps):
        span = max(edges[i][1] - edges[i][0], 1e-9)
        out.append({**s, "offered": sent[i] / span, "achieved": ok[i] / span,
                    "completed": ok[i] / sent[i] if sent[i] else None,
                    "ack_p95_ms": quantile_from_hist(hist[i], 0.95) if hist[i].sum() else None})
    return out


def _worse(d: dict[str, Any], u: dict[str, Any], tolerance: float, floor_ms: float) -> tuple[list[str], float | None]:
    """Why step ``d`` is worse than step ``u`` (empty: it is not), and the ack p95 limit ``u`` sets."""
    why = []
    if u["completed"] is not None and (d["completed"] or 0.0) < (1 - tolerance) * u["completed"]:
        why.append(f"completed {_pct(d['completed'])} of its SRVs < {_pct((1 - tolerance) * u['completed'])}")
    limit = None
    if u["ack_p95_ms"] is not None:
        limit = max((1 + tolerance) * u["ack_p95_ms"], u["ack_p95_ms"] + floor_ms)
        if d["ack_p95_ms"] is None or d["ack_p95_ms"] > limit:
            why.append(f"ack p95 {_ms(d['ack_p95_ms'])} > {limit:.0f} ms")
    return why, limit


def compare_ramps(steps: list[dict[str, Any]], batches: Any, start_epoch: float, tolerance: float,
                  floor_ms: float = RECOVERY_FLOOR_MS) -> dict[str, Any] | None:
    """Each down step against the up step at the same factor: recovered, and why not; the verdict."""
    if not steps:
        return None
    measured = _windows(steps, batches, start_epoch)
    up = {round(s["factor"], 9): s for s in measured if s["phase"] == "up"}
    pairs = []
    for d in (s for s in measured if s["phase"] == "down"):
        u = up.get(round(d["factor"], 9))
        if u is None:
            continue
        why, limit = _worse(d, u, tolerance, floor_ms)
        pairs.append({"factor": d["factor"], "target_rate": d.get("target_rate", math.nan), "up": u, "down": d,
                      "p95_limit_ms": limit, "recovered": not why, "why": "; ".join(why)})
    top = next((s for s in measured if s["phase"] == "hold"), None)
    last_up = next((s for s in reversed(measured) if s["phase"] == "up"), None)
    knee = _worse(top, last_up, tolerance, floor_ms)[0] if top and last_up else []
    verdict = "no data" if not pairs else ("pass" if all(p["recovered"] for p in pairs) else "fail")
    worst = next((p for p in pairs if not p["recovered"]), None)
    return {"steps": measured, "pairs": pairs, "top": top, "tolerance": tolerance, "floor_ms": floor_ms,
            "past_knee": bool(knee), "knee_signs": "; ".join(knee),
            "verdict": verdict, "worst": {"target_rate": worst["target_rate"], "why": worst["why"]} if worst else None}


def _ms(v: float | None) -> str:
    return "–" if v is None else f"{v:.0f} ms"


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f} %"

