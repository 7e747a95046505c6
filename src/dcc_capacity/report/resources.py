"""The SUT's resources per host in the report: tables the NFRs are judged on, gaps, peaks for 6.3.6.

Reads ``resources.csv`` and ``telemetry.json`` (written by the run's
collector, :mod:`dcc_capacity.telemetry.collector`). Why gaps are kept
apart: a sample that failed is *not measured*; counting it as 0 % would
flatter a CPU NFR and hide that the evidence has a hole, so statistics use
only good samples and the report lists every gap with its reason. Why the
threshold's provenance is shown: the board must see whether a limit is the
SP's own (its NFR file) or the project's illustrative default.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dcc_capacity.errors import InputError
from dcc_capacity.model.nfr import RESOURCE_METRICS, Nfr

__all__ = ["LABELS", "Resources", "load_resources", "risks", "threshold_rows", "utilisation"]

LABELS = {"cpu_percent": "CPU % (all cores)", "mem_percent": "memory used %", "mem_used_bytes": "memory used",
          "disk_read_bytes_s": "disk read /s", "disk_write_bytes_s": "disk write /s",
          "disk_busy_percent": "disk busy % (busiest device)", "net_rx_bytes_s": "network receive /s",
          "net_tx_bytes_s": "network transmit /s", "process_cpu_percent": "process CPU % (of one core)",
          "process_rss_bytes": "process RSS"}
STATS = ("p50", "p95", "p99", "max", "mean")


@dataclass
class Resources:
    """What the collector recorded: all samples (gaps included), the per-host tables and the collector's notes."""

    samples: pd.DataFrame | None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def present(self) -> bool:
        return self.samples is not None and not self.samples.empty

    @property
    def _frame(self) -> pd.DataFrame:
        """The samples (empty when there are none): read only where :attr:`present` said there are."""
        return self.samples if self.samples is not None else pd.DataFrame()

    @property
    def good(self) -> pd.DataFrame:
        return self._frame[self._frame["up"] == 1] if self.present else pd.DataFrame()

    @property
    def hosts(self) -> list[str]:
        return sorted(self._frame["host"].unique()) if self.present else []

    def groups(self) -> dict[str, pd.DataFrame]:
        """``host`` (one row per host) and ``resources`` (one row ``all``): ``<metric>_<stat>`` and ``_n`` columns.

        The shape :func:`dcc_capacity.model.nfr.judge` reads, beside the record tables.
        """
        if not self.present:
            return {}
        per = {h: _stats(df) for h, df in self._frame.groupby("host", sort=True)}
        host = pd.DataFrame.from_dict(per, orient="index")
        return {"host": host, "resources": pd.DataFrame.from_dict({"all": _stats(self._frame)}, orient="index")}

    def gaps(self, t0: float) -> list[dict[str, Any]]:
        """Each run of consecutive failed samples of one host and source: from, to (s after start), count, reason."""
        if not self.present:
            return []
        out = []
        for (host, source), df in self._frame.sort_values("ts").groupby(["host", "source"], sort=True):
            down = df["up"].to_numpy() == 0
            ts = df["ts"].to_numpy(dtype=float)
            errors = df["error"].fillna("").astype(str).to_numpy()
            i = 0
            while i < len(down):
                if not down[i]:
                    i += 1
                    continue
                j = i
                while j + 1 < len(down) and down[j + 1]:
                    j += 1
                out.append({"host": host, "source": source, "from_s": ts[i] - t0, "to_s": ts[j] - t0,
                            "samples": j - i + 1, "reason": errors[i]})
                i = j + 1
        return out

    def peak(self, metric: str) -> tuple[float, str] | None:
        """(highest good sample, its host) of ``metric``; None when never measured."""
        good = self.good
        if good.empty or metric not in good or good[metric].isna().all():
            return None
        idx = good[metric].idxmax()
        return float(good.loc[idx, metric]), str(good.loc[idx, "host"])

    def summary(self) -> dict[str, Any]:
        """summary.json ``resources``: per host samples, gaps and each figure's max/p95 (None: never measured)."""
        host = self.groups()["host"]
        out: dict[str, Any] = {"interval_s": self.meta.get("interval_s"),
                               "interval_source": self.meta.get("interval_source"), "hosts": {}}
        for name, row in host.iterrows():
            figs = {m: {s: (None if math.isnan(row[f"{m}_{s}"]) else round(float(row[f"{m}_{s}"]), 4))
                        for s in ("max", "p95")} for m in RESOURCE_METRICS if row[f"{m}_n"]}
            out["hosts"][str(name)] = {"samples": int(row["samples"]), "gaps": int(row["gaps"]), **figs}
        return out

    def interval_note(self) -> str:
        iv = self.meta.get("interval_s")
        return f"every {iv:g} s ({self.meta.get('interval_source', 'project default')})" if iv else ""


def _stats(df: pd.DataFrame) -> dict[str, float]:
    good = df[df["up"] == 1]
    row: dict[str, float] = {"samples": float(len(good)), "gaps": float((df["up"] == 0).sum())}
    for m in RESOURCE_METRICS:
        v = good[m].dropna().to_numpy(dtype=float) if m in good else np.array([])
        row[f"{m}_n"] = float(len(v))
        for s in STATS:
            if not len(v):
                row[f"{m}_{s}"] = math.nan
            elif s == "max":
                row[f"{m}_{s}"] = float(v.max())
            elif s == "mean":
                row[f"{m}_{s}"] = float(v.mean())
            else:
                row[f"{m}_{s}"] = float(np.percentile(v, float(s[1:])))
    return row


def load_resources(run_dir: str | Path) -> Resources:
    """The folder's resources.csv (absent: nothing collected) and telemetry.json; a malformed file is exit 2."""
    path = Path(run_dir) / "resources.csv"
    meta: dict[str, Any] = {}
    meta_file = Path(run_dir) / "telemetry.json"
    if meta_file.exists():
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"not readable JSON ({exc})", file=meta_file) from None
        if not isinstance(meta, dict):
            raise InputError("must be a JSON object", file=meta_file)
    if not path.exists():
        return Resources(None, meta)
    try:
        df = pd.read_csv(path, dtype={"host": str, "source": str, "error": str}, keep_default_na=False,
                         na_values={m: [""] for m in RESOURCE_METRICS})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"not a readable CSV ({exc})", file=path) from None
    for col in ("ts", "host", "up"):
        if col not in df.columns:
            raise InputError("required column is missing", file=path, key=col)
    for m in RESOURCE_METRICS:
        df[m] = pd.to_numeric(df[m], errors="coerce") if m in df else math.nan
    df["ts"] = pd.to_numeric(df["ts"], errors="coerce")
    df["up"] = pd.to_numeric(df["up"], errors="coerce").fillna(0).astype(int)
    for col in ("source", "error"):
        if col not in df:
            df[col] = ""
    return Resources(df.dropna(subset=["ts"]).sort_values("ts").reset_index(drop=True), meta)


def threshold_rows(nfrs: list[Nfr], nfr_source: str) -> list[dict[str, Any]]:
    """The resource NFRs with their provenance: the SP's file, or the project's illustrative default."""
    default = nfr_source.startswith("default catalogue")
    return [{"nfr": n, "what": f"{n.metric} {n.stat}", "scope": n.scope_text, "op": n.op, "threshold": n.threshold,
             "provenance": f"project default ({nfr_source})" if default else f"user's file ({nfr_source})",
             "source": n.source} for n in nfrs if n.is_resource]


def risks(res: Resources, target: str) -> list[dict[str, str]]:
    """No resource evidence from a real SUT (SCTAD 3.4 / 7.2), and holes in it."""
    out = []
    real = [h for h in res.hosts if h != "emulator"]
    if "emulator" not in target.lower() and not real:
        out.append({"level": "high", "text": "No resource telemetry from the system under test (CPU, memory, disk, "
                    "network; SCTAD 3.4 and 7.2): configure [telemetry] in the run configuration "
                    "(docs/real-environment.md).", "href": "resources"})
    gaps = res.gaps(0.0)
    if gaps:
        hosts = sorted({g["host"] for g in gaps})
        out.append({"level": "medium", "text": f"Resource telemetry has {sum(g['samples'] for g in gaps)} failed "
                    f"sample(s) on {', '.join(hosts)}: not measured there (gaps, not zeros).", "href": "resource-gaps"})
    return out


def utilisation(res: Resources, nfrs: list[Nfr], capacity: float | None) -> dict[str, Any]:
    """Peak utilisation for 6.3.6: the busiest host's CPU (else the emulator process), memory, disk, network.

    ``cpu_bound_capacity``: the measured capacity scaled linearly to the CPU
    limit (the tightest ``cpu_percent`` ``max`` NFR, else 100 %), i.e. the rate
    at which the busiest host would reach it if CPU grew in proportion to load.
    """
    out: dict[str, Any] = {}
    for key, metric in (("peak_cpu", "cpu_percent"), ("peak_mem", "mem_percent"),
                        ("peak_disk_busy", "disk_busy_percent"), ("peak_net_rx", "net_rx_bytes_s"),
                        ("peak_net_tx", "net_tx_bytes_s")):
        p = res.peak(metric)
        out[key], out[f"{key}_host"] = (p[0], p[1]) if p else (None, None)
    out["peak_cpu_basis"] = "host CPU, all cores (node_exporter)" if out["peak_cpu"] is not None else None
    if out["peak_cpu"] is None:
        p = res.peak("process_cpu_percent")
        if p:
            out["peak_cpu"], out["peak_cpu_host"] = p
            out["peak_cpu_basis"] = "process CPU, % of one core"
    limits = [n.max for n in nfrs if n.metric == "cpu_percent" and n.max is not None]
    out["cpu_limit"] = min(limits) if limits else 100.0
    out["cpu_limit_source"] = "tightest cpu_percent NFR" if limits else "100 % (no cpu_percent NFR)"
    cpu = out["peak_cpu"] if out["peak_cpu_basis"] and out["peak_cpu_basis"].startswith("host") else None
    out["cpu_bound_capacity"] = capacity * out["cpu_limit"] / cpu if capacity and cpu else None
    return out
