"""A module's end-to-end CLI runs, started together and run two at a time.

Why: each ``dcc-capacity run`` in the tests is a few seconds of load between
start-up and the report, a process tree (parent, emulator, Locust) that uses
about one core in bursts and waits the rest. Run one after another they made
the suite 15 minutes on 2 cores; two side by side take little more than one.
Never more than two, so a run's load phase always has a core: the runs stay
low-rate, and their send lag is still judged (a run late by over 50 ms p99 is
INVALID and its test fails).

A run whose verdict depends on the CPU it gets (a stress knee: the emulator
must keep its configured capacity) is declared :class:`alone`: it waits for
the other lane to finish and runs with the box to itself.

A module declares its runs as ``{test name: job}``; the module fixture
(:func:`lanes`) submits only the jobs of the tests pytest selected (so ``-k``
runs just what it names), the first test to ask waits for its own result
while the others go on in the background.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest

__all__ = ["LANES", "alone", "lanes"]

LANES = 2
"""Runs at once: the machine's 2 cores (tests/README: the suite's budget is 12 minutes on 2 cores)."""


@dataclass(frozen=True)
class alone:  # noqa: N801 - reads as a marker: {"test_x": alone(job)}
    """A job that runs with no other job beside it."""

    job: Callable[[], Any]


class _Gate:
    """Shared for ordinary jobs, exclusive for :class:`alone` ones (a readers-writer lock, writers first)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._running = 0
        self._exclusive = False
        self._waiting_exclusive = 0

    def run(self, job: Callable[[], Any], exclusive: bool) -> Any:
        with self._cond:
            if exclusive:
                self._waiting_exclusive += 1
                self._cond.wait_for(lambda: self._running == 0)
                self._waiting_exclusive -= 1
                self._exclusive = True
            else:
                self._cond.wait_for(lambda: not self._exclusive and not self._waiting_exclusive)
            self._running += 1
        try:
            return job()
        finally:
            with self._cond:
                self._running -= 1
                self._exclusive = False
                self._cond.notify_all()


class Lanes:
    def __init__(self, futures: dict[str, Future]) -> None:
        self._futures = futures

    def result(self, name: str, timeout: float = 400) -> Any:
        """The job's return value (its exception re-raised here, in the test that asked)."""
        if name not in self._futures:
            raise KeyError(f"no run declared for {name!r}")
        return self._futures[name].result(timeout=timeout)


def lanes(request: pytest.FixtureRequest, jobs: dict[str, Callable[[], Any] | alone]) -> Iterator[Lanes]:
    """Submit the selected tests' jobs (in declaration order) to two lanes; yield their results' handle."""
    selected = {item.name.split("[")[0] for item in request.session.items if item.module is request.module}
    pool = ThreadPoolExecutor(max_workers=LANES, thread_name_prefix="cli-run")
    gate = _Gate()
    futures = {name: pool.submit(gate.run, job.job if isinstance(job, alone) else job, isinstance(job, alone))
               for name, job in jobs.items() if name in selected}
    try:
        yield Lanes(futures)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
