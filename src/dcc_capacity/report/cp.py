"""CP mode's report section: migrations per day, file timings and outcomes, from the devices' records.

Why a section of its own: SCTAD 3.4(b) tests the Commissioning Party "in
migrations per day", and its work is files, not SRVs. Everything here comes
from ``<run>/cp/devices-*.csv`` (load/users/cp.py: one row per device and
attempt, with the measured send and arrival times, never planned ones) and
from the run folder's plan.json and run.json:

- rates: installations and devices sent per second (from the Commissioning
  Requests' send times: the batches sent before the last one over the span
  from the first to the last send, so the edge of the window does not bias
  it), as per hour and per day; devices commissioned per day; per UTC hour;
- the plan: Table A7's CP row (plan.json ``A7_rows``) over each row's journey
  length is installations/s; the run's target (run.json) is that, scaled;
- file timings: upload of the Migration Common File to the Commissioning
  Outcome File read back, and Commissioning Request to acknowledgement;
- outcomes: commissioned, fallout, reprocessed (and of those commissioned).

The CP NFRs of the run's catalogue (``NFR-CP-*``, metric ``external``: the
CP's example catalogue volume_profiles/nfr-cp.yaml) are judged here and
handed to the traceability matrix as external results of the run's test.
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dcc_capacity.model.cpmigration import CP_CLASS, CP_NFRS
from dcc_capacity.report.required import SHORTFALL_TOLERANCE

__all__ = ["apply", "extrapolation", "out_of_scope", "planned_per_s", "load_devices", "required_row", "section"]

DAY_S = 86_400.0
_MIGRATION_ROWS = ("s1_migration_credit", "s1_migration_prepay")


def load_devices(run_dir: str | Path) -> pd.DataFrame:
    """Every device row of the run's ``cp/devices-*.csv`` (empty frame when there are none)."""
    files = sorted((Path(run_dir) / "cp").glob("devices-*.csv"))
    frames = [pd.read_csv(f, dtype={"reason": str, "installation": str}, keep_default_na=False,
                          na_values={c: ["nan"] for c in ("cr_sent_ts", "ack_ts", "upload_ts", "cof_ts")})
              .assign(process=f.stem.removeprefix("devices-")) for f in files]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame()
    rows = pd.concat(frames, ignore_index=True)  # a device's PENDING row, then its outcome: the last one counts
    return rows.drop_duplicates(["migration_id", "attempt", "device_id"], keep="last").reset_index(drop=True)


def _pct(values: pd.Series) -> dict[str, Any]:
    v = values.dropna().to_numpy(dtype=float)
    if not len(v):
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
    return {"n": int(len(v)), **{f"p{q}": float(np.percentile(v, q)) for q in (50, 95, 99)}, "max": float(v.max())}


def planned_per_s(plan: dict[str, Any] | None, slot: str | None) -> float | None:
    """Installations/s Table A7's CP row asks in ``slot``: each migration row's SRV/s over its journey length."""
    rows = (((plan or {}).get("A7_rows") or {}).get("CP") or {}).get(slot or "")
    journeys = ((plan or {}).get("mix") or {}).get("journeys") or {}
    if not rows:
        return None
    total = 0.0
    for row in _MIGRATION_ROWS:
        srvs = (journeys.get(row) or {}).get("srvs") or []
        if rows.get(row) and srvs:
            total += float(rows[row]) / len(srvs)
    return total


def _one_stream(times: pd.Series, counts: pd.Series) -> tuple[float | None, float | None]:
    order = times.dropna().sort_values()
    if len(order) < 2 or order.iloc[-1] <= order.iloc[0]:
        return None, None
    span = float(order.iloc[-1] - order.iloc[0])
    return float(counts.loc[order.index[:-1]].sum() / span), span


def _span_rate(per: pd.DataFrame, time_col: str, count_col: str) -> tuple[float | None, float | None]:
    """(per second, span s) of events: in each load process's stream, every count but the last event's over its
    first-to-last span (so the window's edges do not bias it), summed over the processes; the processes' streams
    are each evenly spaced, merged they are not. Falls back to the merged stream if a process sent only once."""
    rates, spans = [], []
    for _, g in per.groupby("process"):
        r, span = _one_stream(g[time_col], g[count_col])
        if r is None:
            return _one_stream(per[time_col], per[count_col])
        rates.append(r)
        spans.append(span or 0.0)
    return (float(sum(rates)), float(max(spans))) if rates else (None, None)


def _rate(df: pd.DataFrame) -> dict[str, Any]:
    """Installations and devices sent per second (Commissioning Requests' send times), devices commissioned per
    second (first Commissioning Outcome File's arrival; reprocessed devices counted with their migration)."""
    first = df[df["attempt"] == 0]
    per = first.groupby("migration_id").agg(t=("cr_sent_ts", "min"), cof=("cof_ts", "min"),
                                            process=("process", "first"), devices=("device_id", "size"),
                                            installations=("installation", "nunique"))
    final = df.sort_values("attempt").groupby("device_id").last()
    done = final[final["outcome"] == "COMMISSIONED"]
    base = done["migration_id"].str.removesuffix("-R")
    per["commissioned"] = base.value_counts().reindex(per.index, fill_value=0)
    ips, span = _span_rate(per, "t", "installations")
    dps, _ = _span_rate(per, "t", "devices")
    cps, _ = _span_rate(per, "cof", "commissioned")
    return {"migrations": int(len(per)), "span_s": span, "installations_per_s": ips, "devices_per_s": dps,
            "commissioned_per_s": cps,
            "devices_per_installation": float(per["devices"].sum() / per["installations"].sum()) if len(per) else None}


def _outcomes(df: pd.DataFrame, end_ts: float | None) -> dict[str, int]:
    """Device counts; ``pending``: the run ended before the answer came. Fallout whose outcome came after the
    load ended (or whose reprocessing was still awaited) could not be reprocessed (nothing is sent after the end)
    and is counted apart, not against the CP."""
    first, tried = df[df["attempt"] == 0], df[df["attempt"] == 1]
    again = tried[tried["outcome"] != "PENDING"]
    fallout = first[(first["outcome"] == "FAILED") & (first["reason"] == "MIGRATION_FALLOUT")]
    late = fallout[fallout["cof_ts"] > end_ts] if end_ts is not None else fallout.iloc[:0]
    late_ids = set(late["device_id"]) | set(tried.loc[tried["outcome"] == "PENDING", "device_id"])
    reprocessed = again[again["device_id"].isin(fallout["device_id"])]
    final = df.sort_values("attempt").groupby("device_id").last()
    return {
        "devices": int(first["device_id"].nunique()),
        "commissioned_first": int((first["outcome"] == "COMMISSIONED").sum()),
        "fallout": int(len(fallout)),
        "failed_other": int(((first["outcome"] == "FAILED") & (first["reason"] != "MIGRATION_FALLOUT")).sum()),
        "no_outcome": int((first["outcome"] == "NO_OUTCOME").sum()),
        "pending": int((first["outcome"] == "PENDING").sum()),
        "reprocessed": int(reprocessed["device_id"].nunique()),
        "reprocessed_commissioned": int((reprocessed["outcome"] == "COMMISSIONED").sum()),
        "reprocessed_failed": int((reprocessed["outcome"] != "COMMISSIONED").sum()),
        "not_reprocessed": int(len(set(fallout["device_id"]) - set(reprocessed["device_id"]) - late_ids)),
        "fallout_after_end": int(len((late_ids & set(fallout["device_id"])) - set(reprocessed["device_id"]))),
        "commissioned_final": int((final["outcome"] == "COMMISSIONED").sum()),
    }


def _per_hour(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Devices commissioned per UTC clock hour (by the Commissioning Outcome File's arrival)."""
    done = df[(df["outcome"] == "COMMISSIONED") & df["cof_ts"].notna()]
    if done.empty:
        return []
    hours = pd.to_datetime(done["cof_ts"], unit="s", utc=True).dt.floor("h")
    counts = hours.value_counts().sort_index()
    return [{"hour": h.strftime("%Y-%m-%d %H:00Z"), "devices": int(n)} for h, n in counts.items()]


def section(run: dict[str, Any], plan: dict[str, Any] | None, run_dir: str | Path) -> dict[str, Any] | None:
    """The CP section of a CP-mode run (None for any other run)."""
    if run.get("sp") != "CP" or run.get("test_type") == "negative":
        return None
    df = load_devices(run_dir)
    slot = run.get("slot")
    target = ((run.get("rates") or {}).get(CP_CLASS) or {}).get("target")
    planned = planned_per_s(plan, slot)
    out: dict[str, Any] = {"slot": slot, "planned_per_s": planned, "target_per_s": target, "present": not df.empty,
                           "batch": None}
    if df.empty:
        return out
    first = df[df["attempt"] == 0]
    rate = _rate(df)
    duration = float(run.get("duration_s") or 0) or None
    start = _epoch(run.get("start"))
    outcomes = _outcomes(df, start + duration if start is not None and duration else None)
    per_mig = df.groupby(["migration_id", "attempt"]).agg(upload=("upload_ts", "min"), cof=("cof_ts", "min"),
                                                         cr=("cr_sent_ts", "min"), ack=("ack_ts", "min")).reset_index()
    timings = {
        "upload_to_cof_ms": _pct((per_mig["cof"] - per_mig["upload"])[per_mig["attempt"] == 0] * 1000),
        "reprocess_upload_to_cof_ms": _pct((per_mig["cof"] - per_mig["upload"])[per_mig["attempt"] == 1] * 1000),
        "cr_to_ack_ms": _pct((per_mig["ack"] - per_mig["cr"])[per_mig["attempt"] == 0] * 1000),
    }
    ips = rate["installations_per_s"]
    dpi = rate["devices_per_installation"]
    out.update({
        "batch": float(first.groupby("migration_id")["installation"].nunique().mean()),
        "rate": rate, "timings": timings, "outcomes": outcomes, "per_hour": _per_hour(df),
        "installations_per_day": ips * DAY_S if ips is not None else None,
        **{f"{what}_per_{unit}": rate[f"{what}_per_s"] * secs if rate[f"{what}_per_s"] is not None else None
           for what in ("devices", "commissioned") for unit, secs in (("hour", 3600.0), ("day", DAY_S))},
        "planned_installations_per_day": target * DAY_S if target else None,
        "planned_devices_per_day": target * DAY_S * dpi if target and dpi else None,
        "achieved_ratio": ips / target if ips is not None and target else None,
    })
    return out


def _epoch(iso: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(iso).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def required_row(sec: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """Required versus tested (report/required.py's row) in the CP's unit, installations/s."""
    planned, tested = sec.get("planned_per_s"), (sec.get("rate") or {}).get("installations_per_s")
    row: dict[str, Any] = {"sp": "CP", "slot": sec.get("slot"), "required": planned, "alerts": None,
                           "suite_part": planned, "tested": tested, "ratio": None, "met": None,
                           "normal": bool((run.get("spec") or {}).get("normal")), "unit": "installations/s"}
    if planned is None or tested is None:
        row["note"] = ("Required rate unknown (no Table A7 CP row in plan.json) or fewer than two migrations sent: "
                       "no rate measured.")
        return row
    row["ratio"] = tested / planned if planned > 0 else None
    row["met"] = bool(planned <= 0 or tested >= planned * (1 - SHORTFALL_TOLERANCE))
    said = (f"Tested at {tested:.3f} installations/s ({tested * DAY_S:,.0f} a day; measured from the Commissioning "
            f"Requests' send times), {row['ratio'] or 0:.2f}x of the {planned:.3f} installations/s "
            f"({planned * DAY_S:,.0f} a day) Table A7's CP row asks in the {sec.get('slot')} slot (its SRV/s over "
            "each migration journey's length)")
    row["note"] = said + ("." if row["met"] else ": a PASS here does not show the required rate is met.")
    return row


def _result(nfr: Any, measured: float | None, test_id: str) -> dict[str, Any]:
    ok = measured is not None and not math.isnan(measured) and nfr.passes(measured)
    return {"id": nfr.id, "test_id": test_id, "measured": measured, "threshold": nfr.threshold, "pass": ok,
            "evidence": f"cp-{nfr.id}"}


def apply(folder: Any) -> dict[str, Any] | None:
    """Compute the section and judge the catalogue's CP NFRs (volume_profiles/nfr-cp.yaml) as external results
    of the run's own test, so the traceability matrix, summary.json and junit.xml carry them."""
    sec = section(folder.run, folder.plan, folder.path)
    if sec is None:
        return None
    test_id = str(folder.run.get("test_id", ""))
    test = next((t for t in folder.tests if t.id == test_id), None)  # not in the catalogue: every NFR applies
    nfrs = {n.id: n for n in folder.nfrs if n.id in CP_NFRS and n.metric == "external"
            and (test is None or n.id in test.nfr_ids)}
    o = sec.get("outcomes") or {}
    measured = {
        "NFR-CP-RATE": sec.get("achieved_ratio"),
        "NFR-CP-FILE-P95": ((sec.get("timings") or {}).get("upload_to_cof_ms") or {}).get("p95"),
        "NFR-CP-REPROCESS": (o["reprocessed_commissioned"] / (o["fallout"] - o["fallout_after_end"])
                             if o.get("fallout", 0) > o.get("fallout_after_end", 0) else None),
    }
    results = [_result(nfrs[nid], measured[nid], test_id) for nid in CP_NFRS if nid in nfrs]
    folder.external_results = [r for r in folder.external_results
                               if not (r.get("id") in nfrs and r.get("test_id") == test_id)] + results
    sec["nfrs"] = [{**r, "text": nfrs[r["id"]].text, "source": nfrs[r["id"]].source} for r in results]
    return sec


def extrapolation(ex: dict[str, Any], sec: dict[str, Any], all_pass: bool) -> dict[str, Any]:
    """6.3.6 in the CP's unit: the planned and measured installations/s instead of Table A7's SRV/s and the
    file operations' req/s (the two are not comparable); the rest (test_scale, peak CPU) as measured."""
    planned, ips = sec.get("planned_per_s"), (sec.get("rate") or {}).get("installations_per_s")
    scale = ex.get("test_scale")
    capacity = ips if all_pass and ips else None
    headroom = capacity / planned if capacity and planned else None
    out = {**ex, "unit": "installations/s", "required_test": planned,
           "required_production": planned / scale if planned is not None and scale else None,
           "capacity_test": capacity,
           "basis": ("installations/s sent with all NFRs met, from the Commissioning Requests' send times (a lower "
                     "bound)") if capacity else "no rate at which all NFRs were met",
           "capacity_production": capacity / scale if capacity and scale else None, "headroom": headroom,
           # within the 2 % the required-vs-tested line allows: a load test's lower bound IS the offered rate
           "met": bool(headroom is not None and headroom >= 1.0 - SHORTFALL_TOLERANCE and all_pass)}
    old = ex.get("capacity_test")
    if ex.get("cpu_bound_capacity") is not None:
        out["cpu_bound_capacity"] = ex["cpu_bound_capacity"] * capacity / old if capacity and old else None
    return out


def out_of_scope(items: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The report's out-of-scope list for a CP run: its load is files over SFTP, not DUIS."""
    return [("SFTP file interface only", "Load is offered as migration files over the CP's SFTP (SCTAD 3.4(b)); "
             "the DSP, the S1SP and the installers are simulated by the suite, their own capacity is not tested.")
            if name == "DUIS interface only" else (name, why) for name, why in items]
