"""Soak drift: does latency or the SUT's memory creep up over the run? Fitted slopes with a verdict.

A soak exists to find what a short test cannot: a latency that rises hour
after hour (a growing table, a leaking cache) and memory that never comes
back. Both are judged as least-squares slopes with a 95 % confidence
interval, because a compressed soak is short and its points are noisy:

* latency: ack and TRT p95 per time bucket (the report's over-time
  histograms, so it costs no extra pass over the records), in ms per hour of
  test time. The soak changes its mix at each Table A1 slot (night meter
  reads, day I&C and migration), which moves the p95 level for reasons that
  are not drift, so each slot gets its own intercept: the slope is the
  common trend *within* the slots.
* memory: the SUT's RSS from metrics.csv, in MiB per hour.

The first ``WARMUP`` of the run is left out (connection pools, caches and
the allocator fill up there). Verdict FAIL when the slope exceeds its limit
AND its 95 % interval lies above zero (a real rise, not noise); PASS
otherwise; "no data" with fewer than 4 points.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["WARMUP", "analyse", "fit_slope", "drift_chart"]

WARMUP = 0.1
"""Share of the run left out at the start of every fit."""


def _t975(df: int) -> float:
    """Student's t 97.5 % quantile (Cornish-Fisher from the normal one; within 0.5 % for df >= 3)."""
    z = 1.959964
    if df <= 0:
        return math.inf
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2) \
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3)


def fit_slope(x: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> dict[str, Any] | None:
    """Least-squares slope of ``y`` on ``x`` (one intercept per group), its 95 % CI and the point count."""
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    g = np.zeros(len(x), dtype=np.int64) if groups is None else np.asarray(groups)[ok]
    if len(x) < 4:
        return None
    xd, yd = x.astype(float).copy(), y.astype(float).copy()
    labels = np.unique(g)
    for lab in labels:  # within-group demeaning = one intercept per group
        m = g == lab
        xd[m] -= xd[m].mean()
        yd[m] -= yd[m].mean()
    sxx = float((xd * xd).sum())
    if sxx <= 0:
        return None
    slope = float((xd * yd).sum() / sxx)
    dof = len(x) - len(labels) - 1
    resid = yd - slope * xd
    se = math.sqrt(float((resid * resid).sum()) / dof / sxx) if dof > 0 else math.inf
    half = _t975(dof) * se
    return {"slope": slope, "ci_low": slope - half, "ci_high": slope + half, "points": int(len(x)),
            "groups": int(len(labels))}


def _verdict(fit: dict[str, Any] | None, limit: float) -> str:
    if fit is None:
        return "no data"
    return "fail" if fit["slope"] > limit and fit["ci_low"] > 0 else "pass"


def _slot_of(t_mid: np.ndarray, slots: list[dict[str, Any]]) -> np.ndarray:
    out = np.full(len(t_mid), -1, dtype=np.int64)
    for i, s in enumerate(slots):
        out[(t_mid >= float(s["start_s"])) & (t_mid < float(s["end_s"]))] = i
    return out


def analyse(run: dict[str, Any], latency_time: pd.DataFrame, bucket_s: float, sut: pd.DataFrame | None,
            start_epoch: float, duration_s: float | None, limits: dict[str, Any]) -> dict[str, Any]:
    """Slopes and verdicts for ack p95, TRT p95 (ms/h) and SUT RSS (MiB/h), plus the series behind them."""
    duration = float(duration_s or 0.0)
    warm = WARMUP * duration
    slots = ((run.get("soak") or {}).get("slots")) or []
    lat_limit = float(limits["drift_ms_per_h"])
    mem_limit = float(limits["memory_mib_per_h"])
    out: dict[str, Any] = {"warmup_s": warm, "bucket_s": bucket_s, "limits": {"latency_ms_per_h": lat_limit,
                                                                              "memory_mib_per_h": mem_limit}}
    series: dict[str, Any] = {}
    if latency_time is not None and not latency_time.empty:
        mid = latency_time["t_s"].to_numpy(dtype=float) + bucket_s / 2
        keep = (mid >= warm) & ((mid <= duration) if duration else True)
        groups = _slot_of(mid, slots) if slots else None
        for key, col in (("ack_p95", "ack_p95"), ("trt_p95", "trt_p95")):
            if col not in latency_time:
                continue
            y = latency_time[col].to_numpy(dtype=float)
            fit = fit_slope(mid[keep] / 3600.0, y[keep], None if groups is None else groups[keep])
            out[key] = _metric(fit, lat_limit, duration, "ms/h")
            series[key] = (mid, y)
    if sut is not None and "rss_bytes" in sut and "ts" in sut and len(sut):
        t = pd.to_numeric(sut["ts"], errors="coerce").to_numpy(dtype=float) - start_epoch
        rss = pd.to_numeric(sut["rss_bytes"], errors="coerce").to_numpy(dtype=float) / 2**20
        keep = (t >= warm) & ((t <= duration) if duration else True)
        out["rss"] = _metric(fit_slope(t[keep] / 3600.0, rss[keep]), mem_limit, duration, "MiB/h")
        if keep.any():
            out["rss"]["first_mib"] = float(rss[keep][0])
            out["rss"]["last_mib"] = float(rss[keep][-1])
        series["rss"] = (t, rss)
    else:
        out["rss"] = _metric(None, mem_limit, duration, "MiB/h")
    out["slots"] = slots
    judged = [out[k]["verdict"] for k in ("ack_p95", "trt_p95", "rss") if k in out]
    out["verdict"] = "fail" if "fail" in judged else ("pass" if "pass" in judged else "no data")
    out["_series"] = series
    return out


def _metric(fit: dict[str, Any] | None, limit: float, duration_s: float, unit: str) -> dict[str, Any]:
    m: dict[str, Any] = {"unit": unit, "limit": limit, "verdict": _verdict(fit, limit)}
    if fit is not None:
        m.update(fit)
        m["change_over_run"] = fit["slope"] * duration_s / 3600.0
    return m


def drift_chart(d: dict[str, Any]) -> str | None:
    """p95 per bucket and RSS over time, each with its fitted trend (per-slot intercepts for latency)."""
    series = d.get("_series") or {}
    if not series:
        return None
    from dcc_capacity.report.charts import plt, to_svg

    fig, axes = plt.subplots(1, 2, figsize=(9, 2.8))
    ax = axes[0]
    for key, colour in (("ack_p95", "C0"), ("trt_p95", "C1")):
        if key in series:
            x, y = series[key]
            ax.plot(x, y, color=colour, lw=1, marker=".", ms=2, label=f"{key.replace('_', ' ')}")
            fit = d.get(key) or {}
            if fit.get("slope") is not None:
                keep = np.isfinite(y) & (x >= d["warmup_s"])
                if keep.any():
                    x0 = float(np.mean(x[keep]))
                    y0 = float(np.nanmean(y[keep]))
                    xs = np.array([x[keep].min(), x[keep].max()])
                    ax.plot(xs, y0 + fit["slope"] * (xs - x0) / 3600.0, color=colour, ls="--", lw=1,
                            label=f"trend {fit['slope']:+.1f} ms/h")
    for s in d.get("slots") or []:
        ax.axvline(float(s["start_s"]), color="grey", lw=0.6, ls=":")
    ax.set_xlabel("time from start (s)")
    ax.set_ylabel("ms")
    ax.legend(fontsize=6.5)
    ax = axes[1]
    if "rss" in series:
        t, rss = series["rss"]
        ax.plot(t, rss, color="C2", lw=1, label="SUT RSS")
        fit = d.get("rss") or {}
        keep = np.isfinite(rss) & (t >= d["warmup_s"])
        if fit.get("slope") is not None and keep.any():
            xs = np.array([t[keep].min(), t[keep].max()])
            ax.plot(xs, float(np.mean(rss[keep])) + fit["slope"] * (xs - float(np.mean(t[keep]))) / 3600.0,
                    color="C2", ls="--", lw=1, label=f"trend {fit['slope']:+.1f} MiB/h")
        ax.legend(fontsize=6.5)
    ax.set_xlabel("time from start (s)")
    ax.set_ylabel("MiB")
    return to_svg(fig, "chart-drift")
