"""The scale test (SCTAD 3.6): ramp up past the knee, hold, come back down; did latency and throughput recover?

SCTAD 3.6 asks each DCC Service Provider to "demonstrate that it has in place a dynamically scaling solution and
show that it has the ability to scale both up and down dependent on processing loads" (the CP, DCO and S1SP; the
DSP's scaling "is therefore not subjected to this scalability test"). The seed sets no figure for it.

The shape steps the reference rate through ``--start-factor`` .. ``--max-factor`` by ``--step`` (``--step-duration``
each), holds the top step for ``--hold`` (default one step), then steps back down through the same factors. The
report measures each step over its last half (the first half lets the SUT settle) and compares each down-ramp
step with the up-ramp step at the same rate: it *recovered* when the down step completes at least
(1 - tolerance) x the share of its offered SRVs the up step completed, and its ack p95 is at most
max((1 + tolerance) x the up step's, the up step's + 20 ms). The held top step crossed the knee when it broke
the same rule against the last up step. The tolerance (``--recovery-tolerance``, 0.1), the 20 ms floor and the
settling half are project defaults, not SCTAD figures. The embedded emulator's default capacity puts the knee
inside the ramp (the mid factor's rate), so an unattended run crosses it.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

from dcc_capacity.spec.model import SpecBase, StepKnobs, knob
from dcc_capacity.testtypes.base import EmulatorContext, FinishContext, TestType

__all__ = ["RECOVERY_FLOOR_MS", "Scale", "ScaleSpec", "compare_ramps", "schedule"]

RECOVERY_FLOOR_MS = 20.0
"""A down step's ack p95 may exceed its up step's by this much however small the tolerance (project default:
the same margin as the catch-up's recovered level, so millisecond jitter is not a failure)."""
SETTLE_FRACTION = 0.5
"""Each step is measured over its last half: the first half is the SUT's time to settle at the new rate (project
default; a scaling SUT adds capacity in that time, and a backlog from the step before drains)."""
COLUMNS = ["intended_ts", "ack_ms", "outcome"]


class ScaleSpec(StepKnobs, SpecBase):
    test: Literal["scale"] = "scale"
    hold_s: float | None = knob(None, "scale: how long the top step is held (default: one --step-duration)",
                                flag="--hold", duration=True, group="steps")
    recovery_tolerance: float = knob(0.1, "scale: how much worse (a fraction) a down-ramp step may be than the "
                                          "up-ramp step at the same rate and still count as recovered (a project "
                                          "default)", lo=0, hi=1, group="steps")


def schedule(spec: Any) -> list[dict[str, Any]]:
    """The steps: phase (up, hold, down), factor and window (s from the test start), cut at ``--duration``."""
    up = spec.factors()
    hold = spec.hold_s or spec.step_s
    plan = [("up", f, spec.step_s) for f in up[:-1]] + [("hold", up[-1], hold)]
    plan += [("down", f, spec.step_s) for f in reversed(up[:-1])]
    out, t = [], 0.0
    for i, (phase, factor, length) in enumerate(plan):
        if t >= spec.duration_s:
            break
        out.append({"step": i, "phase": phase, "factor": factor, "start_s": t,
                    "end_s": min(t + length, spec.duration_s)})
        t += length
    return out


_SHAPE: Any = None


def _shape_class() -> Any:
    """ScaleShape, made on first use: the shape base imports Locust, which the CLI process must not."""
    global _SHAPE
    if _SHAPE is None:
        from dcc_capacity.load.shapes import RateShape

        class ScaleShape(RateShape):
            """The reference rates times the factor of the step ``t`` falls in (:func:`schedule`)."""

            abstract = True
            rates: dict[str, float] = {}
            steps: list[dict[str, Any]] = []

            def rates_at(self, t: float) -> dict[str, float] | None:
                for s in self.steps:
                    if s["start_s"] <= t < s["end_s"]:
                        return {k: v * s["factor"] for k, v in self.rates.items()}
                return None

        _SHAPE = ScaleShape
    return _SHAPE


class Scale(TestType):
    name, spec, test_id, title = "scale", ScaleSpec, "SCALE", "Scale up and down"
    section, template = "scale", "_scale.html.j2"

    def shape(self, spec: Any, r: Any) -> Any:
        steps = schedule(spec)
        return _shape_class()(rates=r.rates, steps=steps, duration_s=steps[-1]["end_s"] if steps else 0.0)

    def peak_factor(self, spec: Any) -> float:
        return float(spec.max_factor)

    def emulator(self, spec: Any, r: Any, cfg: dict[str, Any], ctx: EmulatorContext) -> None:
        if ctx.emulator_tps is None:  # the knee at the middle factor's rate: the ramp crosses it
            cfg["capacity"]["tps"] = max(10.0, sum(r.rates.values()) * (spec.start_factor + spec.max_factor) / 2)
        cfg["capacity"]["queue_limit"] = max(10, int(cfg["capacity"]["tps"] * 0.2))  # overload shows as E48

    def duration(self, spec: Any, shape: dict[str, Any] | None) -> float:
        steps = schedule(spec)
        return steps[-1]["end_s"] if steps else float(spec.duration_s)

    def finish(self, spec: Any, run: dict[str, Any], ctx: FinishContext) -> None:
        base = sum((run.get("rates") or {}).get(c, {}).get("target", 0.0) for c in run.get("rates") or {})
        run["scale"] = {"steps": [{**s, "target_rate": base * s["factor"]} for s in schedule(spec)],
                        "tolerance": spec.recovery_tolerance, "floor_ms": RECOVERY_FLOOR_MS}

    def analyse(self, folder: Any, metrics: Any, duration: float | None, batches: Any,
                limits: dict[str, Any]) -> dict[str, Any] | None:
        scale = folder.run.get("scale") or {}
        steps = scale.get("steps") or []
        return compare_ramps(steps, lambda: batches(COLUMNS), folder.start_epoch,
                             float(scale.get("tolerance", 0.1)), float(scale.get("floor_ms", RECOVERY_FLOOR_MS)))

    def line(self, s: dict[str, Any]) -> str | None:
        worst = s.get("worst") or {}
        tail = f" (worst at {worst['target_rate']:.1f} SRV/s: {worst['why']})" if worst.get("why") else ""
        return (f"scale: {len(s['pairs'])} down-ramp steps compared with the up-ramp at the same rate; "
                f"latency and throughput recovered: {s['verdict'].upper()}{tail}")

    def risk(self, s: dict[str, Any]) -> dict[str, str] | None:
        if s.get("verdict") != "fail":
            return None
        return {"level": "high", "text": "Scale: after the peak, latency or throughput did not come back to the "
                                         "up-ramp's at the same rate (SCTAD 3.6 scale down).", "href": "scale"}


def _windows(steps: list[dict[str, Any]], batches: Any, start_epoch: float) -> list[dict[str, Any]]:
    """Per step, from the records: SRV attempts and OK SRVs (``srv_row``), ack p95 of the HTTP exchanges."""
    from dcc_capacity.report.quantiles import NBINS, bin_index, quantile_from_hist

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

