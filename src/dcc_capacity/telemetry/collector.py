"""One resource collector per run, in the parent ``dcc-capacity run`` process.

Why in the parent and not in Locust: one sampling clock per run (workers
would each scrape the same exporters), no gevent in the way of blocking
HTTP, and the collector outlives a Locust process that dies. It writes, in
the run folder:

* ``resources.csv``: ``ts, host, source, up, <METRIC_NAMES...>, error``, one
  row per host and source every interval; a failed sample is a row with
  ``up = 0``, the reason and empty figures (a gap, never a zero);
* ``telemetry-live.json``: the latest row of every host and source, replaced
  atomically every interval, which the headless progress line and the web
  UI's Capacity tab read (they run in the Locust processes);
* ``telemetry.json``: what was collected from where, at which interval and
  where that interval came from (the run configuration or the project
  default), samples and gaps per host; the report reads it for provenance.
* ``metrics.csv``: the embedded emulator's own gauges every second, as before.

Every wait is bounded: a sample never takes longer than the timeout (the
sources are asked in parallel), :meth:`Collector.stop` joins within a few
seconds, and nothing here can raise into the run.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from dcc_capacity.telemetry.config import METRIC_NAMES, TelemetryConfig
from dcc_capacity.telemetry.sources import EmulatorSource, PromApiSource, Row, ScrapeSource, Source

__all__ = ["CSV_COLUMNS", "Collector", "LIVE_FILE", "build_collector", "live_summary", "read_live"]

log = logging.getLogger(__name__)
CSV_COLUMNS = ("ts", "host", "source", "up", *METRIC_NAMES, "error")
LIVE_FILE = "telemetry-live.json"
EMULATOR_POLL_S = 1.0


def _fmt(v: float | None) -> str:
    return "" if v is None else repr(round(float(v), 4))


def _csv_line(r: Row) -> str:
    """One resources.csv line (commas in a source name or an error text would split it: replaced)."""
    err = r.error.replace(",", ";").replace("\n", " ")
    return ",".join([f"{r.ts:.3f}", r.host.replace(",", ";"), r.source.replace(",", ";"), "1" if r.up else "0",
                     *(_fmt(r.values.get(m)) for m in METRIC_NAMES), err])


class Collector(threading.Thread):
    """Samples every source at ``interval`` s until :meth:`stop`; see the module docstring for the files."""

    def __init__(self, out: Path, sources: list[Source], interval: float, *, emulator: EmulatorSource | None = None,
                 provenance: dict[str, Any] | None = None) -> None:
        super().__init__(name="dcc-telemetry", daemon=True)
        self.out = out
        self.sources = sources
        self.interval = interval
        self.emulator = emulator
        self.provenance = provenance or {}
        self._stop_evt = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=max(1, min(8, len(sources))), thread_name_prefix="dcc-scrape")
        self._csv = (out / "resources.csv").open("w", encoding="utf-8")
        self._csv.write(",".join(CSV_COLUMNS) + "\n")
        self._csv.flush()
        self.latest: dict[tuple[str, str], Row] = {}
        self.counts: dict[str, dict[str, int]] = {}
        self.started = time.time()
        self.stopped: float | None = None
        self.windows: dict[str, str] = {}
        """Prometheus source -> which record of it resources.csv holds (the range query, or the live rows)."""

    # -- loop ------------------------------------------------------------------------------
    def run(self) -> None:
        next_sample = time.monotonic()
        next_poll = time.monotonic()
        while not self._stop_evt.is_set():
            now = time.monotonic()
            if self.emulator is not None and now >= next_poll:
                self._guard(self.emulator.poll)
                next_poll = now + EMULATOR_POLL_S
            if now >= next_sample:
                self._guard(self._sample_all)
                next_sample += self.interval
                if next_sample < time.monotonic():  # a slow sample: keep the grid, skip what was missed
                    next_sample = time.monotonic() + self.interval
            due = min(next_sample, next_poll if self.emulator is not None else next_sample)
            self._stop_evt.wait(max(0.01, due - time.monotonic()))

    @staticmethod
    def _guard(fn: Any) -> None:
        try:
            fn()
        except Exception:  # a collector bug must not take the run down
            log.exception("telemetry sample failed")

    def _sample_all(self) -> None:
        now = time.time()
        rows: list[Row] = []
        futures = [self._pool.submit(s.sample, now) for s in self.sources]
        if self.emulator is not None:
            rows += self.emulator.sample(now)
        for s, f in zip(self.sources, futures, strict=True):
            try:
                rows += f.result(timeout=s.timeout + 5)
            except Exception as exc:  # noqa: BLE001 - a stuck source is a gap too
                rows.append(Row(now, "unknown", s.name, False, error=f"sample did not finish: {exc!r}"[:200]))
        self._record(rows)

    def _record(self, rows: list[Row]) -> None:
        for r in rows:
            self._csv.write(_csv_line(r) + "\n")
            self.latest[(r.host, r.source)] = r
            c = self.counts.setdefault(r.host, {"samples": 0, "gaps": 0})
            c["samples" if r.up else "gaps"] += 1
        self._csv.flush()
        self._write_live()

    def _write_live(self) -> None:
        doc = {"time": time.time(), "interval_s": self.interval,
               "rows": [{"host": r.host, "source": r.source, "ts": r.ts, "up": r.up, "error": r.error, **r.values}
                        for (_h, _s), r in sorted(self.latest.items())],
               "counts": self.counts}
        tmp = self.out / (LIVE_FILE + ".tmp")
        tmp.write_text(json.dumps(doc), encoding="utf-8")
        os.replace(tmp, self.out / LIVE_FILE)

    # -- end -------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop sampling (bounded), take each Prometheus server's record of the window, write ``telemetry.json``."""
        self._stop_evt.set()
        self.join(10)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.stopped = time.time()
        self._csv.close()
        if self.emulator is not None:
            self.emulator.close()
        self._prometheus_windows()
        (self.out / "telemetry.json").write_text(json.dumps(self.summary(), indent=2) + "\n", encoding="utf-8")

    def _prometheus_windows(self) -> None:
        """Replace each Prometheus source's live rows by its range query over the run (its own, hole-free record).

        When a server cannot answer now, its live rows stay, and telemetry.json says which record was kept.
        """
        proms = [s for s in self.sources if isinstance(s, PromApiSource)]
        if not proms:
            return
        path = self.out / "resources.csv"
        lines = path.read_text(encoding="utf-8").splitlines()
        header, body = lines[0], lines[1:]
        for src in proms:
            try:
                rows = src.window(self.started, self.stopped or time.time(), self.interval)
            except Exception as exc:  # noqa: BLE001 - the live rows are the record then
                self.windows[src.name] = f"live instant queries kept (range query failed: {exc})"[:300]
                continue
            name = src.name.replace(",", ";")
            body = [ln for ln in body if ln.split(",")[2] != name] + [_csv_line(r) for r in rows]
            self.windows[src.name] = f"range query over the run's window, step {self.interval:g} s"
            for host in {r.host for r in rows}:  # the counts now describe the recorded rows
                self.counts[host] = {"samples": sum(r.up for r in rows if r.host == host),
                                     "gaps": sum(not r.up for r in rows if r.host == host)}
        body.sort(key=lambda ln: float(ln.split(",", 1)[0]))
        tmp = path.with_suffix(".tmp")
        tmp.write_text("\n".join([header, *body]) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    def summary(self) -> dict[str, Any]:
        return {"interval_s": self.interval, **self.provenance, "started": self.started, "stopped": self.stopped,
                "sources": [s.name for s in ([self.emulator] if self.emulator else []) + self.sources],
                "prometheus_record": self.windows, "hosts": self.counts}


def build_collector(cfg: TelemetryConfig | None, out: Path, *, config_file: str | None = None,
                    emulator_url: str | None = None, emulator_context: Any = None) -> Collector | None:
    """The run's collector, or None when there is nothing to collect (no configuration, no embedded emulator)."""
    cfg = cfg or TelemetryConfig()
    timeout = float(cfg.timeout)  # a float once validated (telemetry/config.py Seconds)
    sources: list[Source] = [ScrapeSource(t, timeout) for t in cfg.scrape]
    sources += [PromApiSource(p, timeout) for p in cfg.prometheus]
    emulator = (EmulatorSource(emulator_url, out / "metrics.csv", timeout, emulator_context)
                if emulator_url else None)
    if not sources and emulator is None:
        return None
    set_by_user = "interval" in cfg.model_fields_set
    provenance = {"interval_source": f"run configuration {config_file}: telemetry.interval"
                  if set_by_user and config_file else "project default",
                  "config_file": config_file}
    return Collector(out, sources, float(cfg.interval), emulator=emulator, provenance=provenance)


def read_live(run_dir: str | Path | None) -> dict[str, Any] | None:
    """The collector's latest figures for the Locust side (progress line, Capacity tab); None if there are none.

    ``stale`` is set when the file is older than three intervals (the collector stopped or is stuck).
    """
    if not run_dir:
        return None
    try:
        doc = json.loads((Path(run_dir) / LIVE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    doc["stale"] = time.time() - float(doc.get("time", 0)) > 3 * float(doc.get("interval_s", 5)) + 2
    return doc


def live_summary(doc: dict[str, Any] | None) -> str:
    """A short text for the progress line: the busiest host's CPU and memory, and hosts now in a gap."""
    if not doc or not doc.get("rows"):
        return ""
    rows = doc["rows"]
    parts = []
    for metric, label in (("cpu_percent", "cpu"), ("mem_percent", "mem"), ("process_cpu_percent", "proc cpu")):
        vals = [(r[metric], r["host"]) for r in rows if r.get("up") and isinstance(r.get(metric), (int, float))]
        if vals:
            v, host = max(vals)
            parts.append(f"{label} {v:.0f}% ({host})")
    down = sorted({r["host"] for r in rows if not r.get("up")})
    if down:
        parts.append(f"GAP {', '.join(down)}")
    if doc.get("stale"):
        parts.append("stale")
    return "SUT " + " ".join(parts) if parts else ""
