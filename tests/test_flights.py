"""The open model's in-flight set: bounded count, spawn, and the drain's join."""

from __future__ import annotations

import gevent
import pytest

from dcc_capacity.load.flights import Flights

pytestmark = [pytest.mark.timeout(30), pytest.mark.quiet]


def test_counts_bounds_and_joins_what_is_in_flight():
    f = Flights(3)
    done = []

    def work(i: int, s: float) -> None:
        gevent.sleep(s)
        done.append(i)

    assert len(f) == 0 and not f.full() and f.join(0)
    for i in range(3):
        f.spawn(work, i, 0.2)
    assert len(f) == 3 and f.full()
    assert f.join(0.05) is False  # still running: the drain gives up at its timeout
    assert f.join(2) is True and sorted(done) == [0, 1, 2] and len(f) == 0 and not f.full()


def test_a_failing_call_still_leaves_the_set():
    f = Flights(2)

    def boom() -> None:
        raise RuntimeError("bug")

    f.spawn(boom)
    gevent.sleep(0.01)  # the error is printed by gevent's hub; the count must still come down
    assert len(f) == 0 and f.join(0)
