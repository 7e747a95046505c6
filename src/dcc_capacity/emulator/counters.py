"""RequestID counters per originator: replays refused forever, reordering tolerated for a time window.

DUIS wants each Service User's counters to increase. Several load generator
processes and greenlets sign as one user, so requests reach the gateway a
little out of counter order; refusing those would make the emulator reject
what a real DCC sees as normal jitter. The rule:

* a counter above the originator's highest is accepted;
* a counter at or below it is accepted only if it was never seen and is
  above every counter that *arrived* more than ``window_s`` seconds ago
  (the "floor"); so a request may overtake another by at most ``window_s``;
* a replay is refused, always: counters still remembered are in a set, and
  every forgotten one is at or below the floor.

The window is wall time on the emulator's clock, not counter units, so it
means the same whatever the counter encodes (this suite's µs << 10, DCC
Boxed's epoch milliseconds, a template's 1000). Memory is what arrived in the
last ``window_s`` (plus at most ``max_remembered`` per originator: past that
the oldest are forgotten early, which only makes the rule stricter), so a
soak of any length stays bounded. ``window_s = 0`` means strictly increasing.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

__all__ = ["CounterWindow"]


class _State:
    __slots__ = ("high", "floor", "times", "order", "seen")

    def __init__(self) -> None:
        self.high = -1
        self.floor = -1
        self.times: deque[float] = deque()   # arrival times, oldest first ...
        self.order: deque[int] = deque()     # ... and the counters that arrived then
        self.seen: set[int] = set()


class CounterWindow:
    """Per-originator RequestID counter check (module docstring); ``accept`` is on the request hot path."""

    def __init__(self, window_s: float, *, max_remembered: int = 200_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = float(window_s)
        self.max_remembered = max(1, int(max_remembered))
        self._clock = clock
        self._state: dict[str, _State] = {}

    def accept(self, originator: str, counter: int) -> bool:
        """True for a fresh counter (remembered from now on); False for a replay or one too far behind."""
        st = self._state.get(originator)
        if st is None:
            st = self._state[originator] = _State()
        now = self._clock()
        times = st.times
        if times and (times[0] < now - self.window_s or len(times) >= self.max_remembered):
            self._forget(st, now)
        if counter > st.high:
            st.high = counter
        elif counter <= st.floor or counter in st.seen:
            return False
        times.append(now)
        st.order.append(counter)
        st.seen.add(counter)
        return True

    @staticmethod
    def _drop_oldest(st: _State) -> None:
        st.times.popleft()
        old = st.order.popleft()
        st.seen.discard(old)
        if old > st.floor:
            st.floor = old

    def _forget(self, st: _State, now: float) -> None:
        limit = now - self.window_s
        times = st.times
        while times and times[0] < limit:
            self._drop_oldest(st)
        while len(times) >= self.max_remembered:
            self._drop_oldest(st)

    def remembered(self, originator: str | None = None) -> int:
        """Counters held in memory (for one originator, or all): bounded by arrivals in the window."""
        if originator is not None:
            st = self._state.get(originator)
            return len(st.seen) if st else 0
        return sum(len(st.seen) for st in self._state.values())
