"""Send lag (actual send - planned send) as a small mergeable histogram, for the live line and the web UI.

Why its own histogram: the generator's own lateness is the one figure that
says whether a run's latencies belong to the system or to the suite, so it
must be visible while the run goes, in every process, merged on the master.
Locust's request stats would count it as traffic (totals, RPS); instead each
load process keeps this dict of counts (one increment per request) and ships
it in Locust's own worker report (``report_to_master`` / ``worker_report``).
Resolution is 0.1 ms below 100 ms (where the 50 ms limit lives) and three
significant digits above; the exact figures come from the records at the end
(:mod:`dcc_capacity.report.sendlag`).
"""

from __future__ import annotations

from typing import Any

__all__ = ["LagHistogram"]


def _bucket(ms: float) -> int:
    tenths = int(ms * 10) if ms > 0 else 0
    if tenths < 1000:
        return tenths
    mag = 10 ** (len(str(tenths)) - 3)
    return tenths // mag * mag


class LagHistogram:
    """Counts of send lags in 0.1 ms buckets (coarser above 100 ms); exact count and max."""

    __slots__ = ("counts", "n", "max_ms")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.n = 0
        self.max_ms = 0.0

    def add(self, ms: float) -> None:
        k = _bucket(ms)
        c = self.counts
        c[k] = c.get(k, 0) + 1
        self.n += 1
        if ms > self.max_ms:
            self.max_ms = ms

    def quantile(self, q: float) -> float:
        """The ``q`` quantile (0..1) in ms, at the bucket's lower edge; NaN when nothing was sent."""
        if not self.n:
            return float("nan")
        need, seen = q * self.n, 0
        for k in sorted(self.counts):
            seen += self.counts[k]
            if seen >= need:
                return k / 10
        return self.max_ms

    def to_dict(self) -> dict[str, Any]:
        return {"counts": {str(k): v for k, v in self.counts.items()}, "n": self.n, "max_ms": self.max_ms}

    def merge(self, data: dict[str, Any]) -> None:
        """Add another process's :meth:`to_dict` (a worker report)."""
        for k, v in (data.get("counts") or {}).items():
            key = int(k)
            self.counts[key] = self.counts.get(key, 0) + int(v)
        self.n += int(data.get("n") or 0)
        self.max_ms = max(self.max_ms, float(data.get("max_ms") or 0.0))

    def clear(self) -> None:
        self.counts.clear()
        self.n = 0
        self.max_ms = 0.0
