"""The load generator's host CPU, second by second: how busy it was and how much the hypervisor took (steal).

Why: send lag is the one figure that says whether a run measured the system
or the suite, and on a virtual machine the suite can be late for a reason no
profile of its own code shows. Measured on the project's 2-core VM
(docs/performance.md, bench_pending): the same 120 s run at 1,500 SRV/s had
a send-lag p99 of 16.5 ms in one run and 1.8 s in the next; the second lost
up to 32 % of the box's CPU to steal from its 63rd second on, with nothing
else running. A run that is INVALID for send lag now says whether its host
was starved (report/validity.py), and the live line says so as it happens.

Read from the kernel's CPU counters (``psutil.cpu_times()``: ``/proc/stat`` on
Linux, where ``steal`` exists; elsewhere steal reads as 0). One read costs
microseconds, so each load process samples once a second.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psutil

__all__ = ["STEAL_WARN_PCT", "HostCpu"]

STEAL_WARN_PCT = 5.0
"""Project default: a host that loses 5 % or more of its CPU to steal is named on the live line, and a second
at or above it counts in ``steal_seconds`` (a dedicated host shows 0-1 %)."""


def _split(t: Any) -> tuple[float, float, float]:
    """(total, idle incl. iowait, steal) CPU seconds of all cores (guest time is already inside user time)."""
    steal = float(getattr(t, "steal", 0.0))
    idle = float(t.idle) + float(getattr(t, "iowait", 0.0))
    total = sum(float(getattr(t, f)) for f in t._fields if f not in ("guest", "guest_nice"))
    return total, idle, steal


class HostCpu:
    """Busy and steal shares of the host's CPU per interval, and their run-long summary."""

    def __init__(self, read: Callable[[], Any] = psutil.cpu_times, cores: int | None = None) -> None:
        """``read``: the kernel's CPU counters (psutil's, or recorded ones to replay a host's history)."""
        self._read = read
        self.cores = cores or psutil.cpu_count() or 1
        self._last = _split(read())
        self._window = self._last
        self.samples = 0
        self.busy_sum = self.steal_sum = 0.0
        self.busy_max = self.steal_max = 0.0
        self.steal_seconds = 0.0
        """Seconds of the run in which steal was at or above :data:`STEAL_WARN_PCT`."""

    def _shares(self, a: tuple[float, float, float], b: tuple[float, float, float]) -> tuple[float, float, float]:
        """(busy %, steal %, seconds of one core) between two readings; busy counts steal too (not ours)."""
        total = b[0] - a[0]
        if total <= 0:
            return 0.0, 0.0, 0.0
        busy = 100.0 * (total - (b[1] - a[1])) / total
        steal = 100.0 * (b[2] - a[2]) / total
        return busy, steal, total / self.cores

    def sample(self) -> tuple[float, float]:
        """Take one reading: (busy %, steal %) since the previous one, added to the summary."""
        now = _split(self._read())
        busy, steal, seconds = self._shares(self._last, now)
        self._last = now
        if seconds <= 0:
            return busy, steal
        self.samples += 1
        self.busy_sum += busy
        self.steal_sum += steal
        self.busy_max = max(self.busy_max, busy)
        self.steal_max = max(self.steal_max, steal)
        if steal >= STEAL_WARN_PCT:
            self.steal_seconds += seconds
        return busy, steal

    def window(self) -> tuple[float, float]:
        """(busy %, steal %) since the previous call (the live line's interval), apart from :meth:`sample`."""
        now = _split(self._read())
        busy, steal, _ = self._shares(self._window, now)
        self._window = now
        return busy, steal

    def to_dict(self) -> dict[str, Any]:
        n = max(1, self.samples)
        return {"samples": self.samples, "cores": self.cores,
                "busy_pct_mean": round(self.busy_sum / n, 1), "busy_pct_max": round(self.busy_max, 1),
                "steal_pct_mean": round(self.steal_sum / n, 1), "steal_pct_max": round(self.steal_max, 1),
                "steal_seconds": round(self.steal_seconds, 1), "steal_warn_pct": STEAL_WARN_PCT}
