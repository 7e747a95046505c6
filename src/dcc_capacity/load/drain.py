"""The end-of-test drain: let what is in flight finish (bounded), then close the books.

At test stop a load process still has open HTTP exchanges, journeys parked on
a response their next step needs, and asynchronous responses awaited. Cutting
them off would count answers the SUT was still going to give as missing; so
each process waits at most the drain limit (``--drain``, default the missing
deadline) and then declares what is still awaited missing. A master waits,
bounded, until every worker has reported its drain, so Locust's stats stay up
until the last answer is in. A run being stopped early (``interrupt.json``:
Ctrl-C, a dead SUT) ends the drain at once (:mod:`dcc_capacity.load.interrupt`).
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

import gevent
from locust.runners import WorkerRunner

from dcc_capacity.load.interrupt import interrupt_reason

if TYPE_CHECKING:
    from dcc_capacity.load.runcontext import RunContext

__all__ = ["drain", "wait_for_workers"]


def drain(ctx: RunContext) -> dict[str, Any]:
    """Let open exchanges, parked journeys and awaited responses finish (bounded), then close the books.

    Returns what the drain found and did (written as ``drain-<process>.json``)."""
    limit = ctx.drain_limit()
    started = time.time()
    at_stop = {"in_flight": ctx.in_flight, "parked": ctx.parked, "awaited": ctx.awaited}
    deadline, next_line = started + limit, started + 5.0
    runner = ctx.environment.runner
    run_dir = ctx.records.run_dir if ctx.records is not None else None
    why = None
    while time.time() < deadline and (ctx.in_flight or ctx.parked or ctx.awaited):
        why = interrupt_reason(run_dir)
        if why is not None:  # stopped early: nothing more is worth waiting for
            break
        if isinstance(runner, WorkerRunner):
            # Locust handles the master's messages (its heartbeats too) in the greenlet that runs this stop:
            # while we drain, none is read, and after 60 s the worker would quit as if the master were gone,
            # cutting the drain. The master is waiting for our drained message; keep the worker's own clock.
            runner.last_heartbeat_timestamp = time.time()
        if time.time() >= next_line and not isinstance(runner, WorkerRunner):
            print(f"[dcc-capacity] draining: {ctx.awaited:,} responses awaited, {ctx.parked:,} journeys parked, "
                  f"{ctx.in_flight:,} exchanges open; at most {deadline - time.time():.0f} s left",
                  file=sys.stderr, flush=True)
            next_line += 5.0
        gevent.sleep(0.05)
    ctx.stopped = True
    closed = 0
    if ctx.callbacks is not None:
        closed = ctx.callbacks.close_all(f"still awaited when the run was stopped early ({why})" if why else
                                         f"still awaited when the drain ended ({limit:g} s after the load stopped)")
    return {"limit_s": limit, "took_s": round(time.time() - started, 3), "at_stop": at_stop,
            **({"interrupted": why} if why else {}),
            "closed_missing": closed, "parked_left": ctx.parked,
            "dropped": int(sum(ctx.dropped.values())), "send_lag": ctx.send_lag.to_dict(),
            "gc": ctx.gc_pauses.to_dict() if ctx.gc_pauses is not None else {},
            "listener": dict(ctx.callbacks.counts) if ctx.callbacks is not None else {}}


def wait_for_workers(ctx: RunContext) -> None:
    """Master: stay up (and keep Locust's stats) until every worker has drained, bounded by the drain limit."""
    from locust.rpc import Message
    from locust.runners import STATE_MISSING, STATE_RUNNING, STATE_SPAWNING, MasterRunner

    runner = ctx.environment.runner
    if not isinstance(runner, MasterRunner):
        return
    for c in runner.clients.all:  # a headless shape ends in quit(), which fires test_stop before it tells the
        if c.state in (STATE_RUNNING, STATE_SPAWNING):  # workers: stop them now, or they drain only after this
            runner.server.send_to_client(Message("stop", None, c.id))  # wait has timed out (limit + 15 s)
    deadline = time.time() + ctx.drain_limit() + 15.0
    run_dir = ctx.records.run_dir if ctx.records is not None else None
    grace: float | None = None
    while time.time() < deadline:
        if grace is None and interrupt_reason(run_dir) is not None:  # the workers end their drains at once too
            grace = deadline = min(deadline, time.time() + 5.0)
        alive = {c.id for c in runner.clients.all if c.state != STATE_MISSING}  # a lost worker never reports
        if alive <= set(ctx.cluster.drained):
            return
        gevent.sleep(0.1)
