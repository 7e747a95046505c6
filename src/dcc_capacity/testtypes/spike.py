"""The spike test: the base rate, ``--spike-factor`` times it for a sixth of the run from its first third, then
the base rate again."""

from __future__ import annotations

from typing import Any, Literal

from dcc_capacity.spec.model import SpecBase, knob
from dcc_capacity.testtypes.base import TestType

__all__ = ["Spike", "SpikeSpec"]


class SpikeSpec(SpecBase):
    test: Literal["spike"] = "spike"
    spike_factor: float = knob(3.0, "spike: multiple of the base rate", lo=0, lo_open=True, group="type")


class Spike(TestType):
    name, spec, test_id, title = "spike", SpikeSpec, "SPIKE", "Spike"

    def shape(self, spec: Any, r: Any, shapes: Any) -> Any:
        d = spec.duration_s
        return shapes.SpikeShape(rates=r.rates, spike_factor=spec.spike_factor, spike_at_s=d / 3, spike_s=d / 6,
                          duration_s=d)

    def peak_factor(self, spec: Any) -> float:
        return float(spec.spike_factor)
