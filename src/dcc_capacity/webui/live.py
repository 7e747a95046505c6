"""Live figures for the Capacity tab: offered vs achieved per class, windowed ack/TRT percentiles, error codes.

Why a sampler of its own: Locust's stats are cumulative (or a 10 s cache of
totals), but a stress operator needs "what is the SUT doing *now*, at this
step". So once a second :class:`LiveStats` snapshots cumulative counters and
answers rates and percentiles over the last ``window_s`` seconds by
difference.

Where the counters come from:

- per user class offered/achieved: the open-model run context
  (:mod:`dcc_capacity.load.runcontext`) counts them in each process that runs
  users. Workers add their cumulative counts to Locust's own worker report
  (``report_to_master``, key ``dcc_capacity``); the master sums the latest
  report of each worker. Locally the process's own context is read.
- ack and TRT latencies and failures: Locust's stats (request types ``ACK``
  and ``TRT``), which on a master already cover every worker; ``srv`` is the
  SRV attempts and their failures, counted as summary.json counts them
  (:mod:`dcc_capacity.load.locuststats`: a critical SRV's CV 4 and CV 5 are one).
"""

from __future__ import annotations

import math
import re
import time
from collections import deque
from typing import Any

from locust.runners import MasterRunner, WorkerRunner

from dcc_capacity.load.locuststats import Tally, read_stats
from dcc_capacity.load.runcontext import context_for

__all__ = ["LiveStats", "REPORT_KEY", "error_code"]

REPORT_KEY = "dcc_capacity"
_CODE = re.compile(r"\b(HTTP \d{3}|[EIWN]\d{1,4}(?:\.\d+)?)\b")
_STATS = ("p50", "p95", "p99")


def _none(x: float) -> float | None:
    """JSON has no NaN: an empty window's percentile is None."""
    return None if math.isnan(x) else x


def error_code(message: str) -> str:
    """The DUIS response code or HTTP status named in a failure message, else the message's first words."""
    m = _CODE.search(message or "")
    if m:
        return m.group(1)
    text = (message or "unknown").strip().split("(")[0]
    return text[:40] or "unknown"


class LiveStats:
    """Samples counters once a second (call :meth:`sample`); windowed figures from :meth:`snapshot`."""

    def __init__(self, environment: Any, window_s: float = 5.0, throttle_codes: tuple[str, ...] = ("HTTP 429",)):
        self.environment = environment
        self.window_s = window_s
        self.throttle_codes = throttle_codes
        self.worker_counts: dict[str, deque[tuple[float, dict[str, dict[str, int]]]]] = {}
        """Per worker: its last reports (arrival time, cumulative counts); Locust sends one every 3 s."""
        self.history: deque[tuple[float, dict[str, Any]]] = deque(maxlen=120)
        ev = environment.events
        ev.report_to_master.add_listener(self._on_report_to_master)
        ev.worker_report.add_listener(self._on_worker_report)
        ev.test_start.add_listener(self._on_test_start)

    # -- distributed counters -------------------------------------------------------
    def _on_report_to_master(self, client_id: str, data: dict[str, Any], **_: Any) -> None:
        ctx = context_for(self.environment)
        data[REPORT_KEY] = {"offered": dict(ctx.offered), "achieved": dict(ctx.achieved),
                            "dropped": dict(ctx.dropped)}

    def _on_worker_report(self, client_id: str, data: dict[str, Any], **_: Any) -> None:
        counts = data.get(REPORT_KEY)
        if isinstance(counts, dict):
            self.worker_counts.setdefault(client_id, deque(maxlen=10)).append((time.time(), counts))

    def _on_test_start(self, **_: Any) -> None:
        self.worker_counts.clear()
        self.history.clear()

    def class_counts(self) -> dict[str, dict[str, int]]:
        """Cumulative {offered, achieved, dropped} -> {class: n} for the whole cluster."""
        runner = self.environment.runner
        out: dict[str, dict[str, int]] = {"offered": {}, "achieved": {}, "dropped": {}}
        if isinstance(runner, MasterRunner):
            sources = [reports[-1][1] for reports in list(self.worker_counts.values()) if reports]
        elif isinstance(runner, WorkerRunner):
            sources = []
        else:
            ctx = context_for(self.environment)
            sources = [{"offered": dict(ctx.offered), "achieved": dict(ctx.achieved), "dropped": dict(ctx.dropped)}]
        for src in sources:
            for key in out:
                for cls, n in dict(src.get(key, {})).items():
                    out[key][cls] = out[key].get(cls, 0) + int(n)
        return out

    # -- sampling ------------------------------------------------------------------------
    def _locust_counts(self) -> dict[str, Any]:
        stats = self.environment.runner.stats if self.environment.runner else None
        view = read_stats(stats)
        errors: dict[str, int] = {}
        if stats is not None:
            for err in list(stats.errors.values()):
                code = error_code(str(err.error))
                errors[code] = errors.get(code, 0) + int(err.occurrences)
        attempts = Tally(view.offered, view.failed)  # SRV attempts, as summary.json counts them
        return {"types": view.types, "attempts": attempts, "errors": errors}

    def sample(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        if self.history and now - self.history[-1][0] < 0.5:
            return
        self.history.append((now, {"classes": self.class_counts(), **self._locust_counts()}))

    def _worker_rates(self) -> dict[str, dict[str, float]]:
        """Master: per-class rates from each worker's own reports, timed by when they arrived, summed.

        Worker reports come every 3 s, so the window is at least two report
        gaps long; rates use the reports' own times, not the sampling clock.
        """
        out: dict[str, dict[str, float]] = {}
        span_wanted = max(self.window_s, 6.5)
        for reports in list(self.worker_counts.values()):
            if len(reports) < 2:
                continue
            t1, last = reports[-1]
            t0, first = next(((t, c) for t, c in reports if t1 - t <= span_wanted), reports[-2])
            if t1 - t0 <= 0:
                t0, first = reports[-2]
            for key in ("offered", "achieved", "dropped"):
                for cls, n in dict(last.get(key, {})).items():
                    rate = (int(n) - int(dict(first.get(key, {})).get(cls, 0))) / (t1 - t0)
                    out.setdefault(cls, {})[f"{key}_rate"] = out.get(cls, {}).get(f"{key}_rate", 0.0) + rate
        return out

    def _window(self) -> tuple[float, dict[str, Any], dict[str, Any]] | None:
        if len(self.history) < 2:
            return None
        t1, last = self.history[-1]
        first_t, first = self.history[0]
        for t, snap in self.history:
            if t1 - t <= self.window_s:
                first_t, first = t, snap
                break
        if t1 - first_t <= 0:
            first_t, first = self.history[-2]
        return t1 - first_t, first, last

    def snapshot(self) -> dict[str, Any]:
        """Windowed rates/percentiles plus cumulative error counts; JSON-able."""
        self.sample()
        w = self._window()
        last: dict[str, Any] = (self.history[-1][1] if self.history
                                else {"classes": self.class_counts(), "types": {}, "errors": {}})
        classes: dict[str, dict[str, Any]] = {}
        names = set()
        for key in ("offered", "achieved", "dropped"):
            names |= set(last["classes"].get(key, {}))
        for cls in sorted(names):
            row: dict[str, Any] = {key: last["classes"][key].get(cls, 0) for key in ("offered", "achieved", "dropped")}
            if w is not None:
                span, a, b = w
                for key in ("offered", "achieved", "dropped"):
                    row[f"{key}_rate"] = (b["classes"][key].get(cls, 0) - a["classes"][key].get(cls, 0)) / span
            classes[cls] = row
        if isinstance(self.environment.runner, MasterRunner):
            for cls, rates in self._worker_rates().items():
                classes.setdefault(cls, {}).update(rates)
        latency: dict[str, dict[str, Any]] = {}
        for rtype in ("ACK", "TRT"):
            cur = last["types"].get(rtype)
            if cur is None:
                continue
            t = cur.since(w[1]["types"].get(rtype) if w is not None else None)
            req, fail = t.requests, t.failures
            entry: dict[str, Any] = {s: (_none(t.percentile(float(s[1:]) / 100)) if req > 0 else None)
                                     for s in _STATS}
            entry["max"] = _none(t.max) if req > 0 else None
            entry.update(requests=req, failures=fail, error_rate=(fail / req if req else None),
                         rate=(req / w[0] if w is not None else None))
            latency[rtype] = entry
        cur_srv = last.get("attempts")
        srv: dict[str, Any] = {}
        if cur_srv is not None:
            t = cur_srv.since(w[1].get("attempts") if w is not None else None)
            srv = {"requests": t.requests, "failures": t.failures,
                   "error_rate": t.failures / t.requests if t.requests else None,
                   "rate": t.requests / w[0] if w is not None else None}
        errors = dict(sorted(last["errors"].items(), key=lambda kv: -kv[1]))
        throttled = sum(n for code, n in errors.items() if code in self.throttle_codes)
        gen = context_for(self.environment).live()  # send lag and what is outstanding, merged over the workers
        lag = gen["lag"]
        generator = {"send_lag_p99_ms": lag.quantile(0.99) if lag.n else None,
                     "send_lag_max_ms": lag.max_ms if lag.n else None, "awaited": gen["awaited"],
                     "parked": gen["parked"], "in_flight": gen["in_flight"],
                     "dropped": sum(last["classes"].get("dropped", {}).values())}
        return {"window_s": round(w[0], 2) if w is not None else None, "classes": classes, "latency": latency,
                "srv": srv,
                "errors": errors, "throttled": throttled, "failed": sum(errors.values()) - throttled,
                "generator": generator}
