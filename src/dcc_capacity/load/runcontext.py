"""Per-process measurement wiring: run clock, records writer, callback listener, counters, worker share.

One :class:`RunContext` per Locust :class:`~locust.env.Environment`, made by
:func:`install` (called from Locust's ``init`` event when a locustfile
imports :mod:`dcc_capacity.load.openmodel`; call it yourself for an in-process
``Environment``). It hooks Locust's own events - nothing is monkeypatched:

- ``test_start``: start the run clock; on processes that run users, open this
  process's records file in ``--run-dir`` and start the callback listener;
  on a master, start broadcasting how many scheduler users of each class run
  cluster-wide (custom message ``dcc_om_counts``);
- ``test_stop``: let in-flight requests finish (``--drain``), declare overdue
  callbacks missing, flush records;
- ``quitting``: close the records file and stop the listener.

Distributed rule: every scheduler user of class C takes
``rate(C) / (number of C users in the whole cluster)``. A master knows that
number after dispatch (``runner.target_user_classes_count``) and sends it to
the workers; a worker does not start scheduling until it has heard it (a few
ms) and plans from then: sending the arrivals of that wait all at once would
be generator lag (send lag is judged, docs/measurement.md "Run validity"),
and a few ms of arrivals at the very start are visible in the offered count.
Locally the divisor is the local count (normally 1).
"""

from __future__ import annotations

import gc
import itertools
import json
import logging
import os
import sys
import time
import weakref
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gevent
from locust import events as global_events
from locust.runners import MasterRunner, WorkerRunner

from dcc_capacity.config.tls import ServerTls
from dcc_capacity.load.callbacks import CallbackListener
from dcc_capacity.load.records import RecordWriter
from dcc_capacity.load.response_check import response_trust
from dcc_capacity.load.sendlag import LagHistogram

if TYPE_CHECKING:
    from locust.env import Environment

    from dcc_capacity.duis.verify import TrustStore

__all__ = ["MeasureConfig", "RunContext", "context_for", "install"]

log = logging.getLogger(__name__)
COUNTS_MESSAGE = "dcc_om_counts"
DRAINED_MESSAGE = "dcc_drained"
LIVE_KEY = "dcc_live"


@dataclass
class MeasureConfig:
    """Measurement settings; from Locust options (``--run-dir`` ...) unless given explicitly."""

    run_dir: Path | None = None
    """Where ``records-<host>-<pid>.arrows`` go. None: no records file (a warning is logged)."""
    callback_host: str = "127.0.0.1"
    """Interface the callback listener binds to (and puts in its URL)."""
    callback_port: int = 0
    """0 = an ephemeral port per process (each worker needs its own)."""
    trt_late_s: float = 30.0
    """An async response after this many seconds (from intended send) is a ``late`` failure."""
    trt_missing_s: float = 120.0
    """No async response after this many seconds: ``missing``."""
    drain_s: float | None = None
    """At test stop, wait at most this long for open exchanges, parked journeys and awaited responses, then
    declare what is still awaited missing. None: the missing deadline (``trt_missing_s``), so every request sent
    in the test gets its full chance to be answered."""
    max_parked: int = 100_000
    """Journeys that may wait at once for a response their next step needs (``--max-parked-journeys``)."""
    listen: bool = True
    """Run a callback listener in this process."""
    callback_tls: ServerTls | None = None
    """Serve the callback listener over HTTPS (``--callback-tls-*``); with a client CA, mutual TLS."""
    response_certs: tuple[str, ...] = ()
    """The DCC's signing certificates (``--response-cert``): when set, every response and alert is verified."""

    @classmethod
    def from_options(cls, opts: Any) -> MeasureConfig:
        def get(name: str, default: Any) -> Any:
            v = getattr(opts, name, None) if opts is not None else None
            return default if v in (None, "") else v

        run_dir = get("run_dir", None)
        cert = get("callback_tls_cert", None)
        tls = ServerTls(cert, get("callback_tls_key", None), get("callback_tls_client_ca", None),
                        get("tls_key_password_env", None), option="--callback-tls-cert") if cert else None
        return cls(run_dir=Path(run_dir) if run_dir else None, callback_host=get("callback_host", "127.0.0.1"),
                   callback_port=int(get("callback_port", 0)), trt_late_s=float(get("trt_late", 30.0)),
                   trt_missing_s=float(get("trt_missing", 120.0)),
                   drain_s=float(get("drain", None)) if get("drain", None) is not None else None,
                   max_parked=int(get("max_parked_journeys", 100_000)),
                   callback_tls=tls, response_certs=tuple(get("response_cert", None) or ()))


class GcPauses:
    """Python's garbage-collector pauses in this process: count, total and longest per generation.

    A load process holding tens of thousands of awaited responses has a big heap, and a full collection walks
    all of it while no request goes out: that shows as send lag. Measured here so the lag has an explanation.
    """

    def __init__(self) -> None:
        self.started = 0.0
        self.count = [0, 0, 0]
        self.total_ms = [0.0, 0.0, 0.0]
        self.max_ms = [0.0, 0.0, 0.0]

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
            return
        gen = int(info.get("generation", 0))
        ms = (time.perf_counter() - self.started) * 1000
        self.count[gen] += 1
        self.total_ms[gen] += ms
        self.max_ms[gen] = max(self.max_ms[gen], ms)
        if gen == 2 and os.environ.get("DCC_GC_DEBUG"):
            import collections
            objs = gc.get_objects(2)
            top = collections.Counter(type(o).__name__ for o in objs).most_common(8)
            print(f"[gc] gen2 {ms:.0f} ms, {len(objs)} objects in gen2: {top}", file=sys.stderr, flush=True)

    def to_dict(self) -> dict[str, Any]:
        return {f"gen{g}": {"count": self.count[g], "total_ms": round(self.total_ms[g], 1),
                            "max_ms": round(self.max_ms[g], 2)} for g in range(3)}


class RunContext:
    """Everything one process measures with. Get it with :func:`context_for`."""

    def __init__(self, environment: Environment, config: MeasureConfig | None = None) -> None:
        self.environment = environment
        self._explicit_config = config
        self.config = config or MeasureConfig()
        self.records: RecordWriter | None = None
        self.callbacks: CallbackListener | None = None
        self.response_trust: TrustStore | None = None
        """The DCC signing certificates responses are checked against (None: no checking)."""
        self.t0: float | None = None
        self.offered: Counter[str] = Counter()
        """Requests scheduled per user class (sent or dropped)."""
        self.achieved: Counter[str] = Counter()
        """Requests per user class whose outcome was ok (ack, and the callback when one was expected)."""
        self.dropped: Counter[str] = Counter()
        """Arrivals per user class not sent because the client was saturated (max in-flight reached)."""
        self.cluster_counts: dict[str, int] | None = None
        self.arrival_ids = itertools.count(1)
        """Arrival numbers, unique in this process: (process, arrival) links a journey's steps in the records."""
        self.pools: weakref.WeakSet[Any] = weakref.WeakSet()
        """Each open-model user's arrivals in flight (``flights.Flights``: ``len`` and ``join``)."""
        self.parked = 0
        """Journeys waiting (as continuations, no greenlet) for a response their next step needs."""
        self.stopped = False
        """True once the drain has closed the books: a late continuation sends nothing more."""
        self.send_lag = LagHistogram()
        """Actual - planned send of every request of this process, ms (the live line; the report reads records)."""
        self.drain: dict[str, Any] = {}
        """What the end-of-test drain found and did (also ``drain-<process>.json`` in the run folder)."""
        self._drained_workers: dict[str, dict[str, Any]] = {}
        self._worker_live: dict[str, dict[str, Any]] = {}
        self.gc_pauses: GcPauses | None = None
        self._broadcaster: gevent.Greenlet | None = None

    # -- clock and share --------------------------------------------------
    def elapsed(self, now: float | None = None) -> float:
        """Seconds since this process saw the test start (the time shapes are functions of)."""
        if self.t0 is None:
            return 0.0
        return (time.time() if now is None else now) - self.t0

    def divisor(self, class_name: str) -> int | None:
        """How many scheduler users of ``class_name`` share its rate; None while a worker has not heard yet."""
        runner = self.environment.runner
        if isinstance(runner, WorkerRunner):
            if self.cluster_counts is None:
                return None
            return max(1, int(self.cluster_counts.get(class_name, 1)))
        counts = runner.user_classes_count if runner is not None else {}
        return max(1, int(counts.get(class_name, 1)))

    def _count_outcome(self, user_class: str, outcome: str) -> None:
        """Every expected async response resolved: an ok one is an achieved request of its class."""
        if outcome == "ok":
            self.achieved[user_class] += 1

    @property
    def in_flight(self) -> int:
        return sum(len(p) for p in list(self.pools))

    @property
    def max_parked(self) -> int:
        return self.config.max_parked

    @property
    def awaited(self) -> int:
        """Async responses this process still waits for."""
        return self.callbacks.pending_count if self.callbacks is not None else 0

    def live(self) -> dict[str, Any]:
        """This process's generator health for the live line and the web UI (merged with the workers' on a master)."""
        lag = LagHistogram()
        lag.merge(self.send_lag.to_dict())
        awaited, parked, in_flight, received = self.awaited, self.parked, self.in_flight, self.received
        for data in self._worker_live.values():
            lag.merge(data.get("lag") or {})
            awaited += int(data.get("awaited", 0))
            parked += int(data.get("parked", 0))
            in_flight += int(data.get("in_flight", 0))
            received += int(data.get("received", 0))
        return {"lag": lag, "awaited": awaited, "parked": parked, "in_flight": in_flight, "received": received}

    @property
    def received(self) -> int:
        """Async messages (responses and alerts) this process's listener has received."""
        return self.callbacks.counts["received"] if self.callbacks is not None else 0

    # -- lifecycle --------------------------------------------------------
    def on_test_start(self, **_: Any) -> None:
        self.t0 = time.time()
        self.offered.clear()
        self.achieved.clear()
        self.dropped.clear()
        self.send_lag.clear()
        self.stopped = False
        self._drained_workers.clear()
        self._worker_live.clear()
        runner = self.environment.runner
        if isinstance(runner, MasterRunner):
            if self._broadcaster is None:
                self._broadcaster = gevent.spawn(self._broadcast_loop, runner)
            return
        if self._explicit_config is None:
            self.config = MeasureConfig.from_options(self.environment.parsed_options)
        self._tame_gc()
        cfg = self.config
        if self.records is None and cfg.run_dir is not None:
            self.records = RecordWriter(cfg.run_dir)
        elif cfg.run_dir is None:
            log.warning("no --run-dir: request records are not written (Locust stats only)")
        if self.response_trust is None:
            self.response_trust = response_trust(cfg.response_certs)
        if self.callbacks is None and cfg.listen:
            ssl_context = None
            if cfg.callback_tls is not None:
                from gevent import ssl as gevent_ssl

                ssl_context = cfg.callback_tls.context(gevent_ssl.SSLContext)
            self.callbacks = CallbackListener(self.environment, host=cfg.callback_host, port=cfg.callback_port,
                                              late_after_s=cfg.trt_late_s, missing_after_s=cfg.trt_missing_s,
                                              records=self.records, ssl_context=ssl_context,
                                              trust=self.response_trust).start()
            self.callbacks.on_outcome = self._count_outcome
            log.info("callback listener on %s", self.callbacks.url)

    def _tame_gc(self) -> None:
        """Keep full collections short: what exists at test start (modules, the fleet, templates, keys) lives for
        the whole run, so it is moved out of the collector's sight (``gc.freeze``); only what the run creates is
        walked. Measured: without it, full collections with ~70,000 responses awaited took hundreds of ms, and every
        request due meanwhile was sent that late (docs/performance.md, bench_pending)."""
        if self.gc_pauses is None:
            self.gc_pauses = GcPauses()
            gc.callbacks.append(self.gc_pauses)
        gc.collect()
        gc.freeze()

    def on_spawning_complete(self, **_: Any) -> None:
        """The users (and what they built on first use: the fleet, its pools, the request factory) are in place:
        out of the collector's sight too. No collection here (the load is already going); freeze only moves."""
        if self.gc_pauses is not None and not isinstance(self.environment.runner, MasterRunner):
            gc.freeze()

    def drain_limit(self) -> float:
        return self.config.drain_s if self.config.drain_s is not None else self.config.trt_missing_s

    def on_test_stop(self, **_: Any) -> None:
        if isinstance(self.environment.runner, MasterRunner):
            self._wait_for_workers()
            return
        self.drain = self._drain()
        if self.records is not None:
            self.records.flush()
            path = self.records.run_dir / f"drain-{self.records.tag}.json"
            path.write_text(json.dumps(self.drain, indent=1) + "\n")
        runner = self.environment.runner
        if isinstance(runner, WorkerRunner):
            runner.send_message(DRAINED_MESSAGE, {"id": runner.client_id, **self.drain})

    def _drain(self) -> dict[str, Any]:
        """Let open exchanges, parked journeys and awaited responses finish (bounded), then close the books."""
        limit = self.drain_limit()
        started = time.time()
        at_stop = {"in_flight": self.in_flight, "parked": self.parked, "awaited": self.awaited}
        deadline, next_line = started + limit, started + 5.0
        runner = self.environment.runner
        while time.time() < deadline and (self.in_flight or self.parked or self.awaited):
            if isinstance(runner, WorkerRunner):
                # Locust handles the master's messages (its heartbeats too) in the greenlet that runs this stop:
                # while we drain, none is read, and after 60 s the worker would quit as if the master were gone,
                # cutting the drain. The master is waiting for our drained message; keep the worker's own clock.
                runner.last_heartbeat_timestamp = time.time()
            if time.time() >= next_line and not isinstance(runner, WorkerRunner):
                print(f"[dcc-capacity] draining: {self.awaited:,} responses awaited, {self.parked:,} journeys parked, "
                      f"{self.in_flight:,} exchanges open; at most {deadline - time.time():.0f} s left",
                      file=sys.stderr, flush=True)
                next_line += 5.0
            gevent.sleep(0.05)
        self.stopped = True
        closed = 0
        if self.callbacks is not None:
            closed = self.callbacks.close_all(f"still awaited when the drain ended ({limit:g} s after the load "
                                              "stopped)")
        return {"limit_s": limit, "took_s": round(time.time() - started, 3), "at_stop": at_stop,
                "closed_missing": closed, "parked_left": self.parked,
                "dropped": int(sum(self.dropped.values())), "send_lag": self.send_lag.to_dict(),
                "gc": self.gc_pauses.to_dict() if self.gc_pauses is not None else {},
                "listener": dict(self.callbacks.counts) if self.callbacks is not None else {}}

    def _wait_for_workers(self) -> None:
        """Master: stay up (and keep Locust's stats) until every worker has drained, bounded by the drain limit."""
        from locust.rpc import Message
        from locust.runners import STATE_MISSING, STATE_RUNNING, STATE_SPAWNING

        runner = self.environment.runner
        for c in runner.clients.all:  # a headless shape ends in quit(), which fires test_stop before it tells the
            if c.state in (STATE_RUNNING, STATE_SPAWNING):  # workers: stop them now, or they drain only after this
                runner.server.send_to_client(Message("stop", None, c.id))  # wait has timed out (limit + 15 s)
        deadline = time.time() + self.drain_limit() + 15.0
        while time.time() < deadline:
            alive = {c.id for c in runner.clients.all if c.state != STATE_MISSING}  # a lost worker never reports
            if alive <= set(self._drained_workers):
                return
            gevent.sleep(0.1)

    def on_drained_message(self, environment: Environment, msg: Any, **_: Any) -> None:
        data = dict(msg.data)
        self._drained_workers[str(data.get("id", len(self._drained_workers)))] = data

    def on_report_to_master(self, client_id: str, data: dict[str, Any]) -> None:
        data[LIVE_KEY] = {"lag": self.send_lag.to_dict(), "awaited": self.awaited, "parked": self.parked,
                          "in_flight": self.in_flight, "received": self.received}

    def on_worker_report(self, client_id: str, data: dict[str, Any]) -> None:
        if LIVE_KEY in data:
            self._worker_live[client_id] = data[LIVE_KEY]

    def on_quitting(self, **_: Any) -> None:
        self.close()

    def close(self) -> None:
        if self._broadcaster is not None:
            self._broadcaster.kill(block=False)
            self._broadcaster = None
        if self.callbacks is not None:
            self.callbacks.stop()
            self.callbacks = None
        if self.records is not None:
            self.records.close()
            self.records = None

    # -- distributed ------------------------------------------------------
    def _broadcast_loop(self, runner: MasterRunner) -> None:
        last: dict[str, int] | None = None
        last_sent = 0.0
        while True:
            counts = dict(runner.target_user_classes_count)
            if counts and (counts != last or time.time() - last_sent > 2.0):
                runner.send_message(COUNTS_MESSAGE, counts)
                last, last_sent = counts, time.time()
            gevent.sleep(0.1)

    def on_counts_message(self, environment: Environment, msg: Any, **_: Any) -> None:
        self.cluster_counts = {str(k): int(v) for k, v in dict(msg.data).items()}


_contexts: weakref.WeakKeyDictionary[Any, RunContext] = weakref.WeakKeyDictionary()


def install(environment: Environment, config: MeasureConfig | None = None) -> RunContext:
    """Create (once) the environment's :class:`RunContext` and hook it to the environment's events."""
    ctx = _contexts.get(environment)
    if ctx is not None:
        if config is not None:
            ctx._explicit_config = ctx.config = config
        return ctx
    ctx = RunContext(environment, config)
    _contexts[environment] = ctx
    ev = environment.events
    ev.test_start.add_listener(ctx.on_test_start)
    ev.test_stop.add_listener(ctx.on_test_stop)
    ev.quitting.add_listener(ctx.on_quitting)
    ev.spawning_complete.add_listener(ctx.on_spawning_complete)
    if isinstance(environment.runner, WorkerRunner):
        environment.runner.register_message(COUNTS_MESSAGE, ctx.on_counts_message)
        ev.report_to_master.add_listener(ctx.on_report_to_master)
    if isinstance(environment.runner, MasterRunner):
        environment.runner.register_message(DRAINED_MESSAGE, ctx.on_drained_message)
        ev.worker_report.add_listener(ctx.on_worker_report)
    return ctx


def context_for(environment: Environment) -> RunContext:
    """The environment's context, installing it on first use."""
    return _contexts.get(environment) or install(environment)


@global_events.init_command_line_parser.add_listener
def _add_options(parser: Any, **_: Any) -> None:
    g = parser.add_argument_group("dcc-capacity measurement")
    g.add_argument("--run-dir", default="", help="Folder for this run's records (one file per process).")
    g.add_argument("--callback-host", default="127.0.0.1", help="Interface of each process's callback listener.")
    g.add_argument("--callback-port", type=int, default=0, help="Callback listener port (0: ephemeral).")
    g.add_argument("--trt-late", type=float, default=30.0, help="Async response later than this (s) is 'late'.")
    g.add_argument("--trt-missing", type=float, default=120.0, help="No async response after this (s): 'missing'.")
    g.add_argument("--drain", type=float, default=None,
                   help="Seconds to wait at stop for awaited responses, then record them missing (default: "
                        "--trt-missing).")
    g.add_argument("--max-in-flight", type=int, default=0,
                   help="Open HTTP exchanges per user class and process; past it arrivals are dropped (default 1000).")
    g.add_argument("--max-parked-journeys", type=int, default=100_000,
                   help="Journeys per process waiting for a response their next step needs (default 100000).")
    g.add_argument("--nfr", default="", help="NFR file for the live progress line (default: the shipped one).")
    g.add_argument("--progress-interval", type=float, default=10.0,
                   help="Headless: seconds between progress lines (0: none).")


@global_events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    install(environment)
    opts = environment.parsed_options
    interval = float(getattr(opts, "progress_interval", 0) or 0)
    if opts is not None and getattr(opts, "headless", False) and interval > 0 and not isinstance(
            environment.runner, WorkerRunner):
        from dcc_capacity.load.progress import Progress
        from dcc_capacity.model.nfr import load_catalogue

        cat = load_catalogue(getattr(opts, "nfr", "") or None)
        nfrs = cat.nfrs
        from dcc_capacity.testtypes.registry import TYPES

        kind = TYPES.get(str(getattr(opts, "dcc_test", "")))
        if kind is not None and kind.live_nfr_test:  # negative: error answers are the point; judge its own NFRs
            ids = {n for t in cat.tests if t.id == kind.live_nfr_test for n in t.nfr_ids}
            nfrs = [n for n in cat.nfrs if n.id in ids] or nfrs
        Progress(environment, nfrs, interval=interval).install()
