"""After the load: what the records say about rates, shares and the report's input.

``export_records_for_report`` is a bridge: the report reads ``records/*.csv``
(or ``records.iter_records`` once the records module offers it), while the
load processes write Arrow streams. Until the report reads Arrow itself, the
run writes one CSV of folded request rows beside the Arrow files; when
``dcc_capacity.records.iter_records`` exists, nothing is exported.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

__all__ = ["export_records_for_report", "rates_from_records", "shares_by_user"]

REPORT_COLUMNS = ["process_id", "request_id", "user_class", "srv_variant", "step", "intended_ts", "sent_ts",
                  "ack_ts", "ack_ms", "ack_code", "callback_ts", "trt_ms", "response_code", "outcome", "error"]


def _requests(records_dir: Path) -> Any:
    from ..records import load_records

    if not any(records_dir.glob("*.arrows")):
        return None
    df = load_records(records_dir)
    return df[df["kind"] == "request"] if "kind" in df.columns else df


def rates_from_records(records_dir: Path) -> tuple[float | None, float | None, dict[str, dict[str, int]]]:
    """(first intended_ts, last intended_ts, {user_class: {requests, ok}}): SRVs per class (CV 4 rows left out)."""
    df = _requests(records_dir)
    if df is None or df.empty:
        return None, None, {}
    counts: dict[str, dict[str, int]] = {}
    # Rates are SRV/s: a critical SRV's CV 4 (Transform) row is the first half of one SRV, not another one.
    srvs = df[~df["label"].astype(str).str.endswith(" CV4")] if "label" in df.columns else df
    for cls, g in srvs.groupby("user_class", observed=True):
        counts[str(cls)] = {"requests": int(len(g)), "ok": int((g["outcome"] == "ok").sum())}
    return float(df["intended_ts"].min()), float(df["intended_ts"].max()), counts


def shares_by_user(records_dir: Path) -> dict[str, dict[str, float]]:
    """Per Service User (the RequestID originator): requests, ok, and each one's share of what was achieved."""
    df = _requests(records_dir)
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


def export_records_for_report(run_dir: Path, start: float, step_s: float | None) -> Path | None:
    """Write ``records/requests.csv`` (the report's columns) unless the report can read the Arrow records."""
    from .. import records as records_mod

    if hasattr(records_mod, "iter_records"):
        return None
    df = _requests(run_dir / "records")
    path = run_dir / "records" / "requests.csv"
    if df is None:
        path.write_text(",".join(REPORT_COLUMNS) + "\n")
        return path
    df = df.rename(columns={"process": "process_id"}).copy()
    if step_s:
        df["step"] = ((df["intended_ts"] - start) // step_s).clip(lower=0).astype("Int64")
    else:
        df["step"] = None
    df["outcome"] = df["outcome"].astype(str).replace({"pending": "missing"})
    for col in REPORT_COLUMNS:
        if col not in df.columns:
            df[col] = math.nan
    df[REPORT_COLUMNS].to_csv(path, index=False)
    return path
