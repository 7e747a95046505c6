"""Noisy neighbour (SECMP0067): each Service User's offered, achieved, throttled, share and latency; fairness.

The Service User is the originator in the RequestID (``<EUI-64>:<counter>``).
The burst user is the one that sent ``NoisyNeighbour`` rows; the burst
window is the span of those rows' intended send times. SECMP0067's max-min
fair share gives a user below its equal share everything it asks for, so a
quiet user "kept its share" when, inside the burst window, it achieved at
least ``fair_share_min`` (default 0.9) of what it offered. Verdict PASS when
every quiet user with traffic in the window did. Ack and TRT p95 per user
are exact (two streaming passes, :class:`~.quantiles.GroupedQuantiles`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd

from dcc_capacity.report.quantiles import GroupedQuantiles

__all__ = ["COLUMNS", "analyse"]

COLUMNS = ["request_id", "user_class", "intended_ts", "ack_ms", "trt_ms", "outcome"]
_COUNTS = ("requests", "ok", "throttled", "failed", "burst_requests", "burst_ok", "burst_throttled")


def _users(batch: pd.DataFrame, index: dict[str, int]) -> np.ndarray:
    users = batch["request_id"].astype(str).str.split(":", n=1).str[0]
    for u in pd.unique(users):
        if u not in index:
            index[u] = len(index)
    return users.map(index).to_numpy(dtype=np.int64)


def analyse(run: dict[str, Any], batches: Callable[[], Iterator[pd.DataFrame]], start_epoch: float,
            duration_s: float | None, limits: dict[str, Any]) -> dict[str, Any] | None:
    """Per-user table and the fairness verdict; None when the records carry no Service User."""
    index: dict[str, int] = {}
    counts = np.zeros((0, len(_COUNTS)), dtype=np.int64)
    burst_users: set[int] = set()
    lo, hi = np.inf, -np.inf
    # pass 1: where the burst was (NoisyNeighbour rows), who sent it
    for b in batches():
        noisy = (b["user_class"].astype(str) == "NoisyNeighbour").to_numpy()
        if noisy.any():
            it = b["intended_ts"].to_numpy(dtype=float)[noisy]
            lo, hi = min(lo, float(np.nanmin(it))), max(hi, float(np.nanmax(it)))
            burst_users |= set(_users(b[noisy], index).tolist())
    d = float(duration_s or 0.0)
    if not np.isfinite(lo):  # no burst rows: the shape's middle third
        lo, hi = start_epoch + d / 3, start_epoch + 2 * d / 3
    gq = {(m, part): GroupedQuantiles() for m in ("ack_ms", "trt_ms") for part in ("all", "burst")}

    def per_batch(collect: bool) -> None:
        nonlocal counts
        for b in batches():
            if "srv_row" in b.columns:  # one row per SRV attempt (a critical SRV's CV 4 + CV 5 once), as elsewhere
                b = b[b["srv_row"].to_numpy(dtype=bool)]
            ids = b["request_id"].astype(str)
            b = b[ids.str.contains(":", regex=False)]
            if b.empty:
                continue
            u = _users(b, index)
            it = b["intended_ts"].to_numpy(dtype=float)
            inb = (it >= lo) & (it <= hi)
            if not collect:
                outcome = b["outcome"].astype(str).to_numpy()
                ok, thr = outcome == "ok", outcome == "throttled"
                cols = [np.ones(len(u), dtype=bool), ok, thr, ~ok & ~thr, inb, inb & ok, inb & thr]
                counts = np.vstack([counts, np.zeros((len(index) - len(counts), len(_COUNTS)), dtype=np.int64)])
                for j, c in enumerate(cols):
                    counts[:, j] += np.bincount(u[c], minlength=len(index))
            for m in ("ack_ms", "trt_ms"):
                v = b[m].to_numpy(dtype=float, na_value=np.nan)
                for part, mask in (("all", slice(None)), ("burst", inb)):
                    q = gq[(m, part)]
                    (q.collect if collect else q.add)(u[mask], v[mask])

    per_batch(False)
    if not index:
        return None
    for q in gq.values():
        q.plan()
    per_batch(True)
    res = {k: q.result() for k, q in gq.items()}
    window = max(hi - lo, 1e-9)
    total_ok = int(counts[:, 1].sum()) or 1
    burst_ok = int(counts[:, 5].sum()) or 1
    fair_min = float(limits["fair_share_min"])
    users = []
    for name, i in sorted(index.items(), key=lambda kv: kv[1]):
        c = dict(zip(_COUNTS, (int(x) for x in counts[i]), strict=True))
        burst = i in burst_users
        kept = c["burst_ok"] / c["burst_requests"] if c["burst_requests"] else None
        verdict = "burst" if burst else ("no data" if kept is None else ("pass" if kept >= fair_min else "fail"))
        users.append({
            "user": name, "role": "burst" if burst else "quiet", **c,
            "offered_rate": c["requests"] / d if d else None, "achieved_rate": c["ok"] / d if d else None,
            "achieved_share": c["ok"] / total_ok, "burst_offered_rate": c["burst_requests"] / window,
            "burst_achieved_rate": c["burst_ok"] / window, "burst_share": c["burst_ok"] / burst_ok,
            "kept": kept, "ack_p95": res[("ack_ms", "all")].get(i, {}).get("p95"),
            "trt_p95": res[("trt_ms", "all")].get(i, {}).get("p95"),
            "burst_ack_p95": res[("ack_ms", "burst")].get(i, {}).get("p95"),
            "burst_trt_p95": res[("trt_ms", "burst")].get(i, {}).get("p95"), "verdict": verdict})
    judged = [u["verdict"] for u in users if u["role"] == "quiet" and u["verdict"] != "no data"]
    return {"users": users, "burst_window_s": [lo - start_epoch, hi - start_epoch], "fair_share_min": fair_min,
            "burst_users": [u["user"] for u in users if u["role"] == "burst"],
            "verdict": ("fail" if "fail" in judged else "pass") if judged else "no data"}
