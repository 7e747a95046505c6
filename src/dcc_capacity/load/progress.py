"""One progress line every ~10 s for headless runs: time, offered vs achieved rate, NFR status so far.

CI logs must stay readable for an hour-long soak, so this prints one short
line per interval (not Locust's full stats table). It reads Locust's own
stats, which on a master are the workers' aggregated numbers, so the line is
right in distributed runs too; it counts SRV attempts as summary.json does
(:mod:`dcc_capacity.load.locuststats`: a critical SRV's CV 4 and CV 5 are one).
The final verdict comes from the records
(:func:`dcc_capacity.report.build_report`); this line is the early warning. NFRs that
need a per-SRV or per-class split are judged only at the end ("at end").

Example::

    [dcc-capacity] 00:01:20/00:10:00 (08:40 left) | target 120.0/s offered 119.8/s achieved 118.9/s
    (9,584 SRV attempts) | dropped 0 | send lag p99 1.3 ms | awaiting 4,812 responses, 12 journeys parked |
    NFR 4 ok, 1 FAIL (NFR-ERR), 1 at end | SUT cpu 43% (dsp-app-1) mem 61% (dsp-db) GAP dsp-app-2

The last part (the system's resources per host, and hosts whose last sample
failed) comes from the run's resource collector through the run folder. When
the generator's own host loses 5 % or more of its CPU to the hypervisor over
the interval, the line says ``host CPU steal 28%`` before it: on a virtual
machine that, not the suite, is what makes send lag climb (load/hostcpu.py).
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

import gevent

from dcc_capacity.load.hostcpu import STEAL_WARN_PCT, HostCpu
from dcc_capacity.load.locuststats import StatsView, read_stats
from dcc_capacity.load.runcontext import context_for
from dcc_capacity.model.nfr import Nfr

if TYPE_CHECKING:
    from locust.env import Environment
    from locust.stats import RequestStats

__all__ = ["NO_CALLBACK_HINT_S", "Progress", "judge_live", "snapshot"]

NO_CALLBACK_HINT_S = 5.0
"""Seconds with requests awaited and not one async message received before the line says so."""

log = logging.getLogger(__name__)


def snapshot(stats: RequestStats) -> StatsView:
    """Locust's stats in SRV attempts, as summary.json counts them (:mod:`dcc_capacity.load.locuststats`)."""
    return read_stats(stats)


def judge_live(nfrs: Sequence[Nfr], s: StatsView) -> tuple[list[str], list[str], list[str]]:
    """(ok ids, failing ids, ids judged only at the end) from the live stats.

    The same :class:`~dcc_capacity.model.nfr.Nfr` objects as the final verdict, read
    from Locust's stats: whole-run ack/TRT percentiles (Locust's histogram,
    rounded like Locust's own table), ``failure_rate`` and ``achieved_ratio``.
    Scoped, ``per`` group and outcome-specific NFRs need the records: "at end".
    """
    ok: list[str] = []
    bad: list[str] = []
    later: list[str] = []
    for n in nfrs:
        if n.scope != ("all", None) or n.per:
            later.append(n.id)
            continue
        if n.metric in ("ack_ms", "trt_ms"):
            measured = s.tally("ACK" if n.metric == "ack_ms" else "TRT").stat(n.stat or "p95")
        elif n.metric not in ("failure_rate", "achieved_ratio") or s.offered == 0:
            measured = float("nan")
        elif n.metric == "failure_rate":
            measured = s.failed / s.offered
        else:
            measured = s.achieved / s.offered
        if math.isnan(measured):
            later.append(n.id)
        else:
            (ok if n.passes(measured) else bad).append(n.id)
    return ok, bad, later


def _hms(sec: float) -> str:
    sec = max(0, int(sec))
    return f"{sec // 3600:02d}:{sec % 3600 // 60:02d}:{sec % 60:02d}"


class Progress:
    """Prints :meth:`line` every ``interval`` s between test_start and test_stop (call :meth:`install`)."""

    def __init__(self, environment: Environment, nfrs: Sequence[Nfr] = (), *, interval: float = 10.0,
                 duration_s: float | None = None, stream: TextIO | None = None) -> None:
        self.environment = environment
        self.nfrs = list(nfrs)
        self.interval = interval
        self.duration_s = duration_s
        self.stream = stream or sys.stderr
        self._t0: float | None = None
        self._prev: tuple[float, int, int] | None = None
        self._greenlet: gevent.Greenlet | None = None
        self._watcher: gevent.Greenlet | None = None
        self._host: HostCpu | None = None

    def install(self) -> Progress:
        self.environment.events.test_start.add_listener(self._start)
        self.environment.events.test_stop.add_listener(self._stop)
        return self

    def _start(self, **_: Any) -> None:
        self._t0 = time.time()
        self._prev = (self._t0, 0, 0)
        self._host = HostCpu()
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._loop)
        if self._watcher is None:
            self._watcher = gevent.spawn(self._watch_callbacks)

    def _stop(self, **_: Any) -> None:
        if self._greenlet is not None:  # one last line once the books are closed: its count is summary.json's
            self._print()
        for g in (self._greenlet, self._watcher):
            if g is not None:
                g.kill(block=False)
        self._greenlet = self._watcher = None

    def _watch_callbacks(self) -> None:
        """Say once, within seconds and not at the next progress line, when a SUT acks but never calls back."""
        from dcc_capacity.load.runcontext import context_for

        while True:
            gevent.sleep(1.0)
            g = context_for(self.environment).live()
            if g["received"]:
                return
            elapsed = time.time() - (self._t0 or time.time())
            hint = self._no_callback_hint(g, elapsed)
            if hint:
                print(f"[dcc-capacity] {_hms(elapsed)} | awaiting {g['awaited']:,} responses{hint}", file=self.stream,
                      flush=True)
                return

    def _loop(self) -> None:
        while True:
            gevent.sleep(self.interval)
            self._print()

    def _print(self) -> None:
        try:
            print(self.line(), file=self.stream, flush=True)
        except Exception:  # a progress line must never take the run down
            log.exception("progress line failed")

    def _duration(self) -> float | None:
        if self.duration_s:
            return self.duration_s
        shape = self.environment.shape_class
        d = getattr(shape, "duration_s", None)
        if d and math.isfinite(d):
            return float(d)
        rt = getattr(self.environment.parsed_options, "run_time", None)
        return float(rt) if rt else None

    def line(self, now: float | None = None) -> str:
        """The progress line for ``now``: rates are over the last interval, NFRs over the run so far."""
        now = time.time() if now is None else now
        t0 = self._t0 if self._t0 is not None else now
        elapsed = now - t0
        s = snapshot(self.environment.stats)
        pt, po, pa = self._prev or (t0, 0, 0)
        dt = max(1e-9, now - pt)
        offered, achieved = (s.offered - po) / dt, (s.achieved - pa) / dt
        self._prev = (now, s.offered, s.achieved)
        dur = self._duration()
        when = f"{_hms(elapsed)}/{_hms(dur)} ({_hms(dur - elapsed)} left)" if dur else _hms(elapsed)
        shape = self.environment.shape_class
        total_rate = getattr(shape, "total_rate", None)
        target = f"target {total_rate(elapsed):.1f}/s " if total_rate else ""
        ok, bad, later = judge_live(self.nfrs, s)
        nfr = f"NFR {len(ok)} ok, {len(bad)} FAIL" + (f" ({', '.join(bad)})" if bad else "")
        if later:
            nfr += f", {len(later)} at end"
        dropped = s.n("DROPPED")
        return (f"[dcc-capacity] {when} | {target}offered {offered:.1f}/s achieved {achieved:.1f}/s "
                f"({s.offered:,} SRV attempts) | "
                f"dropped {dropped}{' (run INVALID)' if dropped else ''} | {self._generator(elapsed)}{self._steal()} | "
                f"{nfr}{self._resources()}")

    def _steal(self) -> str:
        """This host's CPU taken by the hypervisor over the interval, when enough to make the generator late."""
        if self._host is None:
            return ""
        _, steal = self._host.window()
        if steal < STEAL_WARN_PCT:
            return ""
        return f" | host CPU steal {steal:.0f}% (the hypervisor took it: send lag may be the host's)"

    def _generator(self, elapsed: float) -> str:
        """Send lag and what is outstanding: whether the generator keeps up, and whether the SUT answers at all."""
        g = context_for(self.environment).live()
        p99 = g["lag"].quantile(0.99)
        lag = f"send lag p99 {p99:.1f} ms" if p99 == p99 else "send lag -"
        text = f"{lag} | awaiting {g['awaited']:,} responses, {g['parked']:,} journeys parked"
        return text + self._no_callback_hint(g, elapsed)

    def _no_callback_hint(self, g: dict[str, Any], elapsed: float) -> str:
        """The commonest first-run mistake against a real system: it does not know where to call back."""
        if not g["awaited"] or g["received"] or elapsed < NO_CALLBACK_HINT_S:
            return ""
        from dcc_capacity.load.runcontext import context_for

        listener = context_for(self.environment).callbacks
        where = f" {listener.url}" if listener is not None else ""
        return (f" | NO async response received yet: is the SUT configured to call back this run's listener{where}? "
                "(set the SUT's callback URL to it; the listener's address: --callback-host/--callback-port, or "
                "callback.public_url / callback.listen_port in the run config)")

    def _resources(self) -> str:
        """The SUT's resources from the run's collector (telemetry/collector.py, in the parent process), if any."""
        from dcc_capacity.telemetry import live_summary, read_live

        text = live_summary(read_live(getattr(self.environment.parsed_options, "run_dir", None)))
        return f" | {text}" if text else ""
