"""Open-model arrivals inside Locust: one scheduler user per class, latency from the intended send time.

A closed-loop Locust user waits for each response before it sends the next
request, so a stalled SUT slows the load down and the stall hides itself
(coordinated omission). :class:`OpenModelUser` instead plans arrival times
at the target rate and sends each arrival in its own greenlet whatever the
SUT does; its ack and TRT are counted from the *planned* time.

Write a subclass and implement :meth:`OpenModelUser.arrival`::

    class MeterReads(OpenModelUser):
        rate = 20.0                      # SRV/s, unless the shape says otherwise

        def arrival(self):
            rid = next_request_id()
            yield Step("4.6.1", "/api/v1/serviceS", body=sign(rid), request_id=rid, expect_callback=True)

A journey yields several steps; each ``yield`` returns that step's
:class:`StepResult`, so the next step can use the previous response
(e.g. CV 5 needs CV 4's PreCommand) or give up (``return``). A plain list of
steps also works: the journey then stops at the first failed step.

Rates: the target (SRV/s) comes from the running shape's
``rate_for(rate_key, t)`` when the shape has one, else the class attribute
``rate``; it is divided by ``srvs_per_arrival`` (journey length) to get
arrivals/s and shared among all scheduler users of the class (see
:mod:`dcc_capacity.load.runcontext` for the distributed rule).

Transport: each step goes out through the class's target adapter
(``--adapter``, default DUIS over HTTP(S); :mod:`dcc_capacity.load.adapters`,
docs/adapters.md), so the same journeys can drive an SFTP intake or an SP's
internal interface.
"""

from __future__ import annotations

import inspect
import logging
import math
import random
import time
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gevent
from locust import User, constant, task
from locust.runners import WorkerRunner
from locust.user.users import LOCUST_STATE_STOPPING

from dcc_capacity.errors import RequestFailure
from dcc_capacity.load import hooks as _hooks  # noqa: F401 - registers --run-dir ... and the init hook
from dcc_capacity.load.adapters import AdapterSettings, TargetAdapter, make_adapter
from dcc_capacity.load.adapters import options as _adapter_options  # noqa: F401 - registers --adapter, --tls-*, --response-cert
from dcc_capacity.load.flights import Flights
from dcc_capacity.load.locuststats import ends_attempt, starts_attempt
from dcc_capacity.load.runcontext import RunContext, context_for

__all__ = ["ClientSaturated", "OpenModelUser", "Step", "StepResult"]

log = logging.getLogger(__name__)


class ClientSaturated(RequestFailure):
    """The generator could not send an arrival (``max_in_flight`` exchanges out, or the parked bound reached):
    it was dropped, counted, and the run is INVALID."""


@dataclass(slots=True)
class Step:
    """One HTTP exchange of an arrival."""

    label: str
    """Stats name stem: the ack is reported as ``"<label> ack"``, the TRT as ``"<label> TRT"``."""
    path: str
    body: bytes = b""
    method: str = "POST"
    headers: Mapping[str, str] | None = None
    request_id: str = ""
    """Correlates the async response at the callback listener (needed when ``expect_callback``)."""
    expect_callback: bool = False
    """True: an async response is expected; the listener completes the step's record when it comes (or is
    declared missing)."""
    srv_variant: str = ""
    needs_response: bool = True
    """With ``expect_callback``: the journey goes on only once the response is in (its next step needs it), so the
    arrival parks as a continuation until then. False: nothing after this step looks at the response (a single
    SRV), so the arrival ends at the acknowledgement and the listener closes the books alone."""
    smets: int = 0
    """SMETS generation of the installation the SRV is for (0: none), recorded so the mix can be checked."""
    prepay: bool = False
    """The installation is in prepayment mode (recorded with ``smets``)."""


@dataclass(slots=True)
class StepResult:
    """What a step gave; sent back into the journey generator by ``yield``."""

    outcome: str
    """``ok``, ``error``, ``throttled``, ``late`` or ``missing``."""
    ack_code: int = 0
    ack_body: bytes = b""
    ack_ms: float = float("nan")
    trt_ms: float = float("nan")
    callback_body: bytes = b""
    response_code: str = ""
    error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


@dataclass(slots=True)
class _Journey:
    """One arrival between its steps: what a parked journey costs is this and its generator's frames."""

    it: Any
    is_gen: bool
    name: str
    arrival: int
    idx: int = 0


class OpenModelUser(User):
    """Abstract arrival scheduler; subclasses implement :meth:`arrival`. One instance per class per process."""

    abstract = True
    wait_time = constant(0)

    rate: ClassVar[float] = 0.0
    """Target SRV/s of this class when the shape offers no ``rate_for`` (whole cluster, not per worker)."""
    rate_key: ClassVar[str | None] = None
    """Name passed to ``shape.rate_for``; default: the class name."""
    srvs_per_arrival: ClassVar[float] = 1.0
    """SRVs one arrival sends (the journey length): arrivals/s = rate / srvs_per_arrival."""
    max_in_flight: int = 1000
    """Bound on open HTTP exchanges of this user (not a ClassVar: the class sets the default, each instance holds
    the bound in force, ``--max-in-flight`` when given); an arrival that finds it reached is dropped and counted,
    never queued. Awaited async responses do not count: they are entries in the listener's correlation map, and
    journeys waiting for one are parked (``--max-parked-journeys``)."""
    send_quantum_s: ClassVar[float] = 0.004
    """Shortest sleep of the arrival loop. At 1,500 SRV/s arrivals are 0.7 ms apart: waking for each one cost
    more CPU (a timer, a greenlet switch and a send per wake-up) than the sends themselves, and a busy process
    then ran late by far more than this (measured with 1,500 callbacks/s on top: send lag p99 93 ms waking for
    each arrival, 68 ms with a 4 ms quantum; bench_pending)."""
    arrival_process: ClassVar[str] = "uniform"
    """``uniform`` (evenly spaced, exact offered counts) or ``poisson`` (exponential gaps)."""
    seed: ClassVar[int | None] = None
    """Seed for Poisson gaps (None: random)."""
    connection_timeout: ClassVar[float] = 10.0
    network_timeout: ClassVar[float] = 60.0
    throttle_codes: ClassVar[frozenset[int]] = frozenset({429})
    """HTTP statuses of the sync answer that mean 'throttled' rather than 'error'."""
    target_adapter: ClassVar[str | None] = None
    """Adapter of this class (a built-in name or ``module:Class``); None: the ``--adapter`` option (default
    ``duis-http``). See :mod:`dcc_capacity.load.adapters`."""

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.ctx: RunContext = context_for(environment)
        if self.ctx.t0 is None and self.environment.runner is not None and not isinstance(
                self.environment.runner, WorkerRunner):
            # Installed after test_start had fired (an in-process Environment that never called install()):
            # start the clock and the outputs now rather than never send anything.
            self.ctx.on_test_start()
        opts = environment.parsed_options
        self.max_in_flight = int(getattr(opts, "max_in_flight", 0) or self.max_in_flight)
        self.pool = Flights(self.max_in_flight)
        self.ctx.pools.add(self.pool)
        self.adapter: TargetAdapter | None = None
        self._rng = random.Random(self.seed)

    # -- the hooks a subclass implements / may override ------------------------------
    def arrival(self) -> Iterable[Step] | Generator[Step, StepResult, None]:
        """The steps of one arrival: a generator (``res = yield step``) or a list. Override this."""
        raise NotImplementedError(f"{type(self).__name__} must implement arrival()")

    def classify_ack(self, step: Step, status: int, body: bytes) -> tuple[str, str]:
        """(outcome, error) of a sync answer. Override to read DUIS ack codes out of the body."""
        if status in self.throttle_codes:
            return "throttled", f"HTTP {status}"
        if status >= 400 or status == 0:
            return "error", f"HTTP {status}"
        return "ok", ""

    def target_rate(self, t: float) -> float:
        """Cluster-wide SRV/s for this class at ``t`` s into the test: the shape's, else ``rate``."""
        shape = self.environment.shape_class
        rate_for = getattr(shape, "rate_for", None)
        if rate_for is not None:
            return float(rate_for(self.rate_key or type(self).__name__, t))
        return float(self.rate)

    # -- Locust lifecycle ---------------------------------------------------------
    def on_start(self) -> None:
        if not self.host:
            raise ValueError(f"{type(self).__name__}: no host; set the host attribute or use --host")
        opts = self.environment.parsed_options
        name = self.target_adapter or getattr(opts, "adapter", None)
        settings = AdapterSettings(self.host, opts, concurrency=self.max_in_flight,
                                   connection_timeout=self.connection_timeout, network_timeout=self.network_timeout,
                                   listener=lambda: self.ctx.callbacks)
        self.adapter = make_adapter(name, settings)

    def on_stop(self) -> None:
        # In-flight arrivals keep running in self.pool; the run context drains them at test stop.
        pass

    @task
    def _schedule(self) -> None:
        """The arrival loop (runs until the user is stopped). Not meant to be overridden."""
        name = type(self).__name__
        ctx = self.ctx
        divisor_at = -1.0
        divisor: int | None = None
        unit_gap = self._draw()
        last: float | None = None
        launched = 0
        waiting_since = time.time()
        while self._state != LOCUST_STATE_STOPPING:
            now = time.time()
            if now - divisor_at > 0.5 or divisor is None:
                divisor, divisor_at = ctx.divisor(name), now
            if divisor is None or ctx.t0 is None:  # a worker waiting to hear the cluster count
                # Its schedule starts once it knows its share: owing the arrivals of the wait would send them all
                # at once and late (a start-up burst that is the generator's lag, not the plan's load).
                last = None
                if waiting_since and now - waiting_since > 5:
                    log.warning("%s: no dcc_om_counts message from the master after 5 s; still waiting", name)
                    waiting_since = 0.0
                gevent.sleep(0.01)
                continue
            rate = self.target_rate(ctx.elapsed(now)) / self.srvs_per_arrival / divisor
            if rate <= 0:
                last = None
                gevent.sleep(0.1)
                continue
            nxt = now if last is None else last + unit_gap / rate
            if nxt > now:
                # Wake at least 4x/s to follow rate changes, and at most every send_quantum_s: arrivals due in
                # the meantime then go out together (one wake-up, build-then-send batching) with their planned
                # times, so the wait shows in their send lag and latency, never hidden.
                gevent.sleep(max(min(nxt - now, 0.25), self.send_quantum_s))
                continue
            self._launch(nxt, name)
            last, unit_gap = nxt, self._draw()
            launched += 1
            if launched % 64 == 0:
                gevent.sleep(0)  # catching up on a backlog: let the in-flight greenlets breathe

    def _draw(self) -> float:
        return self._rng.expovariate(1.0) if self.arrival_process == "poisson" else 1.0

    # -- one arrival ---------------------------------------------------------------
    def _launch(self, intended: float, name: str) -> None:
        ctx = self.ctx
        ctx.offered[name] += 1
        arrival = next(ctx.arrival_ids)
        if self.pool.full():
            self._drop(name, arrival, intended, f"dropped: client saturated ({self.max_in_flight} HTTP exchanges "
                                                "in flight, --max-in-flight)")
            return
        self.pool.spawn(self._run_arrival, intended, name, arrival)

    def _drop(self, name: str, arrival: int, intended: float, why: str) -> None:
        """The generator could not send what was due: counted, recorded, and it makes the run INVALID."""
        ctx = self.ctx
        ctx.dropped[name] += 1
        self.environment.events.request.fire(request_type="DROPPED", name=f"{name} dropped", response_time=0,
                                             response_length=0, exception=ClientSaturated(why), context={})
        if ctx.records is not None:
            ctx.records.write(user_class=name, label=name, arrival=arrival, intended_ts=intended, outcome="dropped",
                              error=why)

    def _run_arrival(self, intended: float, name: str, arrival: int) -> None:
        try:
            steps = self.arrival()
            gen = inspect.isgenerator(steps)
            journey = _Journey(steps if gen else iter(steps), gen, name, arrival)
        except Exception as e:  # a bug in arrival(): visible in Locust's errors, never kills the scheduler
            self._arrival_failed(name, e)
            return
        self._advance(journey, None, intended)

    def _arrival_failed(self, name: str, e: Exception) -> None:
        log.exception("arrival of %s failed", name)
        self.environment.events.user_error.fire(user_instance=self, exception=e, tb=e.__traceback__)

    def _next(self, journey: _Journey, res: StepResult | None) -> Step | None:
        it = journey.it
        if res is None:
            return next(it, None)
        if journey.is_gen:
            try:
                return it.send(res)
            except StopIteration:
                return None
        return next(it, None) if res.ok else None

    def _advance(self, journey: _Journey, res: StepResult | None, step_intended: float) -> None:
        """Send the journey's steps until it ends or parks on a response its next step needs."""
        ctx, name = self.ctx, journey.name
        try:
            step = self._next(journey, res)
            while step is not None:
                if journey.idx and starts_attempt(step.label):  # a CV 5 is its CV 4's attempt, not a new one
                    ctx.offered[name] += 1
                # Yield once between building a step (render + sign, in the journey) and sending it: arrivals
                # due together then build back to back and send back to back, so ECDSA's code and tables and
                # the kernel's TCP path each stay in cache (measured: about -25 % CPU per signed SRV at
                # saturation, docs/performance.md). Timing is from the intended send, so the wait is measured.
                gevent.sleep(0)
                res = self._run_step(step, step_intended, journey)
                journey.idx += 1
                if res is None:
                    return  # parked: the listener resumes it with the response (or its absence)
                step_intended = time.time()  # the next step is due the moment this one is done
                step = self._next(journey, res)
        except Exception as e:
            self._arrival_failed(name, e)

    def _run_step(self, step: Step, intended: float, journey: _Journey) -> StepResult | None:
        """One HTTP exchange; None when the journey parked to wait for the step's async response."""
        ctx, name, idx = self.ctx, journey.name, journey.idx
        listener = ctx.callbacks if step.expect_callback else None
        pending = None
        if listener is not None and step.request_id:
            pending = listener.expect(step.request_id, label=step.label, intended_ts=intended, user_class=name,
                                      srv_variant=step.srv_variant, step=idx, arrival=journey.arrival,
                                      claim=step.needs_response)
        sent = time.time()
        ctx.send_lag.add((sent - intended) * 1000)
        status, body, err = 0, b"", ""
        try:
            status, body = self.adapter.send(step)  # type: ignore[union-attr]
        except Exception as e:  # connection refused, reset, timeout: an error outcome, still timed
            err = f"{type(e).__name__}: {e}"
        ack_ts = time.time()
        ack_ms = (ack_ts - intended) * 1000
        outcome, why = self.classify_ack(step, status, body)
        err = err or why
        exc = Exception(err) if outcome != "ok" else None
        self.environment.events.request.fire(request_type="ACK", name=f"{step.label} ack", response_time=ack_ms,
                                             response_length=len(body), exception=exc, context={})
        awaiting = pending is not None and outcome == "ok"
        if ctx.records is not None:
            ctx.records.write_step(step.request_id, name, step.srv_variant, step.label, journey.arrival, idx,
                                   intended, sent, ack_ts, ack_ms, status, "pending" if awaiting else outcome, err,
                                   step.smets, step.prepay)
        res = StepResult(outcome, status, body, ack_ms, error=err)
        if pending is None:
            if res.ok and ends_attempt(step.label):  # an ok CV 4 only lets the CV 5 go
                ctx.achieved[name] += 1
            return res
        if not awaiting:
            listener.cancel(step.request_id)  # type: ignore[union-attr]
            return res
        if not step.needs_response or ctx.stopped:
            res.outcome = "pending"  # the arrival ends here; the listener closes the books (and counts achieved)
            return res
        if ctx.parked >= ctx.max_parked:
            self._drop(name, journey.arrival, time.time(),
                       f"dropped: {ctx.max_parked} journeys already parked (--max-parked-journeys)")
            res.outcome = "pending"
            return res
        ctx.parked += 1
        pending.when_done(lambda cb: self._resume(journey, res, cb))
        return None

    def _resume(self, journey: _Journey, res: StepResult, cb: Any) -> None:
        """The parked journey's response is in (or missing): it goes on in a new greenlet, as an HTTP exchange."""
        ctx = self.ctx
        ctx.parked -= 1
        res.outcome, res.trt_ms, res.callback_body = cb.outcome, cb.trt_ms, cb.body
        res.response_code = cb.response_code
        if cb.outcome != "ok":
            res.error = cb.outcome
        if ctx.stopped:
            return  # the books are closed: nothing is sent after the drain
        # Not bounded by max_in_flight: the journey was admitted when it arrived, and dropping its next step now
        # would cut a journey in half; the parked bound already limits how many can come back at once.
        due = time.time() if math.isnan(cb.arrival_ts) else cb.arrival_ts
        self.pool.spawn(self._advance, journey, res, due)
