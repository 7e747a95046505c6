"""The arrivals one open-model user has in flight: a bounded set of raw greenlets.

Why not :class:`gevent.pool.Pool`: the open model starts a greenlet per
arrival, thousands a second, and a Pool wraps each in a ``Greenlet`` object
with links, a Group set entry and a semaphore (about 5 % of a signed SRV's CPU
at saturation, py-spy). The open model needs only what :class:`Flights`
keeps: how many are running (``len``, ``full``), start one (``spawn``), and
wait until none is left (``join``, for the drain at test stop). The function
run must catch its own exceptions (``OpenModelUser._run_arrival`` does).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gevent
from gevent.event import Event

__all__ = ["Flights"]


class Flights:
    """At most ``size`` concurrent calls, each in its own raw greenlet."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._n = 0
        self._idle = Event()
        self._idle.set()

    def __len__(self) -> int:
        return self._n

    def full(self) -> bool:
        return self._n >= self.size

    def spawn(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` in a new greenlet (the caller checks :meth:`full` first)."""
        self._n += 1
        self._idle.clear()
        gevent.spawn_raw(self._run, fn, args)

    def _run(self, fn: Callable[..., Any], args: tuple) -> None:
        try:
            fn(*args)
        finally:
            self._n -= 1
            if not self._n:
                self._idle.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until nothing is in flight (at most ``timeout`` s); True when nothing is."""
        return self._idle.wait(timeout)
