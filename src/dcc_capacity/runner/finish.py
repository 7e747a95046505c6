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
    users = df["request_id"].astype(str).str.split(":", n=1).str[0]
    out: dict[str, dict[str, float]] = {}
    total_ok = int((df["outcome"] == "ok").sum()) or 1
    for user, g in df.groupby(users):
        if not user:
            continue
        ok = int((g["outcome"] == "ok").sum())
        out[str(user)] = {"requests": int(len(g)), "ok": ok, "throttled": int((g["outcome"] == "throttled").sum()),
                          "achieved_share": ok / total_ok, "ok_ratio": ok / len(g)}
    return out
