"""After the load: what the records say about each class's SRV rate and each Service User's share.

The report computes everything else from the same records (``records.iter_records``);
these two go into run.json because they need run-level knowledge: SRVs (not
requests) per class against the target, and the originator in the RequestID.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["compare_mix", "mix_from_records", "rates_from_records", "shares_by_user"]



def _requests(run_dir: Path) -> Any:
    from dcc_capacity.load.records import load_records, record_files

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


def mix_from_records(run_dir: Path) -> dict[str, Any]:
    """The SRV mix a run sent, from its records: the same shares ``plan --mix`` gives (srvmix.SrvMix.to_dict).

    Counted per SRV attempt, as the report counts them (a critical SRV's CV 5 row is its CV 4's attempt, not a
    second SRV; dropped arrivals sent nothing). ``smets`` and ``prepay`` are the records' own columns.
    """
    from dcc_capacity.model.srvmix import CLASS_ROWS, TOPUP_VARIANT

    df = _requests(run_dir)
    if df is None or df.empty:
        return {"srvs": 0}
    sent = df[(df["srv_variant"].astype(str) != "") & ~df["label"].astype(str).str.endswith(" CV5")]
    n = len(sent)
    if not n:
        return {"srvs": 0}
    classes = (sent["user_class"].astype(str).value_counts() / n).to_dict()
    rows: dict[str, float] = {}
    for cls, share in classes.items():
        rows[CLASS_ROWS.get(cls, cls)] = rows.get(CLASS_ROWS.get(cls, cls), 0.0) + share
    bau = sent[sent["user_class"].astype(str).map(lambda c: CLASS_ROWS.get(c) == "bau")]
    topups = int(((bau["user_class"] == "Bau") & (bau["srv_variant"] == TOPUP_VARIANT)).sum())
    smets = sent["smets"] if "smets" in sent.columns else None
    return {
        "srvs": n,
        "classes": classes,
        "rows": rows,
        "srv_shares": (sent["srv_variant"].astype(str).value_counts() / n).to_dict(),
        "smets1_share": float((smets == 1).mean()) if smets is not None else None,
        "smets_recorded": float((smets > 0).mean()) if smets is not None else 0.0,
        "prepay_share": float(sent["prepay"].astype(bool).mean()) if "prepay" in sent.columns else None,
        "topup_share": topups / len(bau) if len(bau) else 0.0,
        "bau_srvs": len(bau),
    }


def compare_mix(plan: dict[str, Any], measured: dict[str, Any]) -> dict[str, Any]:
    """Plan (``SrvMix.to_dict()``) against records (:func:`mix_from_records`): differences in percentage points."""
    rows = set(plan.get("rows", {})) | set(measured.get("rows", {}))
    row_pp = {r: 100 * (measured.get("rows", {}).get(r, 0.0) - plan.get("rows", {}).get(r, 0.0)) for r in rows}
    srvs = set(plan.get("srvs", {})) | set(measured.get("srv_shares", {}))
    srv_pp = {v: 100 * (measured.get("srv_shares", {}).get(v, 0.0) - plan.get("srvs", {}).get(v, {}).get("share", 0.0))
              for v in srvs}
    return {
        "srvs": measured.get("srvs", 0),
        "rows_pp": dict(sorted(row_pp.items())),
        "max_row_pp": max((abs(v) for v in row_pp.values()), default=0.0),
        "max_srv_pp": max((abs(v) for v in srv_pp.values()), default=0.0),
        "smets1_plan": plan.get("smets1_share"), "smets1_measured": measured.get("smets1_share"),
        "smets1_pp": 100 * ((measured.get("smets1_share") or 0.0) - (plan.get("smets1_share") or 0.0)),
        "prepay_plan": plan.get("prepay_share"), "prepay_measured": measured.get("prepay_share"),
        "prepay_pp": 100 * ((measured.get("prepay_share") or 0.0) - (plan.get("prepay_share") or 0.0)),
        "topup_plan": plan.get("topup_share", {}).get("value"), "topup_measured": measured.get("topup_share"),
        "topup_pp": 100 * ((measured.get("topup_share") or 0.0) - (plan.get("topup_share", {}).get("value") or 0.0)),
        "bau_srvs": measured.get("bau_srvs", 0),
    }
