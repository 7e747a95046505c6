"""Load shapes: target SRV/s per user class as a pure function of elapsed time.

Every shape here is a :class:`RateShape`: it answers ``rate_for(class_name, t)``
(cluster-wide SRV/s, read by :class:`~dcc_capacity.load.openmodel.OpenModelUser`)
and its ``tick()`` only says which scheduler users must exist: one per class
whose rate is non-zero, per worker (``n_workers * classes``), or None once
the test is over. Load is set by rates, never by user counts.

Rates come in as a plain ``dict[class_name, SRV/s]`` (e.g. the volume model's
per-row rates for an SP and slot, keyed by the user class that drives each
row). Configure a shape either with keyword arguments or, in a locustfile
(Locust instantiates shapes without arguments), with class attributes::

    class Peak(LoadShape):
        rates = {"MeterReads": 120.0, "Bau": 30.0}
        duration_s = 600
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from locust import LoadTestShape
from locust.runners import MasterRunner

from dcc_capacity.load.locuststats import percentile, read_stats

if TYPE_CHECKING:
    from locust.stats import RequestStats

__all__ = ["SLOT_SECONDS", "CatchupShape", "LoadShape", "NoisyShape", "RateShape", "SoakShape", "SpikeShape",
           "StepHealth", "StepsShape", "StressShape", "step_health"]

SLOT_SECONDS: dict[str, int] = {"night": 25_200, "day": 43_200, "evening": 18_000}
"""Table A1 slot lengths, in day order."""

Rates = Mapping[str, float]


class RateShape(LoadTestShape):
    """Base: subclasses implement :meth:`rates_at`; ``tick``/``rate_for`` follow from it."""

    abstract = True
    spawn_rate: ClassVar[float] = 100.0
    """Users/s when the scheduler set changes; schedulers are cheap, so start them at once."""
    duration_s: float = 60.0

    def __init__(self, **config: Any) -> None:
        super().__init__()
        for key, value in config.items():
            if not hasattr(type(self), key):
                raise TypeError(f"{type(self).__name__} has no setting {key!r}")
            setattr(self, key, value)

    def rates_at(self, t: float) -> dict[str, float] | None:
        """Cluster-wide SRV/s per class at ``t`` s, or None when the test is over."""
        raise NotImplementedError

    def rate_for(self, class_name: str, t: float) -> float:
        """SRV/s the whole cluster should offer for ``class_name`` at ``t`` s (0 after the end)."""
        rates = self.rates_at(t)
        return float(rates.get(class_name, 0.0)) if rates else 0.0

    def total_rate(self, t: float) -> float:
        rates = self.rates_at(t)
        return float(sum(rates.values())) if rates else 0.0

    def workers(self) -> int:
        """Scheduler users per class: one per worker, so each worker gets a share of every class."""
        runner = self.runner
        if isinstance(runner, MasterRunner):
            return max(1, runner.worker_count)
        return 1

    def tick(self) -> tuple[int, float, list] | None:
        rates = self.rates_at(self.get_run_time())
        if rates is None:
            self.finish()
            return None
        wanted = {name for name, r in rates.items() if r > 0}
        classes = [c for c in (self.runner.user_classes if self.runner else []) if c.__name__ in wanted]
        n = self.workers()
        return (n * len(classes), self.spawn_rate, classes)

    def result(self) -> dict[str, Any]:
        """What the shape did, for summary.json (subclasses add their findings, e.g. the stress knee)."""
        return {"shape": type(self).__name__, "duration_s": self.duration_s if math.isfinite(self.duration_s)
                else None}

    def finish(self) -> None:
        """Once, at the end: write :meth:`result` to ``<run dir>/shape.json`` when the run has a ``--run-dir``.

        The shape lives on the master (or the only process), so this is how
        its findings reach the process that writes the summary.
        """
        if getattr(self, "_finished", False):
            return
        self._finished = True
        env = getattr(self.runner, "environment", None)
        run_dir = getattr(getattr(env, "parsed_options", None), "run_dir", None)
        if run_dir:
            path = Path(run_dir)
            path.mkdir(parents=True, exist_ok=True)
            (path / "shape.json").write_text(json.dumps(self.result(), indent=2) + "\n")


class LoadShape(RateShape):
    """Steady load: ``rates * scale`` for ``duration_s``. Peak: scale 1; normal: scale 1 / peak_to_average."""

    abstract = True  # configure a subclass (Locust picks non-abstract shapes out of a locustfile)

    rates: Rates = {}
    scale: float = 1.0

    def rates_at(self, t: float) -> dict[str, float] | None:
        if t >= self.duration_s:
            return None
        return {k: v * self.scale for k, v in self.rates.items()}


class SpikeShape(RateShape):
    """Base rates, then ``spike_factor`` x for ``spike_s`` from ``spike_at_s``, then back to base."""

    abstract = True  # configure a subclass (Locust picks non-abstract shapes out of a locustfile)

    rates: Rates = {}
    spike_factor: float = 3.0
    spike_at_s: float = 20.0
    spike_s: float = 10.0

    def rates_at(self, t: float) -> dict[str, float] | None:
        if t >= self.duration_s:
            return None
        f = self.spike_factor if self.spike_at_s <= t < self.spike_at_s + self.spike_s else 1.0
        return {k: v * f for k, v in self.rates.items()}


class CatchupShape(RateShape):
    """An outage window, then the backlog.

    During ``[outage_at_s, outage_at_s + outage_s)`` clients offer
    ``hold_factor`` x the base rate (0: Service Users hold their traffic).
    The traffic they held is then sent on top of the base rate at
    ``catchup_factor`` x base until it is all sent: that window lasts
    ``(1 - hold_factor) * outage_s / (catchup_factor - 1)`` s. Then base again.
    """

    abstract = True  # configure a subclass (Locust picks non-abstract shapes out of a locustfile)

    rates: Rates = {}
    outage_at_s: float = 10.0
    outage_s: float = 10.0
    hold_factor: float = 0.0
    catchup_factor: float = 2.0

    @property
    def catchup_s(self) -> float:
        if self.catchup_factor <= 1:
            return math.inf
        return (1 - self.hold_factor) * self.outage_s / (self.catchup_factor - 1)

    def factor_at(self, t: float) -> float:
        end = self.outage_at_s + self.outage_s
        if self.outage_at_s <= t < end:
            return self.hold_factor
        if end <= t < end + self.catchup_s:
            return self.catchup_factor
        return 1.0

    def rates_at(self, t: float) -> dict[str, float] | None:
        if t >= self.duration_s:
            return None
        f = self.factor_at(t)
        return {k: v * f for k, v in self.rates.items()}


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


class StepsShape(RateShape):
    """The reference rates times the factor of the step ``t`` falls in: ``steps`` are ``{start_s, end_s, factor}``
    (the scale test's up, hold and down ramp: testtypes/scale.py ``schedule``); none after the last."""

    abstract = True
    rates: dict[str, float] = {}
    steps: list[dict[str, Any]] = []

    def rates_at(self, t: float) -> dict[str, float] | None:
        for s in self.steps:
            if s["start_s"] <= t < s["end_s"]:
                return {k: v * s["factor"] for k, v in self.rates.items()}
        return None


class SoakShape(RateShape):
    """A day in the life: the three Table A1 slots, in order, compressed into ``duration_s``.

    ``slot_rates`` is ``{slot: {class: SRV/s}}``; each slot gets a share of
    ``duration_s`` in proportion to its real length (night 7 h, day 12 h,
    evening 5 h), so the mix changes per slot the way Table A1 says.
    """

    abstract = True  # configure a subclass (Locust picks non-abstract shapes out of a locustfile)

    slot_rates: Mapping[str, Rates] = {}
    slots: tuple[str, ...] = ("night", "day", "evening")

    def slot_at(self, t: float) -> str | None:
        if t < 0 or t >= self.duration_s:
            return None
        total = sum(SLOT_SECONDS[s] for s in self.slots)
        edge = 0.0
        for s in self.slots:
            edge += self.duration_s * SLOT_SECONDS[s] / total
            if t < edge:
                return s
        return self.slots[-1]

    def slot_bounds(self) -> dict[str, tuple[float, float]]:
        total = sum(SLOT_SECONDS[s] for s in self.slots)
        out, edge = {}, 0.0
        for s in self.slots:
            span = self.duration_s * SLOT_SECONDS[s] / total
            out[s] = (edge, edge + span)
            edge += span
        return out

    def rates_at(self, t: float) -> dict[str, float] | None:
        slot = self.slot_at(t)
        if slot is None:
            return None
        return dict(self.slot_rates.get(slot, {}))


@dataclass
class StepHealth:
    """What one stress step measured (from the step's own requests, not the cumulative stats)."""

    step: int
    factor: float
    total_rate: float
    requests: int
    failures: int
    p95_ms: float
    passed: bool = True

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


class StressShape(RateShape):
    """Steps of ``step_fraction`` x peak every ``step_s`` s, from ``start_factor`` x peak, until a criterion fails.

    At the end of each step its health is measured from the Locust stats of
    the request types in ``criterion_types`` over that step only: it holds when
    the error rate <= ``max_error_rate`` and (if set) the p95 <= ``max_p95_ms``.
    The test stops at the first step that fails or after the step at
    ``max_factor`` (the ceiling). :attr:`knee` is the last step that held
    (None if the first step already failed); :attr:`steps` has them all.
    """

    abstract = True  # configure a subclass (Locust picks non-abstract shapes out of a locustfile)

    rates: Rates = {}
    start_factor: float = 1.0
    step_fraction: float = 0.1
    step_s: float = 60.0
    max_factor: float = 3.0
    max_error_rate: float = 0.01
    max_p95_ms: float | None = None
    criterion_types: tuple[str, ...] = ("ACK",)
    duration_s: float = math.inf
    health_source: Callable[[], tuple[int, int, dict[int, int]]] | None = None
    """Returns cumulative (requests, failures, {rounded_ms: count}); default: Locust's stats."""

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.steps: list[StepHealth] = []
        self.knee: StepHealth | None = None
        self.stopped = False
        self._cur = 0
        self._snap: tuple[int, int, dict[int, int]] | None = None

    def factor_for_step(self, i: int) -> float:
        return self.start_factor + i * self.step_fraction

    @property
    def n_steps(self) -> int:
        return int(math.floor((self.max_factor - self.start_factor) / self.step_fraction + 1e-9)) + 1

    def rates_at(self, t: float) -> dict[str, float] | None:
        i = int(t // self.step_s)
        if self.stopped or i >= self.n_steps or t >= self.duration_s:
            return None
        f = self.factor_for_step(i)
        return {k: v * f for k, v in self.rates.items()}

    def tick(self) -> tuple[int, float, list] | None:
        t = self.get_run_time()
        i = int(t // self.step_s)
        if self._snap is None:
            self._snap = self._cumulative()
        while i > self._cur and not self.stopped:  # the step self._cur just ended: judge it
            self._judge(self._cur)
            self._cur += 1
        if self.stopped:
            self.finish()
            return None
        return super().tick()

    def _judge(self, i: int) -> None:
        now = self._cumulative()
        prev = self._snap or (0, 0, {})
        hist = {k: v - prev[2].get(k, 0) for k, v in now[2].items()}
        h = StepHealth(step=i, factor=self.factor_for_step(i), total_rate=self.total_rate(i * self.step_s),
                       requests=now[0] - prev[0], failures=now[1] - prev[1], p95_ms=_p95(hist))
        h.passed = h.requests > 0 and h.error_rate <= self.max_error_rate and (
            self.max_p95_ms is None or h.p95_ms <= self.max_p95_ms)
        self.steps.append(h)
        self._snap = now
        if h.passed:
            self.knee = h
            if i + 1 >= self.n_steps:
                self.stopped = True  # ceiling reached with every step healthy
        else:
            self.stopped = True

    def _cumulative(self) -> tuple[int, int, dict[int, int]]:
        if self.health_source is not None:
            return self.health_source()
        return step_health(self.runner.stats if self.runner else None, self.criterion_types)

    def result(self) -> dict[str, Any]:
        """For summary.json: every step and the knee (last healthy step)."""
        return {**super().result(), "knee": asdict(self.knee) if self.knee else None,
                "knee_rate": self.knee.total_rate if self.knee else None, "steps": [asdict(s) for s in self.steps],
                "ceiling_reached": bool(self.knee and self.knee.step + 1 >= self.n_steps)}



def step_health(stats: RequestStats | None, types: tuple[str, ...]) -> tuple[int, int, dict[int, int]]:
    """Cumulative (SRV attempts, failures, ack histogram) of the ``types`` entries, counted as summary.json counts.

    A critical SRV's CV 4 and CV 5 are one attempt (:mod:`dcc_capacity.load.locuststats`); the histogram keeps
    every exchange's own ack time.
    """
    a = read_stats(stats, types).attempts
    return a.requests, a.failures, a.hist


def _p95(hist: Mapping[int, int]) -> float:
    """A step's ack p95 (0 when nothing was measured, so an empty step never fails on latency alone)."""
    p = percentile(hist, 0.95)
    return 0.0 if math.isnan(p) else p
