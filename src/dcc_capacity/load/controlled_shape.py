"""A load shape an operator steers while it runs: step up, step down, hold, auto-ramp to a stop criterion.

Performance engineers run stress tests by hand: raise the load, watch where
the SUT bends, hold, raise again. :class:`ControlledShape` is a
:class:`~dcc_capacity.load.shapes.RateShape` whose rate is *state*, not a function
of time: it starts at ``start_factor`` x the peak ``rates`` and changes only
when someone calls :meth:`step_up`, :meth:`step_down`, :meth:`set_factor`,
:meth:`hold`, :meth:`start_auto` or :meth:`stop` (the web UI's Capacity tab
does; see :mod:`dcc_capacity.webui`). The test never restarts: the open-model
users read the new rate within 0.25 s.

Automatic ramp: one step of ``step_fraction`` x peak every ``hold_s`` s. At
the end of each step its health is judged from Locust's stats over that step
only (as :class:`~dcc_capacity.load.shapes.StressShape` does). The ramp stops at
the chosen criterion - ``error_rate`` (> ``max_error_rate``), ``p95`` (ack p95
> ``max_p95_ms``) or ``ceiling`` (``max_factor`` reached) - marks the last
healthy step as the knee, and steps back down to the knee and holds there
so the operator can look.

Every change is appended to ``<run dir>/operator_actions.jsonl`` (one JSON
object a line: ``time``, ``t``, ``who``, ``action``, ``from_rate``,
``to_rate``, ``factor``, ``detail``). The file is append-only and written as
each action happens, so a killed run keeps its history; the report reads it.

Distributed: the shape lives on the master. On every change, and once a
second, the master sends the cluster-wide rates to the workers as the custom
message ``dcc_shape_rates``; a worker's copy of the shape answers
``rate_for`` from the last message it got (0 until the first).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from locust import events
from locust.runners import MasterRunner, WorkerRunner

from dcc_capacity.load.locuststats import percentile
from dcc_capacity.load.operator_log import ACTIONS_FILE, load_operator_actions
from dcc_capacity.load.shapes import Rates, RateShape, step_health

__all__ = ["ACTIONS_FILE", "RATES_MESSAGE", "STOP_CRITERIA", "ControlledShape", "StepRecord", "attach", "controlled_of",
           "load_operator_actions"]

log = logging.getLogger(__name__)

RATES_MESSAGE = "dcc_shape_rates"
STOP_CRITERIA = ("error_rate", "p95", "ceiling")


@dataclass
class StepRecord:
    """One level the load held at, and what Locust measured while it did (SRV attempts, from their acks)."""

    step: int
    factor: float
    total_rate: float
    started_t: float
    ended_t: float
    requests: int
    failures: int
    p95_ms: float
    passed: bool

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


class ControlledShape(RateShape):
    """Rates = peak ``rates`` x the current factor, changed by operator actions (see the module docstring)."""

    abstract = True  # configure a subclass (Locust picks non-abstract shapes out of a locustfile)

    rates: Rates = {}
    """Peak (factor 1.0) cluster-wide SRV/s per user class."""
    start_factor: float = 0.5
    step_fraction: float = 0.1
    hold_s: float = 30.0
    """Automatic ramp: seconds at each step before it is judged."""
    max_factor: float = 3.0
    """Ceiling: no step goes above it (and the ``ceiling`` criterion stops there)."""
    min_factor: float = 0.0
    stop_criterion: str = "error_rate"
    max_error_rate: float = 0.01
    max_p95_ms: float | None = None
    criterion_types: tuple[str, ...] = ("ACK",)
    duration_s: float = math.inf

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.factor = float(self.start_factor)
        self.mode = "manual"
        """``manual`` (holding, the operator steps), ``auto`` (ramping) or ``stopped``."""
        self.auto_criterion = self.stop_criterion
        self.steps: list[StepRecord] = []
        self.knee: StepRecord | None = None
        self.actions: list[dict[str, Any]] = []
        self.remote_rates: dict[str, float] | None = None
        """On a worker: the rates the master last sent (None until the first message)."""
        self._step_started = 0.0
        self._snap: tuple[int, int, dict[int, int]] | None = None
        self._next_auto: float | None = None
        self._started = False
        self._ended = False
        """Set when a test ends (``test_stop``), so that the next start begins afresh."""
        self._attached = False
        """Set by :func:`attach`: the runner's hooks are registered once per shape."""

    def reset_time(self) -> None:
        """Locust calls this when a shape test starts: a start after a finished test is a fresh ramp."""
        super().reset_time()
        if getattr(self, "_ended", False):
            self._ended = False
            self.factor, self.mode, self.auto_criterion = float(self.start_factor), "manual", self.stop_criterion
            self.steps, self.knee, self.actions = [], None, []
            self._snap, self._next_auto, self._started, self._finished = None, None, False, False

    # -- what the users read ---------------------------------------------------------
    def current_rates(self) -> dict[str, float]:
        return {k: float(v) * self.factor for k, v in self.rates.items()}

    def rates_at(self, t: float) -> dict[str, float] | None:
        if isinstance(self.runner, WorkerRunner):
            return dict(self.remote_rates or {})
        if self.mode == "stopped" or t >= self.duration_s:
            return None
        return self.current_rates()

    def rate_for(self, class_name: str, t: float) -> float:
        rates = self.rates_at(t)
        return float(rates.get(class_name, 0.0)) if rates else 0.0

    def tick(self) -> tuple[int, float, list] | None:
        t = self.get_run_time()
        if not self._started:
            self._started = True
            self._begin_step(t)
            self.record("start", "shape", self.total(0.0), self.total())
        if self.mode == "auto" and self._next_auto is not None and t >= self._next_auto:
            self._auto_step(t)
        self.broadcast()
        return super().tick()

    # -- operator actions --------------------------------------------------------------
    def total(self, factor: float | None = None) -> float:
        f = self.factor if factor is None else factor
        return float(sum(self.rates.values())) * f

    def set_factor(self, factor: float, who: str = "operator", action: str = "set") -> float:
        """Move to ``factor`` x peak (clamped to [min_factor, max_factor]); returns the new factor."""
        self._check_running()
        new = round(min(self.max_factor, max(self.min_factor, float(factor))), 6)
        old = self.factor
        if new != old:
            self._end_step(self.get_run_time())
            self.factor = new
            self._begin_step(self.get_run_time())
        self.record(action, who, self.total(old), self.total(new))
        self.broadcast()
        return new

    def step_up(self, who: str = "operator") -> float:
        self._cancel_auto(who)
        return self.set_factor(self.factor + self.step_fraction, who, "step_up")

    def step_down(self, who: str = "operator") -> float:
        self._cancel_auto(who)
        return self.set_factor(self.factor - self.step_fraction, who, "step_down")

    def hold(self, who: str = "operator") -> None:
        """Stay at the current rate (ends an automatic ramp)."""
        self.mode = "manual"
        self._next_auto = None
        self.record("hold", who, self.total(), self.total())

    def mark_knee(self, who: str = "operator") -> None:
        """The operator says: the system bends here."""
        self._end_step(self.get_run_time())
        self.knee = self.steps[-1] if self.steps else None
        self._begin_step(self.get_run_time())
        self.record("mark_knee", who, self.total(), self.total())

    def configure(self, who: str = "operator", **settings: Any) -> dict[str, Any]:
        """Change step size, hold time, ceiling or the stop criterion while running."""
        allowed = {"step_fraction": float, "hold_s": float, "max_factor": float, "max_error_rate": float,
                   "max_p95_ms": float, "stop_criterion": str}
        changed: dict[str, Any] = {}
        for key, value in settings.items():
            if key not in allowed:
                raise ValueError(f"unknown setting {key!r}")
            if value is None or value == "":
                continue
            value = allowed[key](value)
            if key == "stop_criterion" and value not in STOP_CRITERIA:
                raise ValueError(f"stop_criterion must be one of {', '.join(STOP_CRITERIA)}")
            if isinstance(value, float) and (not math.isfinite(value) or value < 0):
                raise ValueError(f"{key} must be a finite number >= 0")
            setattr(self, key, value)
            changed[key] = value
        if changed:
            self.record("configure", who, self.total(), self.total(), detail=changed)
        return changed

    def start_auto(self, who: str = "operator", criterion: str | None = None) -> None:
        """Ramp one step every ``hold_s`` s until ``criterion`` (default ``stop_criterion``) stops it."""
        criterion = criterion or self.stop_criterion
        if criterion not in STOP_CRITERIA:
            raise ValueError(f"stop criterion must be one of {', '.join(STOP_CRITERIA)}")
        if criterion == "p95" and not self.max_p95_ms:
            raise ValueError("stop criterion p95 needs max_p95_ms")
        self._check_running()
        self.auto_criterion = criterion
        self.mode = "auto"
        t = self.get_run_time()
        self._end_step(t)
        self._begin_step(t)
        self._next_auto = t + self.hold_s
        self.record("auto_start", who, self.total(), self.total(), detail={"criterion": criterion,
                                                                            "hold_s": self.hold_s})

    def stop(self, who: str = "operator") -> None:
        """End the test (the shape returns None at its next tick; Locust stops the users)."""
        self._check_running()
        self._end_step(self.get_run_time())
        old = self.total()
        self.mode = "stopped"
        self._next_auto = None
        self.record("stop", who, old, 0.0)
        self.broadcast()

    def _check_running(self) -> None:
        if self.mode == "stopped":
            raise ValueError("the test has been stopped: start a new one to steer it")

    def _cancel_auto(self, who: str) -> None:
        if self.mode == "auto":
            self.mode = "manual"
            self._next_auto = None
            self.record("auto_cancel", who, self.total(), self.total())

    # -- automatic ramp ---------------------------------------------------------------
    def _auto_step(self, t: float) -> None:
        h = self._end_step(t)
        healthy = h is not None and h.passed
        at_ceiling = self.factor + self.step_fraction > self.max_factor + 1e-9
        if healthy:
            self.knee = h
        if not healthy or at_ceiling:
            why = "ceiling" if healthy else self.auto_criterion
            self.mode = "manual"
            self._next_auto = None
            old = self.factor
            if not healthy and self.knee is not None:
                self.factor = self.knee.factor  # back to the last healthy level, and hold there
            self._begin_step(t)
            self.record("auto_stop", "auto", self.total(old), self.total(),
                        detail={"reason": why, "knee_rate": self.knee.total_rate if self.knee else None})
            self.broadcast()
            return
        old = self.factor
        self.factor = round(min(self.max_factor, self.factor + self.step_fraction), 6)
        self._begin_step(t)
        self._next_auto = t + self.hold_s
        self.record("auto_step", "auto", self.total(old), self.total())
        self.broadcast()

    def _begin_step(self, t: float) -> None:
        self._step_started = t
        self._snap = self._cumulative()

    def _end_step(self, t: float) -> StepRecord | None:
        if self._snap is None:
            return None
        now = self._cumulative()
        prev = self._snap
        hist = {k: v - prev[2].get(k, 0) for k, v in now[2].items()}
        req, fail = now[0] - prev[0], now[1] - prev[1]
        self._snap = None
        if req == 0 and t - self._step_started < 1.0:
            return None  # a level left at once (two clicks in a row): nothing was measured there
        p95 = percentile(hist, 0.95)
        p95 = 0.0 if math.isnan(p95) else p95  # nothing measured: judged on its error rate alone
        passed = req > 0 and fail / req <= self.max_error_rate
        if self.auto_criterion == "p95" and self.max_p95_ms:
            passed = passed and p95 <= self.max_p95_ms
        rec = StepRecord(step=len(self.steps), factor=self.factor, total_rate=self.total(),
                         started_t=self._step_started, ended_t=t, requests=req, failures=fail, p95_ms=p95,
                         passed=passed)
        self.steps.append(rec)
        return rec

    def _cumulative(self) -> tuple[int, int, dict[int, int]]:
        return step_health(self.runner.stats if self.runner else None, self.criterion_types)

    # -- records and distribution --------------------------------------------------------
    def run_dir(self) -> Path | None:
        env = getattr(self.runner, "environment", None)
        run_dir = getattr(getattr(env, "parsed_options", None), "run_dir", None)
        return Path(run_dir) if run_dir else None

    def record(self, action: str, who: str, from_rate: float, to_rate: float, detail: Any = None) -> dict[str, Any]:
        """Append one operator action to memory and to ``<run dir>/operator_actions.jsonl``."""
        row = {"time": time.time(), "t": round(self.get_run_time(), 3) if self._started else 0.0, "who": who,
               "action": action, "from_rate": round(from_rate, 6), "to_rate": round(to_rate, 6),
               "factor": self.factor, "detail": detail}
        self.actions.append(row)
        run_dir = self.run_dir()
        if run_dir is not None:
            run_dir.mkdir(parents=True, exist_ok=True)
            with (run_dir / ACTIONS_FILE).open("a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
        return row

    def broadcast(self) -> None:
        """Master only: tell every worker the cluster-wide rates now in force."""
        runner = self.runner
        if isinstance(runner, MasterRunner) and runner.worker_count:
            rates = self.current_rates() if self.mode != "stopped" else {}
            runner.send_message(RATES_MESSAGE, rates)

    def on_test_stop(self, **_: Any) -> None:
        self._ended = True

    def on_rates_message(self, msg: Any, **_: Any) -> None:
        self.remote_rates = {str(k): float(v) for k, v in dict(msg.data).items()}

    def state(self) -> dict[str, Any]:
        """A JSON-able snapshot for the web UI."""
        return {"mode": self.mode, "factor": self.factor, "total_rate": self.total() if self.mode != "stopped" else 0,
                "rates": self.current_rates(), "peak_rates": dict(self.rates), "step_fraction": self.step_fraction,
                "hold_s": self.hold_s, "max_factor": self.max_factor, "stop_criterion": self.stop_criterion,
                "auto_criterion": self.auto_criterion, "max_error_rate": self.max_error_rate,
                "max_p95_ms": self.max_p95_ms,
                "next_auto_in": max(0.0, self._next_auto - self.get_run_time()) if self._next_auto else None,
                "knee": asdict(self.knee) if self.knee else None, "steps": [asdict(s) for s in self.steps],
                "actions": self.actions[-50:]}

    def result(self) -> dict[str, Any]:
        """For shape.json / summary.json: steps, knee and every operator action."""
        return {**super().result(), "knee": asdict(self.knee) if self.knee else None,
                "knee_rate": self.knee.total_rate if self.knee else None, "steps": [asdict(s) for s in self.steps],
                "operator_actions": self.actions}


def controlled_of(shape: Any, build: bool = True) -> ControlledShape | None:
    """The ControlledShape a locustfile's shape is, or wraps (``DccShape.controlled``: a ``--dcc-interactive``
    stress test); None when nothing is there to steer. ``build=False`` never makes a wrapper build its shape
    (at Locust's init its options may not be set yet)."""
    if isinstance(shape, ControlledShape):
        return shape
    if build and shape is not None and hasattr(type(shape), "controlled"):
        inner = shape.controlled
        return inner if isinstance(inner, ControlledShape) else None
    return None


def attach(environment: Any, build: bool = True) -> ControlledShape | None:
    """Hook the environment's ControlledShape (if any) to its runner: workers listen for the master's rates."""
    shape = controlled_of(environment.shape_class, build)
    if shape is None:
        return None
    if shape._attached:
        return shape
    shape._attached = True
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        shape.runner = runner
        runner.register_message(RATES_MESSAGE, shape.on_rates_message)
    else:
        environment.events.test_stop.add_listener(shape.on_test_stop)
    return shape


@events.init.add_listener
def _on_init(environment: Any, **_: Any) -> None:
    attach(environment, build=False)  # a wrapping shape (DccShape) is attached by its locustfile once configured
