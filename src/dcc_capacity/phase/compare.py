"""`phase compare OLD NEW`: what changed between two test phases, which evidence carries over, what regressed.

Why: SCTAD 3.3 lets the DCC rely on earlier evidence (MOC on IOC's, FOC on
IOC's and MOC's) where the earlier testing met the later phase's requisite
levels and "there has been no change that might affect the previous test
results"; the consultation response (5.1.2) adds that where "components,
solution or volumes are unchanged" existing results are relied on, and new
ones are tested. So the comparison lists exactly those changes: profile
inputs (volumes), NFRs, the system under test's version and the suite's, and
the results, test by test; and says for each test of NEW whether OLD's
evidence carries over, and why not when it does not.

A regression: an NFR result that passed in OLD fails in NEW, a run that was
evidence in OLD is not in NEW, or, like for like (the same offered rate
within 10 %), a headline figure (ack / TRT p95, failure rate, achieved share
of offered) worse by more than the tolerance. A figure worse at a higher
offered rate (the later phase's larger volumes) is shown, not flagged: the
NFR verdicts judge it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dcc_capacity.phase.evidence import PhaseEvidence, load_phase

__all__ = ["compare_phases", "render_text"]

_FLOOR_MS = 20.0
"""A latency change smaller than this is noise on any test box, whatever the percentage."""


def _diff(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a != b:
            out.append({"key": key, "old": a, "new": b,
                        "change": "added" if key not in old else "removed" if key not in new else "changed"})
    return out


def _inputs(ev: PhaseEvidence) -> dict[str, Any]:
    return {k: (v or {}).get("value") for k, v in (ev.manifest.get("inputs") or {}).items()}


def _nfrs(ev: PhaseEvidence) -> dict[str, Any]:
    return {n.id: f"{n.what} [{n.scope_text}] {n.op} {n.threshold:g}" if n.threshold is not None
            else f"{n.what} external" for n in ev.catalogue.nfrs}


def _traces(ev: PhaseEvidence) -> dict[str, str]:
    """Test id -> the NFRs it must prove (a test may keep its id and lose or gain an NFR)."""
    return {t.id: ", ".join(t.nfr_ids) for t in ev.planned}


def _sut(ev: PhaseEvidence) -> dict[str, Any]:
    targets = sorted({str((r.run or {}).get("target")) for r in ev.runs if r.run})
    versions = sorted({str(((r.run or {}).get("versions") or {}).get("sut")) for r in ev.runs
                       if ((r.run or {}).get("versions") or {}).get("sut")})
    return {"sut_version": ev.plan.model.sut_version or None, "sut_reported": ", ".join(versions) or None,
            "targets": ", ".join(targets) or None}


def _suite(ev: PhaseEvidence) -> dict[str, Any]:
    runs = sorted({str(((r.run or {}).get("versions") or {}).get("dcc_capacity")) for r in ev.runs if r.run})
    return {"dcc_capacity": (ev.manifest.get("versions") or {}).get("dcc_capacity"),
            "runs_made_with": ", ".join(runs) or None}


def _headline(s: dict[str, Any]) -> dict[str, float | None]:
    def num(x: Any) -> float | None:
        return float(x) if isinstance(x, (int, float)) else None

    offered, achieved = num(s.get("offered_rate")), num(s.get("achieved_rate"))
    return {"ack_p95_ms": num((s.get("ack_ms") or {}).get("p95")),
            "trt_p95_ms": num((s.get("trt_ms") or {}).get("p95")),
            "failure_rate": num(s.get("failure_rate")),
            "achieved_share": achieved / offered if offered and achieved is not None else None}


def _worse(metric: str, old: float | None, new: float | None, tol: float) -> bool:
    if old is None or new is None:
        return False
    if metric == "achieved_share":
        return new < old * (1 - tol)
    if metric == "failure_rate":
        return new > old * (1 + tol) and new - old > 0.001
    return new > old * (1 + tol) and new - old > _FLOOR_MS


def compare_phases(old_dir: str | Path, new_dir: str | Path, *, tolerance_pct: float = 10.0) -> dict[str, Any]:
    """The comparison as one JSON-able document (``render_text`` prints it for people)."""
    old, new = load_phase(old_dir), load_phase(new_dir)
    tol = tolerance_pct / 100.0
    changes = {
        "profile_inputs": _diff(_inputs(old), _inputs(new)),
        "nfrs": _diff(_nfrs(old), _nfrs(new)),
        "tests": _diff(_traces(old), _traces(new)),
        "sut": _diff(_sut(old), _sut(new)),
        "suite": _diff(_suite(old), _suite(new)),
        "capability": _diff({"capability": old.plan.model.capability, "sp": old.plan.model.sp},
                            {"capability": new.plan.model.capability, "sp": new.plan.model.sp}),
    }
    old_runs = {r.run_id: r for r in old.runs}
    results, regressions = [], []
    for r in new.runs:
        o = old_runs.get(r.run_id)
        row: dict[str, Any] = {"run_id": r.run_id, "test_id": r.test.id, "old": o.verdict if o else "absent",
                               "new": r.verdict, "metrics": {}}
        if o is not None and o.summary and r.summary:
            a, b = _headline(o.summary), _headline(r.summary)
            ra, rb = o.summary.get("offered_rate"), r.summary.get("offered_rate")
            # Like for like: the same offered rate (within 10 %). Worse latency at a higher rate (a later phase's
            # larger volumes) is shown, but it is not a regression of the system; the NFR verdicts judge it.
            like = isinstance(ra, (int, float)) and isinstance(rb, (int, float)) and ra > 0 and abs(rb - ra) / ra <= 0.1
            row["like_for_like"] = like
            row["offered"] = {"old": ra, "new": rb}
            for k in a:
                worse = _worse(k, a[k], b[k], tol)
                row["metrics"][k] = {"old": a[k], "new": b[k], "worse": worse, "regressed": worse and like}
                if worse and like:
                    regressions.append({"run_id": r.run_id, "what": k, "old": a[k], "new": b[k]})
        if o is not None and o.is_evidence and not r.is_evidence:
            regressions.append({"run_id": r.run_id, "what": "run", "old": o.verdict, "new": r.verdict})
        results.append(row)
    old_res = {(x.run.run_id, x.test_id, x.nfr.id): x.status for x in old.results if x.run is not None}
    for x in new.results:
        if x.run is None:
            continue
        before = old_res.get((x.run.run_id, x.test_id, x.nfr.id))
        if before == "pass" and x.status in ("fail", "no data"):
            regressions.append({"run_id": x.run.run_id, "what": f"{x.test_id}.{x.nfr.id}", "old": before,
                                "new": x.status})
    carry = _carry_over(old, new, changes)
    return {"old": {"path": str(old.path), "phase": old.plan.model.phase, "capability": old.plan.model.capability},
            "new": {"path": str(new.path), "phase": new.plan.model.phase, "capability": new.plan.model.capability},
            "tolerance_pct": tolerance_pct, "changes": changes, "results": results, "regressions": regressions,
            "carry_over": carry}


def _carry_over(old: PhaseEvidence, new: PhaseEvidence, changes: dict[str, Any]) -> list[dict[str, Any]]:
    """Per test of NEW: may OLD's evidence be relied on (SCTAD 3.3)? Every reason it may not is listed."""
    nfr_changed = {c["key"] for c in changes["nfrs"]}
    out = []
    for t in new.planned:
        reasons = []
        olds = [r for r in old.runs_for(t.id) if r.is_evidence]
        if not olds:
            reasons.append("no complete, valid run of it in OLD")
        elif old.test_verdict(t.id) != "pass":
            reasons.append(f"OLD's result was {old.test_verdict(t.id)}")
        if changes["sut"]:
            reasons.append("the system under test changed (" + ", ".join(c["key"] for c in changes["sut"]) + ")")
        touched = sorted(nfr_changed & set(t.nfr_ids))
        if touched:
            reasons.append(f"its NFRs changed: {', '.join(touched)}")
        if t.id in {c["key"] for c in changes["tests"]}:
            reasons.append("the NFRs it must prove changed")
        for slot_row in _levels(new):
            slot, need = slot_row
            tested = max((r.tested[slot] for r in olds if slot in r.tested), default=None)
            if tested is not None and need is not None and tested < need * 0.98:
                reasons.append(f"OLD tested {slot} at {tested:.2f} SRV/s, below NEW's required {need:.2f}")
        out.append({"test_id": t.id, "carries_over": not reasons, "reasons": reasons,
                    "old_runs": [r.run_id for r in olds]})
    return out


def _levels(ev: PhaseEvidence) -> list[tuple[str, float | None]]:
    """(slot, the suite's part of Table A7) of the phase's SP: the requisite level each slot must be tested to."""
    vol = ev.manifest.get("volume") or {}
    sp = ev.plan.model.sp
    out = []
    for slot in ("night", "day", "evening"):
        req = ((vol.get("A7") or {}).get(sp) or {}).get(slot)
        alerts = ((((vol.get("A7_rows") or {}).get(sp) or {}).get(slot)) or {}).get("alerts") or 0.0
        out.append((slot, req - alerts if req is not None else None))
    return out


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.6g}"
    return "–" if v is None else str(v)


def render_text(doc: dict[str, Any]) -> str:
    """The comparison for a terminal: changes, results, carry-over and regressions, in that order."""
    lines = [f"Phase comparison: {doc['old']['phase']} ({doc['old']['capability']}) -> "
             f"{doc['new']['phase']} ({doc['new']['capability']})", ""]
    titles = {"capability": "Capability / SP", "profile_inputs": "Profile inputs (volumes)", "nfrs": "NFRs",
              "tests": "Tests and the NFRs they prove",
              "sut": "System under test", "suite": "Suite version"}
    for key, title in titles.items():
        items = doc["changes"][key]
        lines.append(f"{title}: {'unchanged' if not items else f'{len(items)} changed'}")
        for c in items:
            lines.append(f"  {c['change']:8} {c['key']}: {_fmt(c['old'])} -> {_fmt(c['new'])}")
    lines += ["", "Results (run: OLD -> NEW):"]
    for r in doc["results"]:
        flag = " REGRESSION" if any(m["regressed"] for m in r["metrics"].values()) else ""
        if r.get("offered") and not r.get("like_for_like"):
            flag += f" (offered {_fmt(r['offered']['old'])} -> {_fmt(r['offered']['new'])} SRV/s: not like for like)"
        figs = "; ".join(f"{k} {_fmt(m['old'])} -> {_fmt(m['new'])}{' (worse)' if m['worse'] else ''}"
                         for k, m in r["metrics"].items())
        head = f"  {r['run_id']} [{r['test_id']}]: {r['old']} -> {r['new']}{flag}"
        lines.append(head + (f"  {figs}" if figs else ""))
    lines += ["", "Evidence carried over (SCTAD 3.3):"]
    for c in doc["carry_over"]:
        lines.append(f"  {c['test_id']}: " + ("carries over from " + ", ".join(c["old_runs"]) if c["carries_over"]
                                              else "retest: " + "; ".join(c["reasons"])))
    lines.append("")
    if doc["regressions"]:
        lines.append(f"REGRESSIONS ({len(doc['regressions'])}, tolerance {doc['tolerance_pct']:g} %):")
        lines += [f"  {g['run_id']}: {g['what']} {_fmt(g['old'])} -> {_fmt(g['new'])}" for g in doc["regressions"]]
    else:
        lines.append(f"No regression (tolerance {doc['tolerance_pct']:g} %).")
    return "\n".join(lines)
