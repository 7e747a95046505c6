"""After the load: what the records say about each class's SRV rate and each Service User's share.

The report computes everything else from the same records (``records.iter_records``);
these two go into run.json because they need run-level knowledge: SRVs (not
requests) per class against the target, and the originator in the RequestID.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["rates_from_records", "shares_by_user"]



def _requests(run_dir: Path) -> Any:
    from ..records import load_records, record_files

    if not record_files(run_dir):
        return None
    df = load_records(run_dir)
    return df[df["kind"] == "request"] if "kind" in df.columns else df


def rates_from_records(run_dir: Path) -> tuple[float | None, float | None, dict[str, dict[str, int]]]:
    """(first intended_ts, last intended_ts, {user_class: {requests, ok}}): SRV attempts per class."""
    df = _requests(run_dir)
    if df is None or df.empty:
        return None, None, {}
    counts: dict[str, dict[str, int]] = {}
    # Rates are SRV/s, one per SRV attempt as the report counts them (report/srvfold.py): every attempt of a
    # critical SRV has one CV 4 row (a CV 5 row only when the CV 4 succeeded), and the CV 5 outcome decides.
    label = df["label"].astype(str) if "label" in df.columns else df["user_class"].astype(str).str.slice(0, 0)
    is4, is5 = label.str.endswith(" CV4"), label.str.endswith(" CV5")
    ok = (df["outcome"] == "ok") & ~is4
    for cls, idx in df.groupby("user_class", observed=True).groups.items():
        counts[str(cls)] = {"requests": int((~is5[idx]).sum()), "ok": int(ok[idx].sum())}
    return float(df["intended_ts"].min()), float(df["intended_ts"].max()), counts


def shares_by_user(run_dir: Path) -> dict[str, dict[str, float]]:
    """Per Service User (the RequestID originator): requests, ok, and each one's share of what was achieved."""
    df = _requests(run_dir)
    if df is None or df.empty:
        return {}
    # SRV attempts, as rates_from_records and the report count them: a CV 5 row is its CV 4's attempt (not counted
    # again), an ok CV 4 is not yet an achieved SRV; a CV 4 that failed (throttled...) ended its attempt.
    label = df["label"].astype(str) if "label" in df.columns else df["request_id"].astype(str).str.slice(0, 0)
    is4, is5 = label.str.endswith(" CV4"), label.str.endswith(" CV5")
    df = df.assign(_attempt=~is5, _ok=(df["outcome"] == "ok") & ~is4)
    users = df["request_id"].astype(str).str.split(":", n=1).str[0]
    out: dict[str, dict[str, float]] = {}
    total_ok = int(df["_ok"].sum()) or 1
    for user, g in df.groupby(users):
        if not user:
            continue
        ok, n = int(g["_ok"].sum()), int(g["_attempt"].sum())
        out[str(user)] = {"requests": n, "ok": ok, "throttled": int((g["outcome"] == "throttled").sum()),
                          "achieved_share": ok / total_ok, "ok_ratio": ok / n if n else 0.0}
    return out
