"""Outage catch-up (SECMP0067's outage backlog): backlog size, time to recover, rate needed vs achieved.

Definitions (docs/report.md "Outage catch-up"), all from the records and the
outage window run.json ``catchup.outage`` declares (O_s to O_e):

* normal latency L0: ack p95 of the requests intended before O_s; the
  recovered level L* = max(1.5 x L0, L0 + 20 ms) (``RECOVERY_FACTOR``,
  ``RECOVERY_FLOOR_MS``): a margin that short-run jitter does not cross;
* backlog B: requests intended before O_e that were not yet acknowledged at
  O_s (they waited out the outage at the SUT), plus, when the Service Users
  held their traffic (``--client-hold``), the requests they held;
* drained D: when the last of those requests was acknowledged (with held
  traffic: the last request sent in the resend window, O_e + outage length);
* latency back L: the first window start t >= O_e (windows of ``WINDOW_S``)
  from which the ack p95 of the requests intended in [t, t + ``SUSTAIN_S``)
  is <= L* (it stays there for SUSTAIN_S, not one lucky window);
* time to recover TTR = max(D, L) - O_e; none when the run ended first;
* rate needed: base + B / target, the rate that clears the backlog within
  the recovery target (default: as long as the outage lasted) while the
  base load goes on; peak achieved: the most OK acknowledgements in any
  second (``PEAK_WINDOW_S``) after O_e, per second.

Verdict PASS when the SUT recovered within the target. One streaming pass
over the records (histograms per window), so a long catch-up fits in memory.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd

from dcc_capacity.report.quantiles import COARSE, NBINS, bin_index, quantile_from_hist

__all__ = ["COLUMNS", "RECOVERY_FACTOR", "RECOVERY_FLOOR_MS", "SUSTAIN_S", "WINDOW_S", "analyse"]

COLUMNS = ["intended_ts", "ack_ts", "ack_ms", "outcome"]
RECOVERY_FACTOR = 1.5
RECOVERY_FLOOR_MS = 20.0
WINDOW_S = 0.25
PEAK_WINDOW_S = 1.0
SUSTAIN_S = 3.0
_NB = NBINS // COARSE


def _hist_rows(hist: np.ndarray, rows: int) -> np.ndarray:
    if hist.shape[0] >= rows:
        return hist
    return np.vstack([hist, np.zeros((rows - hist.shape[0], hist.shape[1]), dtype=hist.dtype)])


def analyse(run: dict[str, Any], batches: Callable[[], Iterator[pd.DataFrame]], start_epoch: float,
            duration_s: float | None, limits: dict[str, Any]) -> dict[str, Any] | None:
    """The catch-up figures of a run whose run.json declares ``catchup.outage``; None when it does not."""
    outage = (run.get("catchup") or {}).get("outage") or {}
    if outage.get("start_epoch") is None or outage.get("end_epoch") is None:
        return None
    o_s, o_e = float(outage["start_epoch"]), float(outage["end_epoch"])
    outage_s = o_e - o_s
    end = start_epoch + float(duration_s or 0.0)
    target = limits.get("recovery_target_s") or outage_s
    hold = bool((run.get("catchup") or {}).get("client_hold"))
    # Held traffic is resent after O_e (CatchupShape: for as long as the outage, at twice the base rate): the
    # backlog is drained when what was sent in that window has been answered.
    drain_until = o_e + (outage_s if hold else 0.0)
    w = max(WINDOW_S, (end - o_e) / 4000.0)  # at most ~4,000 windows after the outage
    pre = np.zeros(NBINS, dtype=np.int64)
    post = np.zeros((0, _NB), dtype=np.int64)  # ack-latency histogram per window of intended time after O_e
    acks = np.zeros(0, dtype=np.int64)          # ok acknowledgements per window of ack time after O_e
    backlog = pre_n = lost = 0
    drained = -math.inf
    first = last = None
    for b in batches():
        if "step_row" in b.columns:  # the SUT's backlog is HTTP exchanges: step rows (CV 4 and CV 5 apart), once each
            b = b[b["step_row"].to_numpy(dtype=bool)]
        it = b["intended_ts"].to_numpy(dtype=float, na_value=np.nan)
        at = b["ack_ts"].to_numpy(dtype=float, na_value=np.nan)
        ms = b["ack_ms"].to_numpy(dtype=float, na_value=np.nan)
        ok = (b["outcome"].astype(str) == "ok").to_numpy()
        if len(it):
            first = np.nanmin(it) if first is None else min(first, np.nanmin(it))
            last = np.nanmax(it) if last is None else max(last, np.nanmax(it))
        m = (it < o_s) & np.isfinite(ms)
        pre += np.bincount(bin_index(ms[m]), minlength=NBINS)
        pre_n += int(((it >= start_epoch) & (it < o_s)).sum())
        waited = (it < o_e) & ~(at < o_s)  # NaN ack (never answered) counts as waiting
        backlog += int(waited.sum())
        lost += int((waited & ~np.isfinite(at)).sum())
        waited = (it < drain_until) & ~(at < o_s)
        if (waited & np.isfinite(at)).any():
            drained = max(drained, float(np.nanmax(at[waited & np.isfinite(at)])))
        m = (it >= o_e) & np.isfinite(ms)
        if m.any():
            k = ((it[m] - o_e) // w).astype(np.int64)
            post = _hist_rows(post, int(k.max()) + 1)
            np.add.at(post, (k, bin_index(ms[m]) // COARSE), 1)
        m = ok & (at >= o_e)
        if m.any():
            k = ((at[m] - o_e) // w).astype(np.int64)
            acks = np.concatenate([acks, np.zeros(max(0, int(k.max()) + 1 - len(acks)), dtype=np.int64)])
            acks += np.bincount(k, minlength=len(acks))
    base_rate = pre_n / (o_s - start_epoch) if o_s > start_epoch else None
    held = 0
    if hold and base_rate:
        held = max(0, int(round(base_rate * outage_s)))
        backlog += held
    l0 = quantile_from_hist(pre, 0.95) if pre.sum() else float("nan")
    limit_ms = max(RECOVERY_FACTOR * l0, l0 + RECOVERY_FLOOR_MS) if math.isfinite(l0) else float("nan")
    sustain = max(1, int(round(SUSTAIN_S / w)))
    back_at = None
    if math.isfinite(limit_ms) and len(post):
        cum = np.vstack([np.zeros((1, _NB), dtype=np.int64), np.cumsum(post, axis=0)])
        for k in range(len(post)):
            span = cum[min(k + sustain, len(post))] - cum[k]
            if span.sum() == 0 or quantile_from_hist(span, 0.95, COARSE) <= limit_ms:
                back_at = o_e + k * w
                break
    drained_at = drained if math.isfinite(drained) else o_e
    ttr = (max(drained_at, back_at) - o_e) if back_at is not None else None
    needed = (base_rate or 0.0) + backlog / target if target > 0 else None
    per = max(1, int(round(PEAK_WINDOW_S / w)))  # the peak rate over whole seconds, not a 0.25 s blip
    if len(acks):
        acks = np.concatenate([acks, np.zeros(-len(acks) % per, dtype=np.int64)]).reshape(-1, per).sum(axis=1)
    peak = float(acks.max() / (per * w)) if len(acks) else 0.0
    peak_at = float(int(acks.argmax()) * per * w) if len(acks) else None
    verdict = "no data" if base_rate is None else ("pass" if ttr is not None and ttr <= target else "fail")
    return {
        "outage": {k: outage.get(k) for k in ("start", "end", "duration_s", "source")},
        "outage_start_s": o_s - start_epoch, "outage_end_s": o_e - start_epoch,
        "base_rate": base_rate, "normal_ack_p95_ms": l0, "recovered_ack_p95_ms": limit_ms,
        "backlog": backlog, "held_by_clients": held, "unanswered_backlog": lost,
        "drained_s": (drained_at - o_e) if math.isfinite(drained) else None,
        "latency_back_s": (back_at - o_e) if back_at is not None else None,
        "time_to_recover_s": ttr, "recovery_target_s": target,
        "remaining_s": end - o_e,
        "rate_needed": needed, "peak_rate_achieved": peak,
        "peak_at_s": (o_e - start_epoch + peak_at) if peak_at is not None else None,
        "window_s": w, "sustain_s": sustain * w, "verdict": verdict,
    }
