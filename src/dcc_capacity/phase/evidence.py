"""A phase folder read back: its plan, its runs, and the phase-wide results the completion report shows.

Why from each run's summary.json (not the records again): the per-run report
already judged every NFR on exact figures; the phase report must show the
same verdicts, not a second computation that could disagree, and it must
build in seconds even when the soak holds 100 M records. A run folder with
no summary.json (killed before its report) gets its report built here first.

Run validity: a run whose summary.json says ``"valid": false`` is INVALID
(its measurement cannot be trusted, e.g. the load generator could not keep
the schedule) and is shown, but never counted as evidence.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dcc_capacity.errors import InputError
from dcc_capacity.model.nfr import Nfr, NfrCatalogue, TestDef, load_catalogue
from dcc_capacity.model.provenance import PROJECT_DEFAULT, is_project_default, source_text
from dcc_capacity.phase.plan import LoadedPlan, PlanTest, load_plan_file
from dcc_capacity.phase.runner import PHASE_FILE, RUNS_DIR
from dcc_capacity.report.required import plan_sp, required_vs_tested, tested_rate, tested_rates
from dcc_capacity.report.traceability import anchor

__all__ = ["PhaseRun", "PhaseResult", "PhaseEvidence", "load_phase", "provenance_rows"]


@dataclass
class PhaseRun:
    """One run of the phase: its plan entry, its folder's run.json and summary.json, and its standing."""

    test: PlanTest
    folder: Path
    run: dict[str, Any] | None
    summary: dict[str, Any] | None
    plan_doc: dict[str, Any] | None
    state: str
    """``not run`` (no folder), ``running`` / ``incomplete`` / ``failed`` (not evidence), ``INVALID``, ``complete``."""
    verdict: str
    """PASS / FAIL / INCOMPLETE / FAILED RUN / INVALID / NOT RUN."""
    attempts: int = 0
    required: dict[str, Any] = field(default_factory=dict)
    tested: dict[str, float] = field(default_factory=dict)
    """Slot -> the rate this run tested there (report/required.py ``tested_rates``)."""

    @property
    def run_id(self) -> str:
        return self.test.folder

    @property
    def anchor(self) -> str:
        return anchor("run", self.run_id)

    @property
    def is_evidence(self) -> bool:
        return self.state == "complete"

    @property
    def executed(self) -> set[str]:
        """Test ids this run is evidence for: its own and those it also executed (the negative run's cases)."""
        ids = {self.test.id}
        ids |= {str(t) for t in (self.run or {}).get("executed_tests") or []}
        return ids


@dataclass
class PhaseResult:
    """One result row: an NFR judged for one test in one run."""

    nfr: Nfr
    test_id: str
    run: PhaseRun | None
    status: str
    """pass / fail / no data / not run / not evidence (the run is incomplete or INVALID)."""
    measured: float | None = None
    message: str = ""

    @property
    def id(self) -> str:
        return f"{self.run.run_id if self.run else '-'}.{self.test_id}.{self.nfr.id}"

    @property
    def anchor(self) -> str:
        return anchor("res", self.id)


@dataclass
class PhaseEvidence:
    path: Path
    manifest: dict[str, Any]
    plan: LoadedPlan
    catalogue: NfrCatalogue
    runs: list[PhaseRun]
    results: list[PhaseResult]
    planned: list[TestDef]
    removed: dict[str, Any]

    def runs_for(self, test_id: str) -> list[PhaseRun]:
        return [r for r in self.runs if test_id in r.executed]

    def results_for_nfr(self, nfr_id: str) -> list[PhaseResult]:
        return [r for r in self.results if r.nfr.id == nfr_id]

    def results_for_test(self, test_id: str) -> list[PhaseResult]:
        return [r for r in self.results if r.test_id == test_id]

    def results_for_run(self, run: PhaseRun) -> list[PhaseResult]:
        return [r for r in self.results if r.run is run]

    def tests_for(self, nfr_id: str) -> list[TestDef]:
        return [t for t in self.planned if nfr_id in t.nfr_ids]

    def test_verdict(self, test_id: str) -> str:
        rows = [r for r in self.results_for_test(test_id)]
        if test_id in self.removed:
            return "removed"
        if not any(r.is_evidence for r in self.runs_for(test_id)):
            return "not run"
        judged = [r for r in rows if r.status not in ("not run", "not evidence")]
        if not judged:
            return "no data"
        return "pass" if all(r.status == "pass" for r in judged) else "fail"

    def nfr_verdict(self, nfr_id: str) -> str:
        judged = [r for r in self.results_for_nfr(nfr_id) if r.status not in ("not run", "not evidence")]
        if not judged:
            return "not run"
        return "pass" if all(r.status == "pass" for r in judged) else "fail"


def _read(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise InputError(f"unreadable JSON ({exc})", file=path) from None
    if not isinstance(doc, dict):
        raise InputError("must be a JSON object", file=path)
    return doc


def _load_run(test: PlanTest, folder: Path, attempts: int, progress: Any) -> PhaseRun:
    if not (folder / "run.json").is_file():
        return PhaseRun(test, folder, None, None, None, "not run", "NOT RUN", attempts)
    run = _read(folder / "run.json") or {}
    summary = _read(folder / "summary.json")
    if summary is None and run.get("status") != "failed":
        from dcc_capacity.report.build import build_report

        progress(f"{test.folder}: no summary.json (the run was cut off before its report): building it")
        try:
            summary = build_report(folder).summary_doc
        except InputError as exc:
            progress(f"{test.folder}: no report could be built: {exc}")
    plan_doc = _read(folder / "plan.json")
    status = str(run.get("status", "running"))
    if summary is not None and summary.get("valid") is False:
        state, verdict = "INVALID", "INVALID"
    elif status == "complete" and summary is not None and summary.get("complete", True):
        degraded = (summary.get("baseline") or {}).get("no_degradation") is False
        state, verdict = "complete", ("PASS" if summary.get("pass") and not degraded else "FAIL")
    elif status == "failed":
        state, verdict = "failed", "FAILED RUN"
    else:
        state, verdict = ("running" if status == "running" else "incomplete"), "INCOMPLETE"
    pr = PhaseRun(test, folder, run, summary, plan_doc, state, verdict, attempts)
    if summary is not None:
        spec = run.get("spec") or {}
        pr.tested = tested_rates(run, summary)
        pr.required = required_vs_tested(plan_doc, plan_sp(run), run.get("slot"), tested_rate(run, summary),
                                         normal=bool(spec.get("normal")), test_type=str(run.get("test_type")),
                                         excluded=bool(spec.get("exclude")))
    return pr


def load_phase(path: str | Path, progress: Any = lambda _m: None) -> PhaseEvidence:
    """Read a phase folder written by ``phase run`` (InputError when it is not one)."""
    root = Path(path)
    manifest = _read(root / PHASE_FILE)
    if manifest is None:
        raise InputError("not a phase folder (no phase.json: write one with `dcc-capacity phase run`)", file=root)
    plan_copy = root / "plan.yaml"
    if not plan_copy.is_file():
        raise InputError("phase folder without its plan.yaml", file=root)
    plan = _plan_from_copy(plan_copy, manifest)
    catalogue = load_catalogue(root / "nfr.yaml") if (root / "nfr.yaml").is_file() else plan.catalogue
    entries = manifest.get("tests") or {}
    runs = [_load_run(t, root / RUNS_DIR / t.folder, int((entries.get(t.folder) or {}).get("attempts", 0)), progress)
            for t in plan.tests]
    by_id = {n.id: n for n in catalogue.nfrs}
    removed = {r.id: r.model_dump() for r in plan.model.removed_tests}
    results: list[PhaseResult] = []
    planned = [t for t in catalogue.tests if t.applies_to(plan.model.sp)]
    for test in planned:
        runs_of = [r for r in runs if test.id in r.executed]
        if not runs_of:
            results += [PhaseResult(by_id[n], test.id, None, "not run") for n in test.nfr_ids]
            continue
        for r in runs_of:
            judged = {(str(x.get("id")), str(x.get("test_id"))): x for x in (r.summary or {}).get("nfr") or []}
            for nid in test.nfr_ids:
                entry = judged.get((nid, test.id))
                if not r.is_evidence:
                    status = "not evidence" if r.state != "not run" else "not run"
                    results.append(PhaseResult(by_id[nid], test.id, r, status,
                                               message=f"run {r.run_id} is {r.verdict}"))
                elif entry is None:
                    results.append(PhaseResult(by_id[nid], test.id, r, "no data",
                                               message="the run did not judge this NFR"))
                else:
                    m = entry.get("measured")
                    status = str(entry.get("status") or ("pass" if entry.get("pass") else "fail"))
                    message = str(entry.get("message") or "")
                    if entry.get("no_degradation") is False and status == "pass":  # the baseline pair's verdict
                        status = "fail"
                        message = (f"DEGRADED against the baseline run {r.test.baseline or ''}: "
                                   f"{entry.get('baseline')} -> {m} (tolerance "
                                   f"{((r.summary or {}).get('baseline') or {}).get('tolerance_pct')} %)")
                    results.append(PhaseResult(by_id[nid], test.id, r, status,
                                               measured=float(m) if isinstance(m, (int, float)) else None,
                                               message=message))
    return PhaseEvidence(path=root, manifest=manifest, plan=plan, catalogue=catalogue, runs=runs, results=results,
                         planned=planned, removed=removed)


def _plan_from_copy(plan_copy: Path, manifest: dict[str, Any]) -> LoadedPlan:
    """The plan as it was run: the original file while it is unchanged, else the folder's own copy."""
    import hashlib

    original = Path((manifest.get("plan") or {}).get("path", ""))
    if original.is_file() and hashlib.sha256(original.read_bytes()).hexdigest() == \
            (manifest.get("plan") or {}).get("sha256"):
        return load_plan_file(original)
    base = original.parent if original.parent.is_dir() else None
    return load_plan_file(plan_copy, base=base)  # edited or moved since: the copy, paths as the original had them


def provenance_rows(ev: PhaseEvidence) -> list[dict[str, Any]]:
    """Every threshold and default the phase's verdicts rest on, with its source; project defaults flagged."""
    rows: list[dict[str, Any]] = []
    for n in ev.catalogue.nfrs:
        value = f"{n.what} [{n.scope_text}] {n.op} {n.threshold:g}" if n.threshold is not None else "external"
        rows.append({"what": f"NFR {n.id}", "anchor": anchor("nfr", n.id), "value": value,
                     "source": source_text(n.source), "default": is_project_default(n.source)})
    th = ", ".join(f"severity {k}: {v}" for k, v in sorted(ev.catalogue.issue_thresholds.items()))
    rows.append({"what": "Testing-issue thresholds (EC4)", "anchor": "issues", "value": th,
                 "source": source_text(ev.catalogue.issue_thresholds_source),
                 "default": is_project_default(ev.catalogue.issue_thresholds_source)})
    from dcc_capacity.report.analysis import DEGRADED_ACHIEVED_RATIO, DEGRADED_ERROR_RATE

    rows.append({"what": "Stress knee criteria", "anchor": "results", "value":
                 f"failures <= {DEGRADED_ERROR_RATE:.0%}, achieved >= {DEGRADED_ACHIEVED_RATIO:.0%} of offered",
                 "source": f"{PROJECT_DEFAULT} (report/analysis.py)", "default": True})
    from dcc_capacity.report.required import SHORTFALL_TOLERANCE

    rows.append({"what": "Required-rate tolerance", "anchor": "required", "value":
                 f"tested >= {1 - SHORTFALL_TOLERANCE:.0%} of the suite's part of Table A7",
                 "source": f"{PROJECT_DEFAULT} (report/required.py)", "default": True})
    for r in ev.runs:
        base = (r.summary or {}).get("baseline") or {}
        if base:
            in_plan = "tolerance" in r.test.run or "tolerance" in ev.plan.model.defaults
            rows.append({"what": f"Baseline tolerance ({r.run_id})", "anchor": r.anchor,
                         "value": f"{base.get('tolerance_pct')} % worsening allowed",
                         "source": "run option in the plan" if in_plan else f"{PROJECT_DEFAULT} (run --tolerance)",
                         "default": not in_plan})
    lags = {(str(lag.get("limit")), str(lag.get("limit_source"))) for r in ev.runs
            for lag in [((r.summary or {}).get("send_lag_ms") or {})] if lag.get("limit") is not None}
    for limit, src in sorted(lags):
        default = is_project_default(src)
        rows.append({"what": "Run validity: send lag p99 limit (ms)", "anchor": "results", "value": limit,
                     "source": source_text("" if default else src), "default": default})
    from dcc_capacity.report.scenarios import DEFAULT_LIMITS

    given: dict[str, Any] = {}
    for r in ev.runs:
        for k, v in ((r.run or {}).get("limits") or {}).items():
            given.setdefault(k, v)
    for k, v in DEFAULT_LIMITS.items():
        user = k in given
        rows.append({"what": f"Scenario limit {k}", "anchor": "results", "value": f"{given.get(k, v)}",
                     "source": "run option in the plan" if user else f"{PROJECT_DEFAULT} (report/scenarios.py)",
                     "default": not user})
    return rows
