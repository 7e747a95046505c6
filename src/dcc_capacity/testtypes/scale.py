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
settling half are project defaults, not SCTAD figures (the comparison: report/scale.py). The embedded
emulator's default capacity puts the knee inside the ramp (the mid factor's rate), so an unattended run
crosses it.
"""

from __future__ import annotations

from typing import Any, Literal

from dcc_capacity.spec.model import SpecBase, StepKnobs, knob
from dcc_capacity.testtypes.base import EmulatorContext, FinishContext, TestType

__all__ = ["RECOVERY_FLOOR_MS", "Scale", "ScaleSpec", "schedule"]

RECOVERY_FLOOR_MS = 20.0
"""A down step's ack p95 may exceed its up step's by this much however small the tolerance (project default:
the same margin as the catch-up's recovered level, so millisecond jitter is not a failure)."""


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


class Scale(TestType):
    name, spec, test_id, title = "scale", ScaleSpec, "SCALE", "Scale up and down"
    section, template = "scale", "_scale.html.j2"
    risk_text = ("Scale: after the peak, latency or throughput did not come back to the up-ramp's at the same rate "
                 "(SCTAD 3.6 scale down).")
    risk_href = "scale"

    def shape(self, spec: Any, r: Any, shapes: Any) -> Any:
        steps = schedule(spec)
        return shapes.StepsShape(rates=r.rates, steps=steps, duration_s=steps[-1]["end_s"] if steps else 0.0)

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

    def line(self, s: dict[str, Any]) -> str | None:
        worst = s.get("worst") or {}
        tail = f" (worst at {worst['target_rate']:.1f} SRV/s: {worst['why']})" if worst.get("why") else ""
        return (f"scale: {len(s['pairs'])} down-ramp steps compared with the up-ramp at the same rate; "
                f"latency and throughput recovered: {s['verdict'].upper()}{tail}")
