"""After the load: run.json and the report (:func:`finish_run`), and what the records say about each class's
SRV rate and each Service User's share.

The report computes everything else from the same records (``records.iter_records``);
these two go into run.json because they need run-level knowledge: SRVs (not
requests) per class against the target, and the originator in the RequestID.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import platform
import shutil
from pathlib import Path
from typing import Any

__all__ = ["compare_mix", "finish_run", "mix_from_records", "rates_from_records", "shares_by_user"]



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


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _iso(epoch: float) -> str:
    """run.json times for people (the report reads ISO and epoch alike): UTC, milliseconds."""
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat(timespec="milliseconds")


def finish_run(opts: Any, r: Any, started: float, ended: float, failure: str, target: str,
               emulator_t0: float | None = None, watch: Any = None, relay: dict[str, Any] | None = None) -> int:
    """plan.json and run.json from what the run did, then the report; the exit status (0/1 NFRs, 3 failed)."""
    import locust

    from dcc_capacity import __version__
    from dcc_capacity.config.redact import redact_argv
    from dcc_capacity.errors import RunError
    from dcc_capacity.load.operator_log import load_operator_actions
    from dcc_capacity.load.records import record_files
    from dcc_capacity.model.provenance import plan_provenance
    from dcc_capacity.orchestrate.processes import say
    from dcc_capacity.orchestrate.resilience import lost_workers_failure
    from dcc_capacity.orchestrate.scenario_facts import scenario_facts
    from dcc_capacity.report.build import build_report
    from dcc_capacity.spec.resolve import default_test_id
    from dcc_capacity.testtypes.base import FinishContext
    from dcc_capacity.testtypes.registry import get

    out, spec = opts.out, opts.spec
    kind = get(spec.test)
    shape_file = out / "shape.json"  # written by the shape (on the master) into --run-dir
    shape = json.loads(shape_file.read_text()) if shape_file.exists() else None
    first, last, counts = rates_from_records(out)
    start = first if first is not None else started
    duration = kind.duration(spec, shape)
    if failure and last is not None:
        duration = min(duration, max(last - start, 1e-3))
    rates = {cls: {"offered": c["requests"] / duration, "achieved": c["ok"] / duration} for cls, c in counts.items()}
    if opts.nfr is not None:
        shutil.copyfile(opts.nfr, out / "nfr.yaml")
    plan_doc = r.plan.to_dict()
    plan_doc["test_scale"] = {sp: r.plan.profile.test_scale(sp) for sp in ("DSP", "S1SP", "DCO", "CP")}
    plan_doc.update(plan_provenance(r.plan, spec.profile))  # inputs with sources; A7 split by row (alerts)
    if r.mix is not None:  # what the run was to send inside the rates: the records' srv_variant/smets/prepay check it
        plan_doc["mix"] = r.mix.to_dict()
    (out / "plan.json").write_text(json.dumps(plan_doc, indent=2) + "\n")
    targets = dict(r.rates)
    run: dict[str, Any] = {
        "schema_version": 1,
        "test_id": spec.test_id or default_test_id(spec.test),
        "test_name": f"{spec.test.capitalize()}, {spec.sp}, {r.slot}",
        "test_type": spec.test, "sp": spec.sp, "slot": r.slot,
        "status": "incomplete" if failure else "complete",
        "start": _iso(start), "duration_s": duration,
        "profile": {"path": spec.profile, "sha256": _sha256(Path(spec.profile))},
        "command_line": redact_argv(opts.command_line or ["dcc-capacity", "run"]),
        "seed": spec.seed, "target": target,
        "versions": {"dcc_capacity": __version__, "locust": locust.__version__,
                     "python": platform.python_version()},
        "rates": {cls: {"target": targets.get(cls, 0.0), "offered": rates.get(cls, {}).get("offered", 0.0),
                        "achieved": rates.get(cls, {}).get("achieved", 0.0)}
                  for cls in sorted(set(targets) | set(rates))},
        "spec": spec.to_dict(), "workers": opts.workers, "alerts_per_s": r.alerts_per_s,
        "measurement": {"trt_late_s": spec.trt_late_s, "trt_missing_s": spec.trt_missing_s,
                        "drain_s": opts.drain_limit_s,
                        "max_in_flight": spec.max_in_flight, "max_parked_journeys": spec.max_parked},
    }
    if spec.max_send_lag_ms is not None:
        run["validity"] = {"max_send_lag_ms": spec.max_send_lag_ms, "max_send_lag_source": "the user's setting "
                           "(--max-send-lag / DCC_CAPACITY_RUN_MAX_SEND_LAG / run.max_send_lag_ms)"}
    if not failure:
        run["end"] = _iso(ended)
    else:
        run["failure"] = failure
    if opts.audit:
        run["real_environment"] = opts.audit
    if relay is not None:  # --workers: what the callback relay forwarded and refused
        run["callback_relay"] = relay
    if opts.nfr is not None:
        run["nfr_file"] = {"path": str(opts.nfr), "sha256": _sha256(opts.nfr)}
    if shape is not None:
        run["shape"] = shape
    if watch is not None and watch.lost:  # the run finished, without all its load: incomplete, not hidden
        run["status"], run["lost_workers"] = "incomplete", [w.to_dict() for w in watch.lost]
        run["failure"] = "; ".join(x for x in (failure, lost_workers_failure(watch.lost)) if x)
        say(opts, f"run INCOMPLETE: {lost_workers_failure(watch.lost)}")
    actions = load_operator_actions(out)  # who steered the load from the web UI, and when
    if actions:
        run["operator_actions"] = actions
    ctx = FinishContext(out, shape, sum(r.rates.values()), target, opts.host is None,
                        user_shares=lambda: shares_by_user(out))
    kind.finish(spec, run, ctx)  # the type's own run.json sections (stress steps, user shares, negative cases)
    run.update(scenario_facts(spec, r, out, start, emulator_t0))
    if not record_files(out):  # nothing was measured: a failed run (see logs/), not a report to build
        run["status"], run["failure"] = "failed", failure or f"the run wrote no records (see {out / 'logs'})"
        run.pop("end", None)
    (out / "run.json").write_text(json.dumps(run, indent=2, default=float) + "\n")
    if run["status"] == "failed":
        raise RunError(run["failure"].splitlines()[0])
    say(opts, "building the report")
    outcome = build_report(out, baseline_dir=opts.baseline, tolerance_pct=opts.tolerance_pct, progress=lambda m: None)
    say(opts, f"report: {outcome.html}")
    for line in ctx.messages:
        say(opts, line)
    for line in (outcome.summary_doc.get("scenarios") or {}).get("lines", []):
        say(opts, line)
    if failure:
        say(opts, f"run FAILED: {failure}")
        raise RunError(failure.splitlines()[0])
    if not outcome.summary_doc.get("valid", True):
        say(opts, "run INVALID (not evidence): " + "; ".join(outcome.summary_doc.get("invalid_reasons", [])))
    return kind.exit_code(run, outcome.exit_code)
