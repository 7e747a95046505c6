"""From the volume model to a running shape: target SRV/s per user class over time, per test type.

The run spec (spec/model.py) is everything that decides the offered load; every Locust process reads the same
one (``--dcc-spec``, or the generated ``--dcc-*`` options of a plain ``locust -f``), so every worker builds the
same shape. ``DccShape`` is the one LoadTestShape class in the locustfile: on first use it asks the test type's
plugin (testtypes/) for the concrete shape and delegates to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from dcc_capacity.load.controlled_shape import ControlledShape
from dcc_capacity.load.shapes import (
    CatchupShape,
    LoadShape,
    NoisyShape,
    RateShape,
    SoakShape,
    SpikeShape,
    StepsShape,
    StressShape,
)
from dcc_capacity.model.volume import VolumePlan
from dcc_capacity.spec.model import SpecBase
from dcc_capacity.spec.options import spec_from_options
from dcc_capacity.spec.resolve import resolve
from dcc_capacity.spec.safety import cap_rates
from dcc_capacity.testtypes.registry import get

__all__ = ["SHAPES", "Built", "DccShape", "build_shape"]


@dataclass
class Built:
    """The concrete shape plus what run.json / the emulator need to know about it."""

    shape: RateShape
    rates: dict[str, float]
    """Per-class SRV/s at the reference point (the slot's peak or the override), before test factors."""
    alerts_per_s: float
    slot: str
    plan: VolumePlan


SHAPES = SimpleNamespace(**{c.__name__: c for c in (
    RateShape, LoadShape, SpikeShape, CatchupShape, SoakShape, NoisyShape, StepsShape, StressShape, ControlledShape)})
"""The shape classes a test type's ``shape`` hook builds from (handed in: testtypes/ does not import Locust)."""


def build_shape(spec: SpecBase) -> Built:
    """The concrete shape of ``spec``, made by its test type (testtypes/); InputError for bad input."""
    r = resolve(spec)
    return Built(get(spec.test).shape(spec, r, SHAPES), r.rates, r.alerts_per_s, r.slot, r.plan)


class DccShape(RateShape):
    """The locustfile's shape: built from the Locust options on first use, then delegating to it."""

    abstract = False
    use_common_options = True  # reads Locust's --run-time (so Locust does not call it ignored); -u/-r do nothing
    options: Any = None
    """Set by the locustfile's init hook (the environment's parsed options)."""

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self._inner: RateShape | None = None
        self.built: Built | None = None

    @property
    def controlled(self) -> ControlledShape | None:
        """The operator-steered shape inside (``--dcc-interactive`` stress), for the web UI's controls."""
        inner = self.inner
        return inner if isinstance(inner, ControlledShape) else None

    @property
    def inner(self) -> RateShape:
        if self._inner is None:
            opts = self.options
            if opts is None and self.runner is not None:
                opts = self.runner.environment.parsed_options
            spec = spec_from_options(opts)
            if getattr(opts, "run_time", None):  # Locust's own -t/--run-time bounds the test, over --dcc-duration
                spec = spec.model_copy(update={"duration_s": float(opts.run_time)})
            self.built = build_shape(spec)
            self._inner = self.built.shape
            self.duration_s = self._inner.duration_s
        return self._inner

    def _sync(self) -> RateShape:
        inner = self.inner
        inner.runner = self.runner
        inner.start_time = self.start_time
        return inner

    def _ceilings(self) -> tuple[float | None, float | None]:
        """The spec's safety ceilings (``safety.max_rate`` / ``max_duration``): enforced here, in every process."""
        cached = self.__dict__.get("_ceiling_values")
        if cached is not None:
            return cached
        opts = self.options if self.options is not None else getattr(getattr(self.runner, "environment", None),
                                                                     "parsed_options", None)
        spec = spec_from_options(opts)
        values = (spec.max_rate, spec.max_duration_s)
        if opts is not None:
            self._ceiling_values = values
        return values

    def rates_at(self, t: float) -> dict[str, float] | None:
        max_rate, max_s = self._ceilings()
        if max_s is not None and t >= max_s:
            return None
        return cap_rates(self.inner.rates_at(t), max_rate)

    def tick(self) -> tuple[int, float, list] | None:
        inner = self._sync()
        max_s = self._ceilings()[1]
        out = None if max_s is not None and self.get_run_time() >= max_s else inner.tick()
        if out is None:
            self.finish()
            return None
        # One scheduler per class that has a rate at ANY time of the test, from the start: Locust's dispatcher
        # does not reliably add a class that joins mid-test (soak's day slot, the noisy neighbour's burst), and a
        # scheduler whose rate is 0 just waits.
        names = self._all_classes()
        classes = [c for c in (self.runner.user_classes if self.runner else []) if c.__name__ in names]
        return (self.workers() * len(classes), out[1], classes)

    def _all_classes(self) -> set[str]:
        if getattr(self, "_names", None) is None:
            inner = self.inner
            end = inner.duration_s if inner.duration_s != float("inf") else 3600.0
            names: set[str] = set()
            t, step = 0.0, max(0.05, min(1.0, end / 500))
            if isinstance(inner, StressShape | ControlledShape):
                names = {k for k, v in inner.rates.items() if v > 0}
            else:
                while t < end:
                    names |= {k for k, v in (inner.rates_at(t) or {}).items() if v > 0}
                    t += step
            self._names = names
        return self._names

    def reset_time(self) -> None:
        super().reset_time()
        if self._inner is not None:
            self._inner.start_time = self.start_time

    def result(self) -> dict[str, Any]:
        return self.inner.result()
