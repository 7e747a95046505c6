"""`phase report DIR`: one System Capacity Testing Completion Report for a whole phase (SCTAD 6.3).

Why one report over all runs: the exit criteria (SCTAD 4.2) are judged per
phase: "all planned tests executed" can never be met by one run folder, and
the Test Traceability Matrix must lead from each NFR to every test and run
that proves it. The report is one self-contained HTML file (no script, no
external reference), whose per-run sections carry each run's essentials so it
reads on its own; each run's full report is linked beside them.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dcc_capacity import __version__
from dcc_capacity.errors import InputError
from dcc_capacity.model.provenance import PROJECT_DEFAULT, is_project_default
from dcc_capacity.phase.evidence import PhaseEvidence, load_phase, provenance_rows
from dcc_capacity.report.build import OUT_OF_SCOPE
from dcc_capacity.report.outputs import write_json
from dcc_capacity.report.render import template_environment
from dcc_capacity.report.traceability import anchor

__all__ = ["PhaseOutcome", "build_phase_report", "print_pdf", "exit_criteria", "risks"]

REPORT_FILE = "phase-report.html"
SUMMARY_FILE = "phase-summary.json"


@dataclass
class PhaseOutcome:
    html: Path
    summary: Path
    exit_code: int
    """0 every exit criterion met; 1 otherwise."""
    doc: dict[str, Any]


def _issues(ev: PhaseEvidence) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Open issues over the phase (each run's issues.yaml + one per failed result) against the thresholds."""
    from dcc_capacity.report.issues import load_issues

    issues: list[dict[str, Any]] = []
    for r in ev.runs:
        if r.folder.is_dir():
            for i in load_issues(r.folder / "issues.yaml"):
                if i.status == "open":
                    issues.append({"id": i.id, "severity": i.severity, "title": i.title, "run": r.run_id})
    for res in ev.results:
        if res.status in ("fail", "no data"):
            issues.append({"id": f"AUTO-{res.id}", "severity": res.nfr.severity, "run": res.run.run_id if res.run
                           else None, "title": f"{res.nfr.id} {res.status} in {res.test_id}", "href": res.anchor})
    rows = []
    limits: dict[int, int] = {k: v for k, v in ev.catalogue.issue_thresholds.items()}  # any severity may be open
    for sev in sorted(set(limits) | {int(i["severity"]) for i in issues}):
        count = sum(1 for i in issues if int(i["severity"]) == sev)
        rows.append({"severity": sev, "open": count, "threshold": limits.get(sev, 0),
                     "ok": count <= limits.get(sev, 0)})
    return issues, rows


def exit_criteria(ev: PhaseEvidence, issue_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """SCTAD 4.2's four exit criteria judged over the whole phase; approvals stay the DCC's and the TAB's."""
    not_evidence = [r.run_id for r in ev.runs if not r.is_evidence]
    failed = sorted({r.test_id for r in ev.results if r.status in ("fail", "no data")})
    unconfirmed = [c.id for c in ev.plan.model.entry_criteria if not (c.confirmed_by and c.confirmed_at)]
    ec1_ok = not not_evidence and not failed and not unconfirmed
    ec1 = []
    ec1.append("every run complete and valid" if not not_evidence else f"runs not evidence: {', '.join(not_evidence)}")
    ec1.append("every judged NFR met" if not failed else f"NFRs not met in: {', '.join(failed)}")
    ec1.append("entry criteria (SCTAD 4.1) confirmed" if not unconfirmed
               else f"entry criteria not confirmed: {', '.join(unconfirmed)}")
    untraced = [n.id for n in ev.catalogue.nfrs if not ev.tests_for(n.id)]
    unproven = [n.id for n in ev.catalogue.nfrs if ev.tests_for(n.id) and ev.nfr_verdict(n.id) == "not run"]
    planned = [t.id for t in ev.planned if t.id not in ev.removed]
    executed = [t for t in planned if any(r.is_evidence for r in ev.runs_for(t))]
    missing = [t for t in planned if t not in executed]
    return [
        {"id": "EC1", "text": "System Capacity Testing undertaken in accordance with the SCTAD",
         "status": "met" if ec1_ok else "not met", "evidence": "; ".join(ec1)},
        {"id": "EC2", "text": "All evidence delivered, including the Test Traceability Matrix specific to the SP's "
                              "NFRs (approval is the DCC's)",
         "status": "met" if not untraced and not unproven else "not met",
         "evidence": ("every NFR traced to a test and judged in at least one run" if not untraced and not unproven
                      else "; ".join(x for x in (f"NFRs with no test: {', '.join(untraced)}" if untraced else "",
                                                  f"NFRs judged in no run: {', '.join(unproven)}" if unproven else "")
                                     if x))},
        {"id": "EC3", "text": "All planned tests executed (unless their removal was approved by the Test Assurance "
                              "Board)",
         "status": "met" if not missing else "not met",
         "evidence": f"{len(executed)} of {len(planned)} planned tests executed with complete, valid runs"
         + (f"; not executed: {', '.join(missing)}" if missing else "")
         + (f"; removed with approval: {', '.join(ev.removed)}" if ev.removed else "")},
        {"id": "EC4", "text": "Outstanding System Capacity Testing Issues within the threshold levels (SCTAD 4.2 "
                              "refers to SMETS1 SVTAD Table 13.2, which sets them)",
         "status": "met" if all(r["ok"] for r in issue_rows) else "not met",
         "evidence": "; ".join(f"severity {r['severity']}: {r['open']} open (limit {r['threshold']})"
                               for r in issue_rows)
         + ("; limits: " + PROJECT_DEFAULT if is_project_default(ev.catalogue.issue_thresholds_source) else "")},
    ]


def _required_table(ev: PhaseEvidence) -> list[dict[str, Any]]:
    """Per slot of the phase's SP: what Table A7 requires, the suite's part, the highest rate tested by a run."""
    volume = ev.manifest.get("volume") or {}
    sp = ev.plan.model.sp
    rows = []
    for slot in ("night", "day", "evening"):
        required = ((volume.get("A7") or {}).get(sp) or {}).get(slot)
        alerts = ((((volume.get("A7_rows") or {}).get(sp) or {}).get(slot)) or {}).get("alerts")
        part = required - alerts if required is not None and alerts is not None else required
        tested = [(rate, r) for r in ev.runs if r.is_evidence and (rate := r.tested.get(slot)) is not None]
        best = max(tested, key=lambda x: x[0]) if tested else (None, None)
        met = None if part is None or best[0] is None else best[0] >= part * 0.98
        rows.append({"sp": sp, "slot": slot, "required": required, "alerts": alerts, "suite_part": part,
                     "tested": best[0], "run": best[1], "met": met})
    return rows


def risks(ev: PhaseEvidence, criteria: list[dict[str, Any]], prov: list[dict[str, Any]],
          req_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """6.3.2: what the phase's evidence does not show, or shows with a caveat; each links to where it is seen."""
    out: list[dict[str, Any]] = []
    if (ev.manifest.get("profile") or {}).get("example"):
        out.append({"level": "high", "href": "inputs", "text": "The volume profile is a shipped EXAMPLE "
                    f"({(ev.manifest.get('profile') or {}).get('name')}): replace it with the Capability Transaction "
                    "Forecasts before submitting (SCTAD 8.2, 8.3)."})
    defaults = [p for p in prov if p["default"]]
    if defaults:
        out.append({"level": "high", "href": "provenance", "text": f"{len(defaults)} thresholds and defaults are "
                    f"{PROJECT_DEFAULT} (no seed and no user file gives them): "
                    + ", ".join(p["what"] for p in defaults) + "."})
    unsourced = [k for k, v in (ev.manifest.get("inputs") or {}).items()
                 if "no source given" in str((v or {}).get("source", ""))]
    if unsourced:
        out.append({"level": "medium", "href": "inputs", "text": f"Profile inputs without a source: "
                    f"{', '.join(unsourced)}."})
    for r in ev.runs:
        if not r.is_evidence:
            out.append({"level": "high", "href": r.anchor, "text": f"Run {r.run_id} ({r.test.id}) is {r.verdict}: "
                        "it is not evidence; rerun `phase run` to complete it."})
    for res in ev.results:
        if res.status in ("fail", "no data"):
            out.append({"level": "high", "href": res.anchor, "text": f"{res.nfr.id} {res.status} in {res.test_id} "
                        f"(run {res.run.run_id if res.run else '-'})."})
    for row in req_rows:
        if row["met"] is False:
            out.append({"level": "high", "href": "required", "text": f"{row['sp']} {row['slot']}: the highest rate "
                        f"tested, {row['tested']:.2f} SRV/s, is below the {row['suite_part']:.2f} SRV/s the suite must"
                        f" send of Table A7's {row['required']:.2f} SRV/s: the requirement is not shown met."})
        elif row["met"] is None and row["required"]:
            out.append({"level": "medium", "href": "required", "text": f"{row['sp']} {row['slot']}: no complete "
                        f"run tested this slot (Table A7 requires {row['required']:.2f} SRV/s)."})
    if any("emulator" in str((r.run or {}).get("target", "")).lower() for r in ev.runs):
        out.append({"level": "high", "href": "details", "text": "Runs targeted the embedded emulator, not the SP's "
                    "system: they prove the test harness, not the SP's capacity."})
    for c in ev.plan.model.entry_criteria:
        if not (c.confirmed_by and c.confirmed_at):
            out.append({"level": "high", "href": anchor("entry", c.id), "text": f"Entry criterion {c.id} "
                        "(SCTAD 4.1) has no confirmation (who and when)."})
    for crit in criteria:
        if crit["status"] != "met":
            out.append({"level": "high", "href": anchor("ec", crit["id"]), "text": f"Exit criterion {crit['id']} "
                        f"not met: {crit['evidence']}."})
    scale = [r for r in ev.runs if ((r.summary or {}).get("extrapolation") or {}).get("test_scale") not in (None, 1.0)]
    if scale:
        out.append({"level": "medium", "href": "extrapolation", "text": "Production capacity is extrapolated "
                    "from the test environment assuming linear scaling (SCTAD 3.6); not measured at production "
                    "scale."})
    return out


def build_phase_report(path: str | Path, progress: Any = lambda _m: None) -> PhaseOutcome:
    """Write ``phase-report.html`` and ``phase-summary.json`` into the phase folder."""
    ev = load_phase(path, progress)
    issues, issue_rows = _issues(ev)
    criteria = exit_criteria(ev, issue_rows)
    prov = provenance_rows(ev)
    req_rows = _required_table(ev)
    risk_rows = risks(ev, criteria, prov, req_rows)
    ok = all(c["status"] == "met" for c in criteria)
    verdict = "EXIT CRITERIA MET" if ok else "EXIT CRITERIA NOT MET"
    backlinks: dict[str, list[str]] = {}
    for r in ev.results:
        if r.run is not None:
            backlinks.setdefault(r.run.anchor, []).append(r.anchor)
    context = {
        "ev": ev, "plan": ev.plan.model, "manifest": ev.manifest, "criteria": criteria, "issues": issues,
        "issue_rows": issue_rows, "provenance": prov, "required": req_rows, "risks": risk_rows,
        "out_of_scope": OUT_OF_SCOPE, "verdict": verdict, "ok": ok, "anchor": anchor, "PROJECT_DEFAULT":
        PROJECT_DEFAULT, "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "generator": f"dcc-capacity {__version__} phase report, Python {platform.python_version()}",
        "rel": lambda p: os.path.relpath(p, ev.path),
    }
    html = Path(path) / REPORT_FILE
    html.write_text(template_environment().get_template("phase.html.j2").render(**context), encoding="utf-8")
    doc = {
        "phase": ev.plan.model.phase, "capability": ev.plan.model.capability, "sp": ev.plan.model.sp,
        "exit_criteria_met": ok,
        "exit_criteria": [{"id": c["id"], "status": c["status"], "evidence": c["evidence"]} for c in criteria],
        "tests": {t.id: ev.test_verdict(t.id) for t in ev.planned},
        "runs": [{"run_id": r.run_id, "test_id": r.test.id, "state": r.state, "verdict": r.verdict,
                  "required": r.required, "summary": f"runs/{r.run_id}/summary.json" if r.summary else None}
                 for r in ev.runs],
        "results": [{"id": r.id, "nfr": r.nfr.id, "test_id": r.test_id, "run": r.run.run_id if r.run else None,
                     "status": r.status, "measured": r.measured} for r in ev.results],
        "required_vs_tested": [{k: v for k, v in row.items() if k != "run"} | {"run": row["run"].run_id
                                                                                 if row["run"] else None}
                               for row in req_rows],
        "risks": [{"level": r["level"], "text": r["text"]} for r in risk_rows],
        "provenance": prov, "issues": issues,
    }
    summary = Path(path) / SUMMARY_FILE
    write_json(summary, doc)
    progress(f"{verdict}: {sum(c['status'] == 'met' for c in criteria)} of 4 exit criteria met")
    return PhaseOutcome(html=html, summary=summary, exit_code=0 if ok else 1, doc=doc)


def _chromium(explicit: str | None) -> str:
    """The chromium to print with: the one asked for (or a clear error), else the first one installed."""
    asked = explicit or os.environ.get("DCC_CAPACITY_CHROMIUM")
    if asked:
        found = shutil.which(asked)
        if found is None:
            raise InputError(f"no such chromium executable {asked!r}",
                             key="--chromium" if explicit else "DCC_CAPACITY_CHROMIUM")
        return found
    for cand in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if cand and (shutil.which(cand) or (Path(cand).is_file() and os.access(cand, os.X_OK))):
            return shutil.which(cand) or cand
    raise InputError("no headless chromium found to print the PDF (looked for $DCC_CAPACITY_CHROMIUM, chromium, "
                     "chromium-browser, google-chrome); install one (Debian: apt-get install chromium) or give "
                     "--chromium PATH", key="--pdf")


def print_pdf(html: Path, chromium: str | None = None, timeout_s: float = 120.0) -> Path:
    """Print the report to PDF with the user's headless chromium (the report's print CSS lays out the pages)."""
    exe = _chromium(chromium)
    pdf = html.with_suffix(".pdf")
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-pdf-header-footer",
           f"--print-to-pdf={pdf}", html.resolve().as_uri()]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise InputError(f"chromium did not print within {timeout_s:g} s", file=exe, key="--pdf") from None
    if proc.returncode != 0 or not pdf.is_file() or pdf.stat().st_size == 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise InputError(f"chromium could not print the PDF (exit {proc.returncode}: {last})", file=exe, key="--pdf")
    return pdf
