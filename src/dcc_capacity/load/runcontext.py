"""Per-process measurement wiring: run clock, records writer, callback listener, counters, worker share.

One :class:`RunContext` per Locust :class:`~locust.env.Environment`, made by
:func:`install` (called from Locust's ``init`` event when a locustfile
imports :mod:`dcc_capacity.load.openmodel`, via :mod:`.hooks`; call it yourself for an in-process
``Environment``). It hooks Locust's own events - nothing is monkeypatched:

- ``test_start``: start the run clock; on processes that run users, open this
  process's records file in ``--run-dir`` and start the callback listener;
  on a master, start broadcasting how many scheduler users of each class run
  cluster-wide (custom message ``dcc_om_counts``);
- ``test_stop``: let in-flight requests finish (``--drain``), declare overdue
  callbacks missing, flush records;
- ``quitting``: close the records file and stop the listener.

The end-of-test drain (:mod:`.drain`), the collector's pauses
(:mod:`.gcpauses`) and the messages between master and workers
(:mod:`.cluster`) live in their own modules; the Locust options and the init
hook that installs a context in every process are in :mod:`.hooks`.
Locally a user class's rate divisor is the local count (normally 1).
"""

from __future__ import annotations

import itertools
import json
import logging
import time
import weakref
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gevent
from locust.runners import MasterRunner, WorkerRunner

from dcc_capacity.config.tls import ServerTls
from dcc_capacity.load.callbacks import CallbackListener
from dcc_capacity.load.cluster import DRAINED_MESSAGE, Cluster
from dcc_capacity.load.drain import drain, wait_for_workers
from dcc_capacity.load.gcpauses import GcPauses, freeze_survivors, tame_gc
from dcc_capacity.load.hostcpu import HostCpu
from dcc_capacity.load.records import RecordWriter
from dcc_capacity.load.response_check import response_trust
from dcc_capacity.load.sendlag import LagHistogram

if TYPE_CHECKING:
    from locust.env import Environment

    from dcc_capacity.duis.verify import TrustStore

__all__ = ["GcPauses", "MeasureConfig", "RunContext", "context_for", "install"]

log = logging.getLogger(__name__)


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
        """SRV attempts scheduled per user class (sent or dropped; a critical SRV's CV 4 + CV 5 is one)."""
        self.achieved: Counter[str] = Counter()
        """SRV attempts per user class whose outcome was ok (ack, and the callback when one was expected)."""
        self.dropped: Counter[str] = Counter()
        """Arrivals per user class not sent because the client was saturated (max in-flight reached)."""
        self.cluster = Cluster(self.own_live)
        """Messages to and from the run's other processes (user counts, workers' health and drain reports)."""
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
        self.gc_pauses: GcPauses | None = None
        self.host_cpu: HostCpu | None = None
        """This process's host CPU, busy and steal, each second of the load (``drain-<process>.json`` host_cpu)."""
        self._host_sampler: gevent.Greenlet | None = None

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
            if self.cluster.counts is None:
                return None
            return max(1, int(self.cluster.counts.get(class_name, 1)))
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
        for data in self.cluster.worker_live.values():
            lag.merge(data.get("lag") or {})
            awaited += int(data.get("awaited", 0))
            parked += int(data.get("parked", 0))
            in_flight += int(data.get("in_flight", 0))
            received += int(data.get("received", 0))
        return {"lag": lag, "awaited": awaited, "parked": parked, "in_flight": in_flight, "received": received}

    def own_live(self) -> dict[str, Any]:
        """This process's own generator health, as a worker sends it to the master with each report."""
        return {"lag": self.send_lag.to_dict(), "awaited": self.awaited, "parked": self.parked,
                "in_flight": self.in_flight, "received": self.received}

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
        self.cluster.reset()
        runner = self.environment.runner
        if isinstance(runner, MasterRunner):
            self.cluster.start(runner)
            return
        if self._explicit_config is None:
            self.config = MeasureConfig.from_options(self.environment.parsed_options)
        self.gc_pauses = tame_gc(self.gc_pauses)
        self.host_cpu = HostCpu()
        if self._host_sampler is None:
            self._host_sampler = gevent.spawn(self._sample_host)
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

    def on_spawning_complete(self, **_: Any) -> None:
        """The users and what they built on first use are in place: out of the collector's sight too."""
        if self.gc_pauses is not None and not isinstance(self.environment.runner, MasterRunner):
            freeze_survivors()

    def drain_limit(self) -> float:
        return self.config.drain_s if self.config.drain_s is not None else self.config.trt_missing_s

    def on_test_stop(self, **_: Any) -> None:
        if isinstance(self.environment.runner, MasterRunner):
            wait_for_workers(self)
            return
        self._stop_host_sampler()  # the load's seconds, not the drain's
        self.drain = drain(self)
        if self.host_cpu is not None:
            self.drain["host_cpu"] = self.host_cpu.to_dict()
        if self.records is not None:
            self.records.flush()
            path = self.records.run_dir / f"drain-{self.records.tag}.json"
            path.write_text(json.dumps(self.drain, indent=1) + "\n")
        runner = self.environment.runner
        if isinstance(runner, WorkerRunner):
            runner.send_message(DRAINED_MESSAGE, {"id": runner.client_id, **self.drain})

    def _stop_host_sampler(self) -> None:
        if self._host_sampler is not None:
            self._host_sampler.kill(block=False)
            self._host_sampler = None

    def _sample_host(self) -> None:
        while self.host_cpu is not None:
            gevent.sleep(1.0)
            self.host_cpu.sample()

    def on_quitting(self, **_: Any) -> None:
        self.close()

    def close(self) -> None:
        self.cluster.stop()
        self._stop_host_sampler()
        if self.callbacks is not None:
            self.callbacks.stop()
            self.callbacks = None
        if self.records is not None:
            self.records.close()
            self.records = None


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
    ctx.cluster.install(environment)
    return ctx


def context_for(environment: Environment) -> RunContext:
    """The environment's context, installing it on first use."""
    return _contexts.get(environment) or install(environment)
