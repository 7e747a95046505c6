"""From the volume model to a running shape: target SRV/s per user class over time, per test type.

``TestSpec`` is everything that decides the offered load (profile, SP, slot,
test type, rate override, duration, stress/spike/catch-up knobs). It travels
as Locust options, so ``locust -f locustfiles/dcc.py`` and ``dcc-capacity run``
(and every worker) build the same shape from the same inputs. ``DccShape`` is
the one LoadTestShape class in the locustfile: on first use it builds the
concrete shape of ``shapes.py`` for the test and delegates to it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from dcc_capacity.load.controlled_shape import ControlledShape
from dcc_capacity.load.shapes import CatchupShape, LoadShape, RateShape, SoakShape, SpikeShape, StressShape
from dcc_capacity.model.cpmigration import cp_rates
from dcc_capacity.model.volume import SLOTS, VolumePlan
from dcc_capacity.spec.resolve import TestSpec, class_rates, drop, parse_duration, resolve, scaled, spec_from_options
from dcc_capacity.spec.safety import cap_rates

__all__ = ["Built", "DccShape", "NoisyShape", "build_shape"]

@dataclass
class Built:
    """The concrete shape plus what run.json / the emulator need to know about it."""

    shape: RateShape
    rates: dict[str, float]
    """Per-class SRV/s at the reference point (the slot's peak or the override), before test factors."""
    alerts_per_s: float
    slot: str
    plan: VolumePlan


class NoisyShape(RateShape):
    """Base rates all along; in the middle third ``NoisyNeighbour`` adds ``burst_factor`` x the base total."""

    abstract = True
    rates: dict[str, float] = {}
    burst_factor: float = 2.0

    def rates_at(self, t: float) -> dict[str, float] | None:
        if t >= self.duration_s:
            return None
        out = dict(self.rates)
        d = self.duration_s
        out["NoisyNeighbour"] = sum(self.rates.values()) * self.burst_factor if d / 3 <= t < 2 * d / 3 else 0.0
        return out


def build_shape(spec: TestSpec) -> Built:
    """The concrete shape of ``spec`` (InputError for a bad profile / SP / slot)."""
    r = resolve(spec)
    plan, slot, rates, alerts = r.plan, r.slot, r.rates, r.alerts_per_s
    d = spec.duration_s
    shape: RateShape
    if spec.test in ("load", "negative"):
        shape = LoadShape(rates=rates, duration_s=d)
    elif spec.test == "stress" and spec.interactive:
        shape = ControlledShape(rates=rates, start_factor=spec.start_factor, step_fraction=spec.step_fraction,
                                hold_s=spec.step_s, max_factor=spec.max_factor, max_error_rate=spec.max_error_rate,
                                max_p95_ms=spec.max_p95_ms, stop_criterion="p95" if spec.max_p95_ms else "error_rate",
                                duration_s=d)
    elif spec.test == "stress":
        shape = StressShape(rates=rates, start_factor=spec.start_factor, step_fraction=spec.step_fraction,
                            step_s=spec.step_s, max_factor=spec.max_factor, max_error_rate=spec.max_error_rate,
                            max_p95_ms=spec.max_p95_ms, duration_s=d)
    elif spec.test == "soak":
        slot_rates = {s: class_rates(plan, spec.sp, s, spec.secmp0192_share, spec.s1sp) for s in SLOTS}
        if spec.sp == "CP":  # CP mode: installations/s of the file-driving class (model/cpmigration.py)
            slot_rates = {s: cp_rates(plan, r) for s, r in slot_rates.items()}
        peak = max(sum(r.values()) for r in slot_rates.values())
        f = (spec.rate / peak) if (spec.rate is not None and peak > 0) else 1.0
        shape = SoakShape(slot_rates={s: drop(scaled(r, f), spec.exclude) for s, r in slot_rates.items()},
                          duration_s=d)
    elif spec.test == "spike":
        shape = SpikeShape(rates=rates, spike_factor=spec.spike_factor, spike_at_s=d / 3, spike_s=d / 6,
                           duration_s=d)
    elif spec.test == "catchup":
        outage = spec.outage_s or d / 6
        if spec.client_hold:
            shape = CatchupShape(rates=rates, outage_at_s=d / 3, outage_s=outage, hold_factor=0.0,
                                 catchup_factor=2.0, duration_s=d)
        else:  # the SUT has the outage (embedded emulator): clients keep sending, the SUT's backlog drains after
            shape = CatchupShape(rates=rates, outage_at_s=d / 3, outage_s=outage, hold_factor=1.0,
                                 catchup_factor=1.0, duration_s=d)
    else:
        shape = NoisyShape(rates=rates, burst_factor=spec.burst_factor, duration_s=d)
    return Built(shape, rates, alerts, slot, plan)


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
                spec = dataclasses.replace(spec, duration_s=float(opts.run_time))
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
        """``--max-rate`` / ``--max-duration`` (run configuration safety): enforced here, in every process."""
        cached = self.__dict__.get("_ceiling_values")
        if cached is not None:
            return cached
        opts = self.options if self.options is not None else getattr(getattr(self.runner, "environment", None),
                                                                     "parsed_options", None)
        rate = float(getattr(opts, "max_rate", 0) or 0) or None
        dur = str(getattr(opts, "max_duration", "") or "")
        values = (rate, parse_duration(dur, "--max-duration") if dur else None)
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
