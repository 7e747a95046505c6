"""Counters and gauges for ``/metrics``: JSON for the report, Prometheus text for anything else.

The report plots the SUT's CPU, memory, queue depth and refusals beside the
client-side latencies, so the numbers are cheap to keep (plain integer
increments on the event loop) and cheap to read (one psutil call a scrape).
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import psutil

__all__ = ["COUNTERS", "Metrics"]

COUNTERS = ("received", "acked", "responded", "completed", "rejected", "throttled", "queue_full",
            "async_errors", "callbacks_ok", "callbacks_failed", "alerts", "tampered")
"""Per-SRV-class counters (``critical``, ``device``, ``non_device``, ``unknown``, ``alert``)."""


class Metrics:
    def __init__(self) -> None:
        self.started = time.time()
        self.by_class: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTERS, 0))
        self.by_code: dict[str, int] = defaultdict(int)
        self._proc = psutil.Process()
        self._proc.cpu_percent(None)
        self.gauges: dict[str, Any] = {}

    def inc(self, srv_class: str, name: str, n: int = 1) -> None:
        self.by_class[srv_class][name] += n

    def code(self, code: str | None) -> None:
        self.by_code[code or "none"] += 1

    def snapshot(self, **gauges: Any) -> dict[str, Any]:
        mem = self._proc.memory_info()
        totals = dict.fromkeys(COUNTERS, 0)
        for counts in self.by_class.values():
            for k, v in counts.items():
                totals[k] += v
        return {
            "time": time.time(),
            "uptime_s": round(time.time() - self.started, 3),
            "cpu_percent": self._proc.cpu_percent(None),
            "cpu_seconds": round(sum(self._proc.cpu_times()[:2]), 3),
            "rss_bytes": mem.rss,
            **self.gauges,
            **gauges,
            "totals": totals,
            "by_class": {k: dict(v) for k, v in self.by_class.items()},
            "by_code": dict(self.by_code),
        }

    @staticmethod
    def prometheus(snap: dict[str, Any]) -> str:
        """Prometheus text exposition (version 0.0.4) of a :meth:`snapshot`."""
        lines: list[str] = []

        def gauge(name: str, value: Any, help_text: str, kind: str = "gauge") -> None:
            lines.append(f"# HELP dcc_emulator_{name} {help_text}")
            lines.append(f"# TYPE dcc_emulator_{name} {kind}")
            lines.append(f"dcc_emulator_{name} {float(value)}")

        gauge("cpu_percent", snap["cpu_percent"], "Process CPU since the previous scrape, percent of one core.")
        gauge("cpu_seconds_total", snap["cpu_seconds"], "Process CPU time (user+system).", "counter")
        gauge("rss_bytes", snap["rss_bytes"], "Resident set size.")
        for key in ("queue_depth", "in_flight", "workers_busy", "callback_backlog", "outage"):
            if key in snap:
                gauge(key, snap[key], key.replace("_", " ").capitalize() + ".")
        for name in COUNTERS:
            lines.append(f"# HELP dcc_emulator_{name}_total Requests {name.replace('_', ' ')}, by SRV class.")
            lines.append(f"# TYPE dcc_emulator_{name}_total counter")
            for cls, counts in sorted(snap["by_class"].items()):
                lines.append(f'dcc_emulator_{name}_total{{srv_class="{cls}"}} {counts[name]}')
        lines.append("# HELP dcc_emulator_responses_total Responses sent, by DUIS response code.")
        lines.append("# TYPE dcc_emulator_responses_total counter")
        for code, n in sorted(snap["by_code"].items()):
            lines.append(f'dcc_emulator_responses_total{{code="{code}"}} {n}')
        return "\n".join(lines) + "\n"
