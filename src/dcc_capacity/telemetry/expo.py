"""Resource figures from Prometheus text exposition: node_exporter and the client libraries' process metrics.

Why parse with ``prometheus_client``: the exposition format has escaping,
exemplars, timestamps and type comments that a home-made regex gets wrong
on some exporter; the reference client's parser is what every exporter is
tested against. Counters only mean something as a rate, so a figure such as
CPU % needs two scrapes: :func:`derive` takes the previous and the current
:class:`Scrape` and returns the figures (a counter that went backwards, an
exporter restart, gives no rate for that sample rather than a negative one).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["Scrape", "derive", "parse"]

Labels = tuple[tuple[str, str], ...]


@dataclass
class Scrape:
    """One parsed exposition: sample name -> {label set -> value}, at ``ts`` (epoch seconds, ours)."""

    ts: float
    samples: dict[str, dict[Labels, float]] = field(default_factory=dict)

    def get(self, name: str) -> dict[Labels, float]:
        return self.samples.get(name, {})

    def one(self, name: str) -> float | None:
        """The value of an unlabelled sample (or the sum over its label sets), None when absent."""
        values = self.get(name)
        return sum(values.values()) if values else None


def parse(text: str, ts: float, wanted: Iterable[str] | None = None) -> Scrape:
    """Parse exposition ``text``; ``wanted`` (sample names) keeps only those, so a big exporter stays cheap.

    Raises ``ValueError`` on text that is not the exposition format (an HTML error page, say).
    """
    keep = set(wanted) if wanted is not None else None
    out = Scrape(ts)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if keep is not None and s.name not in keep:
                continue
            out.samples.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = float(s.value)
    return out


NODE_SAMPLES = ("node_cpu_seconds_total", "node_memory_MemTotal_bytes", "node_memory_MemAvailable_bytes",
                "node_disk_read_bytes_total", "node_disk_written_bytes_total", "node_disk_io_time_seconds_total",
                "node_network_receive_bytes_total", "node_network_transmit_bytes_total")


def _by(values: dict[Labels, float], label: str, exclude: re.Pattern[str] | None = None) -> dict[str, float]:
    out: dict[str, float] = {}
    for labels, v in values.items():
        key = dict(labels).get(label, "")
        if exclude is not None and exclude.search(key):
            continue
        out[key] = out.get(key, 0.0) + v
    return out


def _rate(prev: dict[str, float], cur: dict[str, float], dt: float) -> dict[str, float]:
    """Per-key counter rate; a key whose counter went backwards (reset) or is new is left out."""
    return {k: (v - prev[k]) / dt for k, v in cur.items() if k in prev and v >= prev[k]}


def derive(kind: str, prev: Scrape | None, cur: Scrape, *, disk_exclude: str = r"^$", net_exclude: str = r"^$",
           cpu_seconds_metric: str = "process_cpu_seconds_total",
           rss_metric: str = "process_resident_memory_bytes") -> dict[str, float]:
    """The figures of one sample (see :data:`~dcc_capacity.telemetry.config.METRIC_NAMES`); absent ones are missing.

    ``node``: CPU busy % of all cores, memory used (MemTotal - MemAvailable) and %, disk read/write bytes/s
    and the busiest device's busy %, network receive/transmit bytes/s. ``process``: CPU % of one core, RSS.
    Rates need ``prev`` (the scrape before, of the same target, without a gap in between).
    """
    out: dict[str, float] = {}
    dt = cur.ts - prev.ts if prev is not None else 0.0
    if kind == "process":
        rss = cur.one(rss_metric)
        if rss is not None:
            out["process_rss_bytes"] = rss
        c1 = cur.one(cpu_seconds_metric)
        c0 = prev.one(cpu_seconds_metric) if prev is not None else None
        if c1 is not None and c0 is not None and dt > 0 and c1 >= c0:
            out["process_cpu_percent"] = 100.0 * (c1 - c0) / dt
        return out
    total, avail = cur.one("node_memory_MemTotal_bytes"), cur.one("node_memory_MemAvailable_bytes")
    if total and avail is not None:
        out["mem_used_bytes"] = total - avail
        out["mem_percent"] = 100.0 * (total - avail) / total
    if prev is None or dt <= 0:
        return out
    modes1 = _by(cur.get("node_cpu_seconds_total"), "mode")
    modes0 = _by(prev.get("node_cpu_seconds_total"), "mode")
    d = _rate(modes0, modes1, dt)
    busy_total = sum(d.values())
    if busy_total > 0 and "idle" in d:
        out["cpu_percent"] = min(100.0, max(0.0, 100.0 * (1.0 - d["idle"] / busy_total)))
    dex, nex = re.compile(disk_exclude), re.compile(net_exclude)
    for name, key in (("node_disk_read_bytes_total", "disk_read_bytes_s"),
                      ("node_disk_written_bytes_total", "disk_write_bytes_s")):
        r = _rate(_by(prev.get(name), "device", dex), _by(cur.get(name), "device", dex), dt)
        if cur.get(name):
            out[key] = sum(r.values())
    io = _rate(_by(prev.get("node_disk_io_time_seconds_total"), "device", dex),
               _by(cur.get("node_disk_io_time_seconds_total"), "device", dex), dt)
    if io:
        out["disk_busy_percent"] = min(100.0, 100.0 * max(io.values()))
    for name, key in (("node_network_receive_bytes_total", "net_rx_bytes_s"),
                      ("node_network_transmit_bytes_total", "net_tx_bytes_s")):
        r = _rate(_by(prev.get(name), "device", nex), _by(cur.get(name), "device", nex), dt)
        if cur.get(name):
            out[key] = sum(r.values())
    return {k: v for k, v in out.items() if math.isfinite(v)}
