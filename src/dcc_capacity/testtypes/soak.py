"""The soak test: a day in the life, the three Table A1 slots in order (each at its own peak), compressed into
``--duration``; the report judges drift (latency trend, SUT memory growth)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from dcc_capacity.model.cpmigration import cp_rates
from dcc_capacity.model.volume import SLOT_SECONDS, SLOTS
from dcc_capacity.spec.model import SpecBase, knob
from dcc_capacity.spec.rates import class_rates, drop, scaled
from dcc_capacity.testtypes.base import TestType, fmt

__all__ = ["Soak", "SoakSpec", "soak_slots"]


class SoakSpec(SpecBase):
    test: Literal["soak"] = "soak"
    drift_ms_per_h: float | None = knob(None, "soak: largest ack/TRT p95 trend, ms per hour (default 100)",
                                        flag="--drift-limit", locust=None, lo=0, metavar="MS_PER_H", group="verdict")
    memory_mib_per_h: float | None = knob(None, "soak: largest SUT RSS growth, MiB per hour (default 50)",
                                          flag="--memory-growth-limit", locust=None, lo=0, metavar="MIB_PER_H",
                                          group="verdict")


def _slot_rates(spec: Any, plan: Any) -> dict[str, dict[str, float]]:
    """Per slot, the class rates at the slot's own peak, scaled together when ``--rate`` gives the busiest slot's
    total; excluded classes left out."""
    slot_rates = {s: class_rates(plan, spec.sp, s, spec.secmp0192_share, spec.s1sp) for s in SLOTS}
    if spec.sp == "CP":  # CP mode: installations/s of the file-driving class (model/cpmigration.py)
        slot_rates = {s: cp_rates(plan, r) for s, r in slot_rates.items()}
    peak = max(sum(v.values()) for v in slot_rates.values())
    f = (spec.rate / peak) if (spec.rate is not None and peak > 0) else 1.0
    return {s: drop(scaled(v, f), spec.exclude) for s, v in slot_rates.items()}


def soak_slots(spec: Any, r: Any) -> list[dict[str, Any]]:
    """The soak's slots in day order: window (s from the test start) and SRV/s per class (the slot's A7 peak).

    The same arithmetic as the shape (SoakShape): every slot at its own peak.
    """
    slot_rates = _slot_rates(spec, r.plan)
    total = sum(SLOT_SECONDS[s] for s in SLOTS)
    out, edge = [], 0.0
    for s in SLOTS:
        span = spec.duration_s * SLOT_SECONDS[s] / total
        rates = {k: v for k, v in slot_rates[s].items() if v > 0}
        out.append({"slot": s, "start_s": edge, "end_s": edge + span, "total_rate": sum(rates.values()),
                    "rates": rates})
        edge += span
    return out


class Soak(TestType):
    name, spec, test_id, title = "soak", SoakSpec, "SOAK", "Soak"
    section, template, quiet_slot_ok = "drift", "_drift.html.j2", True
    risk_text, risk_href = "Soak: latency or SUT memory drifts upwards beyond its limit.", "drift"

    def shape(self, spec: Any, r: Any, shapes: Any) -> Any:
        return shapes.SoakShape(slot_rates=_slot_rates(spec, r.plan), duration_s=spec.duration_s)

    def facts(self, spec: Any, r: Any, run_dir: Path, test_start: float, emulator_t0: float | None) -> dict[str, Any]:
        return {"soak": {"slots": soak_slots(spec, r)}}

    def tested_rates(self, run: dict[str, Any], summary: dict[str, Any]) -> dict[str, float] | None:
        """Every slot at its own rate (run.json ``soak.slots``)."""
        if not (run.get("soak") or {}).get("slots"):
            return None
        return {str(s["slot"]): float(s["total_rate"]) for s in run["soak"]["slots"]
                if isinstance(s, dict) and isinstance(s.get("total_rate"), (int, float))}

    def line(self, d: dict[str, Any]) -> str | None:
        parts = [f"{k} {fmt((d.get(k) or {}).get('slope'), '+.1f')} {(d.get(k) or {}).get('unit', '')}"
                 for k in ("ack_p95", "trt_p95", "rss") if k in d]
        return f"soak drift: {', '.join(parts)}: {d['verdict'].upper()}"
