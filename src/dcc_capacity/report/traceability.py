"""NFR verdicts and the traceability matrix NFR -> tests -> result rows.

The matrix is the SCTAD 4.2 "Test Traceability Matrix": every NFR of the SP's
catalogue, the tests that cover it, and the result rows that prove it, each
an anchor. Result rows exist for every (test, NFR) pair of the catalogue, so
an NFR whose test was not run in this folder shows as "not run" rather than
vanishing from the evidence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from dcc_capacity.model.nfr import Nfr, TestDef, judge
from dcc_capacity.model.provenance import source_text
from dcc_capacity.report.inputs import Issue, RunFolder
from dcc_capacity.report.metrics import Metrics
from dcc_capacity.testtypes.registry import is_capacity_test

__all__ = ["Result", "Traceability", "anchor", "evaluate", "exit_criteria", "issue_counts"]

def anchor(prefix: str, value: Any) -> str:
    """An HTML id that survives any label (SRV variants have dots, classes may have spaces)."""
    return f"{prefix}-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", str(value))


@dataclass
class Result:
    """One result row: an NFR measured by one test."""

    id: str
    nfr: Nfr
    test_id: str
    measured: float | None
    status: str
    """``pass``, ``fail``, ``no data`` (test ran, nothing measured) or ``not run``."""
    evidence: str | None = None
    """Anchor of the metrics row the figure comes from."""
    message: str = ""
    samples: int = 0
    groups: dict[str, float | None] = field(default_factory=dict)
    """Each group's value when the NFR is judged ``per`` group."""
    baseline: float | None = None
    compared: float | None = None
    """This run's figure on the groups the baseline also has, when that differs from ``measured``."""
    change_pct: float | None = None
    no_degradation: bool | None = None

    @property
    def anchor(self) -> str:
        return anchor("res", self.id)


@dataclass
class Traceability:
    nfrs: list[Nfr]
    tests: list[TestDef]
    results: list[Result]
    executed: set[str]
    notes: list[str] = field(default_factory=list)

    def for_nfr(self, nfr_id: str) -> list[Result]:
        return [r for r in self.results if r.nfr.id == nfr_id]

    def for_test(self, test_id: str) -> list[Result]:
        return [r for r in self.results if r.test_id == test_id]

    def tests_for(self, nfr_id: str) -> list[TestDef]:
        return [t for t in self.tests if nfr_id in t.nfr_ids]

    @property
    def all_pass(self) -> bool:
        ran = [r for r in self.results if r.status != "not run"]
        return bool(ran) and all(r.status == "pass" for r in ran)


def _external(nfr: Nfr, external: list[dict[str, Any]], test_id: str) -> tuple[float | None, str, str | None]:
    """An NFR measured outside this suite (``nfr_results.json``): its value, verdict and evidence anchor as given."""
    for ext in external:
        if str(ext.get("id")) == nfr.id and str(ext.get("test_id", test_id)) == test_id:
            val = ext.get("measured")
            evidence = ext.get("evidence")
            return ((float(val) if isinstance(val, (int, float)) else None), ("pass" if ext.get("pass") else "fail"),
                    evidence if isinstance(evidence, str) and evidence else None)
    return None, "no data", None


def evaluate(folder: RunFolder, metrics: Metrics, duration_s: float | None) -> Traceability:
    """Result rows for every (test, NFR) of the catalogue; only the folder's own test is measured.

    The verdict itself is :func:`dcc_capacity.model.nfr.judge`, the one NFR
    evaluation of the suite (summary.json, junit.xml and this matrix share it).
    """
    tests = list(folder.tests)
    test_id = folder.run["test_id"]
    notes = []
    if test_id not in {t.id for t in tests}:
        # ... except NFRs only tests that are not capacity tests cover (the negative tests' NFR-NEG): no load run
        # answers them.
        other_only = ({n for t in tests if not is_capacity_test(t.type) for n in t.nfr_ids}
                      - {n for t in tests if is_capacity_test(t.type) for n in t.nfr_ids})
        ids = tuple(n.id for n in folder.nfrs
                    if not is_capacity_test(folder.run["test_type"]) or n.id not in other_only)
        notes.append(f"Test {test_id} is not in the test catalogue: measured against every NFR"
                     f"{' but those of the negative tests' if len(ids) < len(folder.nfrs) else ''}.")
        tests.append(TestDef(id=test_id, name=folder.run.get("test_name", "(not in the test specification)"),
                             type=folder.run["test_type"], nfr_ids=ids))
    by_id = {n.id: n for n in folder.nfrs}
    # Tests a run executes besides its own (the negative run's cases): measured, their NFRs external results.
    executed = {test_id} | {str(t) for t in folder.run.get("executed_tests") or [] if t in {x.id for x in tests}}
    results = []
    for test in tests:
        for nid in test.nfr_ids:
            nfr = by_id[nid]
            rid = f"{test.id}.{nid}"
            if test.id not in executed:
                results.append(Result(id=rid, nfr=nfr, test_id=test.id, measured=None, status="not run"))
                continue
            if nfr.metric == "external":
                val, status, evidence = _external(nfr, folder.external_results, test.id)
                results.append(Result(id=rid, nfr=nfr, test_id=test.id, measured=val, status=status,
                                      evidence=evidence))
                continue
            v = judge(nfr, metrics.groups, duration_s)
            results.append(Result(id=rid, nfr=nfr, test_id=test.id, measured=v.measured, status=v.status,
                                  evidence=anchor(f"m-{v.evidence[0]}", v.evidence[1]) if v.evidence else None,
                                  message=v.message, samples=v.samples, groups=v.groups))
    return Traceability(nfrs=list(folder.nfrs), tests=tests, results=results, executed=executed, notes=notes)


def issue_counts(folder: RunFolder, trace: Traceability) -> tuple[list[Issue], list[dict[str, Any]]]:
    """Open issues (recorded + one per failed result) and the per-severity count against its threshold."""
    issues = [i for i in folder.issues if i.status == "open"]
    for r in trace.results:
        if r.status in ("fail", "no data"):
            issues.append(Issue(id=f"AUTO-{r.id}", severity=r.nfr.severity,
                                title=f"{r.nfr.id} {r.status} in {r.test_id}"))
    rows = []
    for sev in sorted(set(folder.issue_thresholds) | {i.severity for i in issues}):
        count = sum(1 for i in issues if i.severity == sev)
        limit = folder.issue_thresholds.get(sev, 0)
        rows.append({"severity": sev, "open": count, "threshold": limit, "ok": count <= limit})
    return issues, rows


def exit_criteria(folder: RunFolder, trace: Traceability, issue_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """SCTAD 4.2 exit criteria as a checklist; approval steps are the DCC's and stay marked as such."""
    planned = [t.id for t in trace.tests]
    executed = [t for t in planned if t in trace.executed]
    untraced = [n.id for n in trace.nfrs if not trace.tests_for(n.id)]
    complete = not folder.incomplete
    return [
        {"id": "EC1", "text": "System Capacity Testing undertaken in accordance with the SCTAD",
         "status": "met" if complete and trace.all_pass else "not met",
         "evidence": ("run complete" if complete else "run INCOMPLETE")
         + ("; all measured NFRs met" if trace.all_pass else "; NFR failures or missing data")},
        {"id": "EC2", "text": "All evidence delivered, including the Test Traceability Matrix (DCC approval)",
         "status": "met" if not untraced else "not met",
         "evidence": "every NFR is traced to a test; approval is the DCC's" if not untraced
         else f"NFRs with no test: {', '.join(untraced)}"},
        {"id": "EC3", "text": "All planned tests in the SP's test specification executed",
         "status": "met" if len(executed) == len(planned) else "not met",
         "evidence": f"{len(executed)} of {len(planned)} planned tests executed in this run folder"},
        {"id": "EC4", "text": "Outstanding System Capacity Testing Issues within the threshold levels (SCTAD 4.2 "
                              "refers to SMETS1 SVTAD Table 13.2, which sets them; limits used: "
                              f"{source_text(folder.issue_thresholds_source)})",
         "status": "met" if all(r["ok"] for r in issue_rows) else "not met",
         "evidence": "; ".join(f"severity {r['severity']}: {r['open']} open (limit {r['threshold']})"
                               for r in issue_rows)},
    ]
