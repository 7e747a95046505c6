"""The sources one collector samples: exposition endpoints, Prometheus servers, the embedded emulator.

Each source's :meth:`sample` returns :class:`Row` objects, one per host, and
never raises: a failed fetch is a *gap* row (``up = 0`` with the reason and
no figures), because a missing sample must read as "not measured", never as
0 % CPU, and a broken exporter must never stop the load. Every fetch is
bounded by the configured timeout.
"""

from __future__ import annotations

import base64
import json
import math
import os
import ssl
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dcc_capacity.telemetry.config import PrometheusSource, ScrapeTarget
from dcc_capacity.telemetry.expo import NODE_SAMPLES, Scrape, derive, parse

__all__ = ["EmulatorSource", "PromApiSource", "Row", "ScrapeSource", "Source", "default_queries"]


@dataclass
class Row:
    """One host's figures at one sample time (a gap: ``up`` False, ``error`` set, ``values`` empty)."""

    ts: float
    host: str
    source: str
    up: bool
    values: dict[str, float] = field(default_factory=dict)
    error: str = ""


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())[:200]


class Source:
    """Base: a name for the report, and a bounded HTTP GET honouring the source's TLS and credentials."""

    name = "source"

    def __init__(self, timeout: float, http: Any = None) -> None:
        self.timeout = timeout
        self._headers: dict[str, str] = {}
        self._context: ssl.SSLContext | None = None
        if http is not None:
            if http.bearer_token_env:
                self._headers["Authorization"] = f"Bearer {os.environ.get(http.bearer_token_env, '')}"
            elif http.username:
                pw = os.environ.get(http.password_env, "") if http.password_env else ""
                raw = base64.b64encode(f"{http.username}:{pw}".encode()).decode()
                self._headers["Authorization"] = f"Basic {raw}"
            if http.url.startswith("https://"):
                ctx = ssl.create_default_context(cafile=http.ca_bundle)
                if not http.verify:
                    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
                self._context = ctx

    def _get(self, url: str, accept: str = "text/plain") -> bytes:
        req = urllib.request.Request(url, headers={"Accept": accept, **self._headers})  # noqa: S310 - configured URL
        with urllib.request.urlopen(req, timeout=self.timeout, context=self._context) as resp:  # noqa: S310
            return resp.read(64 << 20)

    def sample(self, now: float) -> list[Row]:  # pragma: no cover - interface
        raise NotImplementedError


class ScrapeSource(Source):
    """A node_exporter (``kind = "node"``) or an application's ``/metrics`` (``kind = "process"``), scraped directly."""

    def __init__(self, target: ScrapeTarget, timeout: float) -> None:
        super().__init__(timeout, target)
        self.t = target
        self.name = f"scrape {target.kind} {target.url}"
        self._prev: Scrape | None = None
        self._wanted = NODE_SAMPLES if target.kind == "node" else (target.cpu_seconds_metric, target.rss_metric)

    def sample(self, now: float) -> list[Row]:
        try:
            body = self._get(self.t.url, "text/plain;version=0.0.4")
            cur = parse(body.decode("utf-8", "replace"), time.time(), self._wanted)
        except Exception as exc:  # noqa: BLE001 - any failure is a gap, the load goes on
            self._prev = None  # no rate across a gap: the next sample starts afresh
            return [Row(now, self.t.host, self.name, False, error=_short(exc))]
        if not cur.samples:
            self._prev = None
            return [Row(now, self.t.host, self.name, False,
                        error=f"none of the expected {self.t.kind} metrics in the exposition")]
        values = derive(self.t.kind, self._prev, cur, disk_exclude=self.t.disk_exclude, net_exclude=self.t.net_exclude,
                        cpu_seconds_metric=self.t.cpu_seconds_metric, rss_metric=self.t.rss_metric)
        self._prev = cur
        return [Row(now, self.t.host, self.name, True, values)]


def default_queries(src: PrometheusSource) -> dict[str, str]:
    """PromQL per figure for node_exporter metrics, with the source's selector, rate window and host label."""
    h, w = src.host_label, src.rate_window

    def sel(*matchers: str) -> str:
        parts = [m for m in (*matchers, src.selector) if m]
        return "{" + ",".join(parts) + "}" if parts else ""

    idle = 'mode="idle"'
    disk = f'device!~"{src.disk_exclude}"'
    net = f'device!~"{src.net_exclude}"'
    q = {
        "cpu_percent": f"100 * (1 - avg by ({h}) (rate(node_cpu_seconds_total{sel(idle)}[{w}])))",
        "mem_percent": f"100 * (1 - node_memory_MemAvailable_bytes{sel()} / node_memory_MemTotal_bytes{sel()})",
        "mem_used_bytes": f"node_memory_MemTotal_bytes{sel()} - node_memory_MemAvailable_bytes{sel()}",
        "disk_read_bytes_s": f"sum by ({h}) (rate(node_disk_read_bytes_total{sel(disk)}[{w}]))",
        "disk_write_bytes_s": f"sum by ({h}) (rate(node_disk_written_bytes_total{sel(disk)}[{w}]))",
        "disk_busy_percent": f"100 * max by ({h}) (rate(node_disk_io_time_seconds_total{sel(disk)}[{w}]))",
        "net_rx_bytes_s": f"sum by ({h}) (rate(node_network_receive_bytes_total{sel(net)}[{w}]))",
        "net_tx_bytes_s": f"sum by ({h}) (rate(node_network_transmit_bytes_total{sel(net)}[{w}]))",
    }
    return {**q, **src.queries}


class PromApiSource(Source):
    """A Prometheus server: every interval one instant query per figure (``/api/v1/query``), one series per host.

    A host seen before and absent from every answer now (its target is down:
    Prometheus marks its series stale) is a gap; so is every known host when
    the server itself cannot be reached.
    """

    def __init__(self, src: PrometheusSource, timeout: float) -> None:
        super().__init__(timeout, src)
        self.src = src
        self.name = f"prometheus {src.url}"
        self.queries = default_queries(src)
        self.up_query = "up" + ("{" + src.selector + "}" if src.selector else "")
        """Prometheus's own verdict on each scrape target: 0 while it is down, even where rate() still answers."""
        self.known: set[str] = set()

    def _host(self, labels: dict[str, str]) -> str:
        raw = labels.get(self.src.host_label, "")
        return self.src.hosts.get(raw, raw) or "unlabelled"

    def query(self, promql: str, at: float) -> list[tuple[str, float]]:
        """(host, value) of an instant vector; raises on an HTTP or Prometheus error."""
        qs = urllib.parse.urlencode({"query": promql, "time": f"{at:.3f}"})
        doc = json.loads(self._get(f"{self.src.url.rstrip('/')}/api/v1/query?{qs}", "application/json"))
        if doc.get("status") != "success":
            raise RuntimeError(f"Prometheus: {doc.get('errorType', '')} {doc.get('error', '')}".strip())
        data = doc.get("data") or {}
        if data.get("resultType") == "scalar":
            return [("unlabelled", float(data["result"][1]))]
        out = []
        for series in data.get("result") or []:
            v = float(series["value"][1])
            if math.isfinite(v):
                out.append((self._host(series.get("metric") or {}), v))
        return out

    def query_range(self, promql: str, start: float, end: float, step: float) -> list[tuple[str, float, float]]:
        """(host, ts, value) of a range query; raises on an HTTP or Prometheus error."""
        qs = urllib.parse.urlencode({"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}",
                                     "step": f"{step:g}"})  # float seconds
        doc = json.loads(self._get(f"{self.src.url.rstrip('/')}/api/v1/query_range?{qs}", "application/json"))
        if doc.get("status") != "success":
            raise RuntimeError(f"Prometheus: {doc.get('errorType', '')} {doc.get('error', '')}".strip())
        out = []
        for series in (doc.get("data") or {}).get("result") or []:
            host = self._host(series.get("metric") or {})
            for ts, v in series.get("values") or []:
                if math.isfinite(float(v)):
                    out.append((host, float(ts), float(v)))
        return out

    def window(self, start: float, end: float, step: float) -> list[Row]:
        """The run's whole window from Prometheus's own store (``/api/v1/query_range``), one row per host and step.

        Prometheus kept sampling while we polled, so this record has no holes
        of ours; a step where a host has no value at all (its target was down)
        is a gap. Raises when the server cannot answer (the live rows stay).
        """
        start = round(start, 3)  # what Prometheus receives, so its step timestamps are exactly ours
        grid = [round(start + i * step, 3) for i in range(int((end - start) / step) + 1)]
        cells: dict[tuple[str, float], dict[str, float]] = {}
        chunk = 10_000  # Prometheus answers at most 11,000 points per series and query
        for metric, promql in self.queries.items():
            for i in range(0, len(grid), chunk):
                part = grid[i:i + chunk]
                for host, ts, v in self.query_range(promql, part[0], part[-1], step):
                    cells.setdefault((host, round(ts, 3)), {})[metric] = v
        down = {(h, round(ts, 3)) for i in range(0, len(grid), chunk)
                for h, ts, v in self.query_range(self.up_query, grid[i], grid[min(i + chunk, len(grid)) - 1], step)
                if v == 0}
        hosts = sorted({h for h, _ in cells} | self.known)
        rows = []
        for t in grid:
            for h in hosts:
                vals = cells.get((h, t))
                if (h, t) in down:
                    rows.append(Row(t, h, self.name, False, error="Prometheus: up == 0 (its scrape of the target "
                                                                  "failed)"))
                elif vals:
                    rows.append(Row(t, h, self.name, True, vals))
                else:
                    rows.append(Row(t, h, self.name, False, error="no sample in Prometheus at this step"))
        return rows

    def sample(self, now: float) -> list[Row]:
        rows: dict[str, Row] = {}
        try:
            for metric, promql in self.queries.items():
                for host, v in self.query(promql, now):
                    rows.setdefault(host, Row(now, host, self.name, True)).values[metric] = v
        except Exception as exc:  # noqa: BLE001 - the server being down is a gap for every host it serves
            hosts = sorted(self.known) or [f"prometheus:{urllib.parse.urlsplit(self.src.url).netloc}"]
            return [Row(now, h, self.name, False, error=_short(exc)) for h in hosts]
        try:
            down = {h for h, v in self.query(self.up_query, now) if v == 0}
        except Exception:  # noqa: BLE001 - the figures came back; only the up check did not
            down = set()
        for host in sorted(down & (self.known | set(rows))):
            rows[host] = Row(now, host, self.name, False, error="Prometheus: up == 0 (its scrape of the target failed)")
        for host in sorted(self.known - set(rows)):
            rows[host] = Row(now, host, self.name, False, error="no series from Prometheus (target down or stale)")
        self.known |= {h for h, r in rows.items() if r.up}
        return [rows[h] for h in sorted(rows)]


class EmulatorSource(Source):
    """The embedded emulator's ``/metrics.json``: ``metrics.csv`` every second (queue depth, outage ...) and,
    every telemetry interval, its process CPU (% of one core) and RSS as host ``emulator``.

    Folded into the collector so a run has one sampling loop, one gap rule
    and one place the report reads resource figures from.
    """

    COLUMNS = ("ts", "cpu_percent", "rss_bytes", "queue_depth", "in_flight", "throttled", "rejected", "outage")
    name = "emulator /metrics.json"

    def __init__(self, url: str, csv_path: Path, timeout: float, context: Any = None) -> None:
        super().__init__(timeout)
        self._context = context
        self.url = url.rstrip("/") + "/metrics.json"
        self.path = csv_path
        self._fh = csv_path.open("w", encoding="utf-8")
        self._fh.write(",".join(self.COLUMNS) + "\n")
        self._fh.flush()
        self._last: dict[str, Any] | None = None
        self._last_error = ""
        self._prev_cpu: tuple[float, float] | None = None

    def poll(self) -> None:
        """One metrics.csv row (the emulator's application gauges); a failure leaves a gap in the file."""
        try:
            m = json.loads(self._get(self.url, "application/json"))
        except Exception as exc:  # noqa: BLE001
            self._last, self._last_error = None, _short(exc)
            return
        self._last, self._last_error = m, ""
        totals = m.get("totals") or {}
        row = [m.get("time", time.time()), m.get("cpu_percent", ""), m.get("rss_bytes", ""),
               m.get("queue_depth", ""), m.get("in_flight", ""), totals.get("throttled", ""),
               totals.get("rejected", ""), m.get("outage", "")]
        self._fh.write(",".join(str(v) for v in row) + "\n")
        self._fh.flush()

    def sample(self, now: float) -> list[Row]:
        m = self._last
        if m is None:
            self._prev_cpu = None
            return [Row(now, "emulator", self.name, False, error=self._last_error or "no sample yet")]
        values: dict[str, float] = {}
        if isinstance(m.get("rss_bytes"), (int, float)):
            values["process_rss_bytes"] = float(m["rss_bytes"])
        t, cpu = m.get("time"), m.get("cpu_seconds")
        if isinstance(t, (int, float)) and isinstance(cpu, (int, float)):
            if self._prev_cpu is not None and t > self._prev_cpu[0] and cpu >= self._prev_cpu[1]:
                values["process_cpu_percent"] = 100.0 * (cpu - self._prev_cpu[1]) / (t - self._prev_cpu[0])
            self._prev_cpu = (float(t), float(cpu))
        return [Row(now, "emulator", self.name, True, values)]

    def close(self) -> None:
        self._fh.close()

