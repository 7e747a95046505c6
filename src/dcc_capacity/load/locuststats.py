"""One reading of Locust's stats, counted in SRV attempts as summary.json and the report count them.

Why one helper: the live progress line, the web UI's Capacity tab and the
stress judgement all read Locust's stats while the run goes on. Each used to
sum ``stats.entries`` in its own loop, and counted every ``ACK`` entry as a
request, so a critical SRV (CV 4 to serviceT, then the signed CV 5 to
serviceS: two HTTP exchanges, two ``ACK`` entries) counted twice - a soak's
day slot showed "offered 74.2/s" against a 62.3/s target while summary.json
said 62.3/s. The records count it once (``report/srvfold.py``,
``orchestrate/finish.py``); so does this module:

- an SRV attempt starts with every step except a CV 5 (a CV 5 continues the
  attempt its CV 4 started), and a dropped arrival is an attempt too;
- an attempt is achieved by the ok answer of the step that ends it: every
  step except a CV 4 (an ok CV 4 only lets the CV 5 go), less the async
  responses that failed (``TRT`` failures: late, missing, error answers).

Latency percentiles stay per HTTP exchange (each step's own ack and TRT, as
Locust times them): Locust's histograms cannot be re-timed from the CV 4's
due time as the records are, so the end-of-run report is the exact figure.

Locust's stats on a master already cover every worker, so every figure here
is cluster-wide wherever the master reads it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from locust.stats import diff_response_time_dicts

if TYPE_CHECKING:
    from locust.stats import RequestStats

__all__ = ["CV4", "CV5", "StatsView", "Tally", "ends_attempt", "percentile", "read_stats", "starts_attempt",
           "step_label"]

CV4, CV5 = " CV4", " CV5"
"""Step-label suffixes of a critical SRV's two exchanges (the records' ``label`` column has them too)."""

_NAME_SUFFIX = {"ACK": " ack", "TRT": " TRT", "DROPPED": " dropped"}
"""How the load code names a Locust stats entry after its step label (openmodel.py, callbacks.py)."""


def starts_attempt(label: str) -> bool:
    """True when a step with this label begins an SRV attempt (all but a critical SRV's CV 5)."""
    return not label.endswith(CV5)


def ends_attempt(label: str) -> bool:
    """True when a step's ok outcome is an achieved SRV (all but a critical SRV's CV 4)."""
    return not label.endswith(CV4)


def step_label(rtype: str, name: str) -> str:
    """The step label behind a Locust stats entry name, e.g. ``("ACK", "6.15.1 CV5 ack") -> "6.15.1 CV5"``."""
    suffix = _NAME_SUFFIX.get(rtype, "")
    return name[: -len(suffix)] if suffix and name.endswith(suffix) else name


def percentile(hist: Mapping[int, int], q: float) -> float:
    """Nearest-rank ``q`` quantile (0..1) of a Locust response-time histogram ({rounded ms: count}); nan if empty.

    The smallest bucket with at least ``q`` of the samples at or below it. Not
    ``locust.stats.calculate_response_time_percentile``: at an exact boundary
    that one takes the next sample up (5 missing responses of 100 make its p95
    the timeout, while 95 % were answered well within it).
    """
    n = sum(v for v in hist.values() if v > 0)
    if not n:
        return math.nan
    need = q * n
    seen = 0
    for k in sorted(hist):
        seen += max(0, hist[k])
        if seen >= need:
            return float(k)
    return float(max(hist))


@dataclass
class Tally:
    """Cumulative requests, failures and latency histogram ({rounded ms: count}) of some Locust entries."""

    requests: int = 0
    failures: int = 0
    hist: dict[int, int] = field(default_factory=dict)

    def add(self, requests: int, failures: int, hist: Mapping[int, int]) -> None:
        self.requests += requests
        self.failures += failures
        for k, v in hist.items():
            self.hist[k] = self.hist.get(k, 0) + v

    def since(self, earlier: Tally | None) -> Tally:
        """What happened between ``earlier`` and this (both cumulative): a window's or a step's own figures."""
        if earlier is None:
            return Tally(self.requests, self.failures, dict(self.hist))
        return Tally(self.requests - earlier.requests, self.failures - earlier.failures,
                     diff_response_time_dicts(self.hist, earlier.hist))

    def percentile(self, q: float) -> float:
        return percentile(self.hist, q)

    @property
    def max(self) -> float:
        return float(max((k for k, v in self.hist.items() if v > 0), default=math.nan))

    @property
    def mean(self) -> float:
        n = sum(self.hist.values())
        return sum(k * v for k, v in self.hist.items()) / n if n else math.nan

    def stat(self, stat: str) -> float:
        """``"p95"``, ``"max"`` or ``"mean"``, as the NFR catalogue names them."""
        if stat == "max":
            return self.max
        if stat == "mean":
            return self.mean
        return self.percentile(float(stat[1:]) / 100)


@dataclass
class StatsView:
    """Locust's stats at one moment: per request type, and in SRV attempts (see the module docstring)."""

    types: dict[str, Tally] = field(default_factory=dict)
    """Per request type (ACK, TRT, DROPPED, ALERT, CALLBACK): every entry of it, per HTTP exchange."""
    attempts: Tally = field(default_factory=Tally)
    """SRV attempts offered (sent or dropped), their failures (any step's ack, a dropped arrival) and ack histogram."""
    achieved: int = 0
    """SRV attempts whose ending step was acknowledged ok, less the async responses that failed."""

    def n(self, rtype: str) -> int:
        t = self.types.get(rtype)
        return t.requests if t else 0

    def f(self, rtype: str) -> int:
        t = self.types.get(rtype)
        return t.failures if t else 0

    def tally(self, rtype: str) -> Tally:
        return self.types.get(rtype) or Tally()

    @property
    def offered(self) -> int:
        """SRV attempts offered so far: summary.json's ``requests`` once the run is over."""
        return self.attempts.requests

    @property
    def failed(self) -> int:
        """SRV attempts that failed so far: a failed step ack, a failed async response or a dropped arrival."""
        return self.attempts.failures + self.f("TRT")


def read_stats(stats: RequestStats | None, types: Iterable[str] | None = None) -> StatsView:
    """Sum Locust's entries (``types``: only those request types; default all) into one :class:`StatsView`."""
    view = StatsView()
    if stats is None:
        return view
    wanted = set(types) if types is not None else None
    ok_ending = 0
    for (name, rtype), e in list(stats.entries.items()):
        if wanted is not None and rtype not in wanted:
            continue
        view.types.setdefault(rtype, Tally()).add(e.num_requests, e.num_failures, e.response_times)
        label = step_label(rtype, name)
        if rtype == "ACK":
            view.attempts.add(e.num_requests if starts_attempt(label) else 0, e.num_failures, e.response_times)
            if ends_attempt(label):
                ok_ending += e.num_requests - e.num_failures
        elif rtype == "DROPPED":
            view.attempts.add(e.num_requests, e.num_requests, {})
    view.achieved = max(0, ok_ending - view.f("TRT"))
    return view
