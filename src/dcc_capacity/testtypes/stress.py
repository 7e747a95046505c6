"""The stress test: steps of ``--step`` x the peak every ``--step-duration`` from ``--start-factor`` up to
``--max-factor``, stopping at the first step whose errors or ack p95 exceed their limits; the last healthy step
is the knee. With the web UI on one process the operator steers the steps (a ControlledShape)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import field_validator

from dcc_capacity.spec.model import SpecBase, StepKnobs, knob
from dcc_capacity.testtypes.base import EmulatorContext, FinishContext, TestType

__all__ = ["Stress", "StressSpec", "stress_section"]


def stress_section(result: dict[str, Any]) -> dict[str, Any]:
    """run.json's ``stress`` object of an operator-steered stress test from the ControlledShape's result
    (shape.json, load/controlled_shape.py): its steps and the knee the operator marked."""
    steps = [{"step": s["step"], "target_rate": s["total_rate"], "start_s": s["started_t"], "end_s": s["ended_t"],
              "requests": s["requests"], "failures": s["failures"], "p95_ms": s["p95_ms"], "passed": s["passed"]}
             for s in result.get("steps") or []]
    return {"steps": steps, "knee": result.get("knee_rate")}


class StressSpec(StepKnobs, SpecBase):
    test: Literal["stress"] = "stress"
    max_error_rate: float = knob(0.01, "stress: stop when a step's errors exceed this", lo=0, hi=1, group="steps")
    max_p95_ms: float | None = knob(1000.0, "stress: stop when a step's ack p95 exceeds this (0: off)", lo=0,
                                    group="steps")
    interactive: bool = knob(False, "stress: the operator steers the steps from the web UI's Capacity tab (set by "
                                    "run --web; give it to master and workers when distributed)", config=None,
                             cli=False)

    @field_validator("max_p95_ms")
    @classmethod
    def _off(cls, v: float | None) -> float | None:
        return None if v == 0 else v


class Stress(TestType):
    name, spec, test_id, title = "stress", StressSpec, "STRESS", "Stress"

    def shape(self, spec: Any, r: Any, shapes: Any) -> Any:
        if spec.interactive:
            return shapes.ControlledShape(rates=r.rates, start_factor=spec.start_factor,
                                          step_fraction=spec.step_fraction, hold_s=spec.step_s,
                                          max_factor=spec.max_factor, max_error_rate=spec.max_error_rate,
                                          max_p95_ms=spec.max_p95_ms,
                                          stop_criterion="p95" if spec.max_p95_ms else "error_rate",
                                          duration_s=spec.duration_s)
        return shapes.StressShape(rates=r.rates, start_factor=spec.start_factor, step_fraction=spec.step_fraction,
                                  step_s=spec.step_s, max_factor=spec.max_factor, max_error_rate=spec.max_error_rate,
                                  max_p95_ms=spec.max_p95_ms, duration_s=spec.duration_s)

    def peak_factor(self, spec: Any) -> float:
        return float(spec.max_factor)

    def emulator(self, spec: Any, r: Any, cfg: dict[str, Any], ctx: EmulatorContext) -> None:
        cfg["capacity"]["queue_limit"] = max(10, int(cfg["capacity"]["tps"] * 0.2))  # overload shows as E48 quickly

    def duration(self, spec: Any, shape: dict[str, Any] | None) -> float:
        steps = (shape or {}).get("steps")
        if spec.interactive and steps:
            return float(max(s["ended_t"] for s in steps))  # the operator ended it (or --duration did)
        if steps:
            return len(steps) * spec.step_s
        return float(spec.duration_s)

    def tested_rates(self, run: dict[str, Any], summary: dict[str, Any]) -> dict[str, float] | None:
        """The knee: SRV/s the suite sent at the last healthy step (none: the report's rule)."""
        knee = (summary.get("shape") or {}).get("knee_rate") or (run.get("stress") or {}).get("knee")
        if isinstance(knee, (int, float)) and knee > 0:
            return {str(run.get("slot") or ""): float(knee)}
        return None

    def finish(self, spec: Any, run: dict[str, Any], ctx: FinishContext) -> None:
        shape = ctx.shape
        if shape is not None:
            if spec.interactive:
                run["stress"] = stress_section(shape)
            else:
                run["stress"] = {"steps": [{"step": s["step"], "target_rate": s["total_rate"],
                                            "start_s": s["step"] * spec.step_s, "end_s": (s["step"] + 1) * spec.step_s,
                                            "passed": s["passed"]} for s in shape.get("steps", [])],
                                 "knee": shape.get("knee_rate")}
        knee = (shape or {}).get("knee_rate")
        none = "not marked (steered from the web UI)" if spec.interactive else "none (the first step failed)"
        ctx.messages.append(f"stress knee: {knee:.1f} SRV/s" if knee else f"stress knee: {none}")
