"""Worker messaging of a distributed run: the cluster-wide user counts, workers' health, their drain reports.

Distributed rule: every scheduler user of class C takes
``rate(C) / (number of C users in the whole cluster)``. A master knows that
number after dispatch (``runner.target_user_classes_count``) and sends it to
the workers (custom message ``dcc_om_counts``); a worker does not start
scheduling until it has heard it (a few ms). Workers also send their
generator health with every Locust report (for the master's live line and web
UI) and, at the end, what their drain found (``dcc_drained``), so the master
keeps Locust's stats until every worker has drained.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gevent
from locust.runners import MasterRunner, WorkerRunner

if TYPE_CHECKING:
    from locust.env import Environment

__all__ = ["COUNTS_MESSAGE", "DRAINED_MESSAGE", "LIVE_KEY", "Cluster"]

COUNTS_MESSAGE = "dcc_om_counts"
DRAINED_MESSAGE = "dcc_drained"
LIVE_KEY = "dcc_live"


class Cluster:
    """What this process tells the other processes of the run, and what it has heard from them."""

    def __init__(self, live: Callable[[], dict[str, Any]]) -> None:
        self._live = live
        """This process's own generator health (sent to the master with each report)."""
        self.counts: dict[str, int] | None = None
        """Worker: scheduler users per class in the whole cluster, as the master last said (None: not heard yet)."""
        self.drained: dict[str, dict[str, Any]] = {}
        """Master: each worker's drain report, by client id."""
        self.worker_live: dict[str, dict[str, Any]] = {}
        """Master: each worker's latest generator health, by client id."""
        self._broadcaster: gevent.Greenlet | None = None

    def install(self, environment: Environment) -> None:
        """Register the custom messages and report hooks this process's role needs."""
        runner, ev = environment.runner, environment.events
        if isinstance(runner, WorkerRunner):
            runner.register_message(COUNTS_MESSAGE, self.on_counts_message)
            ev.report_to_master.add_listener(self.on_report_to_master)
        if isinstance(runner, MasterRunner):
            runner.register_message(DRAINED_MESSAGE, self.on_drained_message)
            ev.worker_report.add_listener(self.on_worker_report)

    def start(self, runner: MasterRunner) -> None:
        """Master, at test start: forget the last test's workers and start broadcasting the user counts."""
        self.reset()
        if self._broadcaster is None:
            self._broadcaster = gevent.spawn(self._broadcast_loop, runner)

    def reset(self) -> None:
        self.drained.clear()
        self.worker_live.clear()

    def stop(self) -> None:
        if self._broadcaster is not None:
            self._broadcaster.kill(block=False)
            self._broadcaster = None

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
        self.counts = {str(k): int(v) for k, v in dict(msg.data).items()}

    def on_drained_message(self, environment: Environment, msg: Any, **_: Any) -> None:
        data = dict(msg.data)
        self.drained[str(data.get("id", len(self.drained)))] = data

    def on_report_to_master(self, client_id: str, data: dict[str, Any]) -> None:
        data[LIVE_KEY] = self._live()

    def on_worker_report(self, client_id: str, data: dict[str, Any]) -> None:
        if LIVE_KEY in data:
            self.worker_live[client_id] = data[LIVE_KEY]
