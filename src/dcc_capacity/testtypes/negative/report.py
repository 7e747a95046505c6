"""The negative run's results: per case into run.json, NFR-NEG verdicts into nfr_results.json.

Why nfr_results.json: whether a negative case was answered as DUIS requires
is judged per answer by the case's own rule (an E42 is the *right* answer to
a bad signature), which the records' outcome columns cannot express. The
report's NFR machinery already takes such verdicts as ``metric: external``
results, so NFR-NEG, its tests (one per case id, plus NEGATIVE) and the
traceability matrix need nothing new; the report's "Negative cases" section
reads ``run.json`` ``negative``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dcc_capacity.errors import InputError
from dcc_capacity.testtypes.negative.cases import CASES, load_verdicts, summarise

__all__ = ["NFR_ID", "TEST_ID", "negative_results", "nfr_results", "section", "write_results"]

NFR_ID = "NFR-NEG"
TEST_ID = "NEGATIVE"


def negative_results(run_dir: str | Path, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """run.json's ``negative``: every case (sent, answered as required, wrong answers, latencies, passed)."""
    settings = settings or {}
    # Against an external SUT (--host) the suite knows no CP SFTP: those cases are not run, not failed.
    scope = tuple(c for c in CASES if settings.get("sftp", True) or c.channel != "SFTP")
    cases = summarise(load_verdicts(run_dir), scope)
    return {"cases": cases, "passed": all(c["passed"] for c in cases),
            "failed_cases": [c["id"] for c in cases if not c["passed"]],
            "not_run": [c.id for c in CASES if c not in scope], "settings": settings}


def nfr_results(negative: dict[str, Any]) -> list[dict[str, Any]]:
    """NFR-NEG per case test (share of answers as required) and for NEGATIVE (share of cases passed)."""
    out = []
    for c in negative["cases"]:
        share = c["as_required"] / c["answered"] if c["answered"] else None
        out.append({"id": NFR_ID, "test_id": c["id"], "measured": share, "threshold": 1.0, "pass": c["passed"],
                    "evidence": c["id"]})
    cases = negative["cases"]
    out.append({"id": NFR_ID, "test_id": TEST_ID, "measured": sum(c["passed"] for c in cases) / len(cases),
                "threshold": 1.0, "pass": all(c["passed"] for c in cases), "evidence": "negative"})
    return out


def write_results(run_dir: str | Path, run: dict[str, Any], settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Put ``negative`` and ``executed_tests`` into ``run`` (run.json, not yet written) and write nfr_results.json."""
    neg = negative_results(run_dir, settings)
    run["negative"] = neg
    run["executed_tests"] = [c["id"] for c in neg["cases"] if c["sent"]]
    path = Path(run_dir) / "nfr_results.json"
    existing = json.loads(path.read_text()) if path.exists() else []
    kept = [r for r in existing if isinstance(r, dict) and r.get("id") != NFR_ID]
    path.write_text(json.dumps(kept + nfr_results(neg), indent=2) + "\n")
    return neg


_COUNTS = ("sent", "answered", "as_required", "wrong", "pending")


def section(run: dict[str, Any], file: Path | str = "run.json") -> dict[str, Any] | None:
    """run.json's ``negative`` checked and completed for the report (None: not a negative run).

    run.json is an input a person may edit: a malformed ``negative`` is one
    InputError naming the key, never a template crash.
    """
    neg = run.get("negative")
    if neg is None:
        return None
    if not isinstance(neg, dict) or not isinstance(neg.get("cases"), list):
        raise InputError("must be a mapping with a list 'cases'", file=file, key="negative")
    cases = []
    for i, c in enumerate(neg["cases"]):
        key = f"negative.cases[{i}]"
        if not isinstance(c, dict) or not isinstance(c.get("id"), str) or not isinstance(c.get("passed"), bool):
            raise InputError("needs an 'id' (text) and 'passed' (true/false)", file=file, key=key)
        row = {"title": "", "requires": "", "channel": "", "reason": "", "wrong_answers": [], **c}
        for name in _COUNTS:
            if not isinstance(row.get(name, 0), int) or isinstance(row.get(name, 0), bool):
                raise InputError("must be a whole number", file=file, key=f"{key}.{name}")
            row.setdefault(name, 0)
        for name in ("ack_ms", "trt_ms"):
            lat = row.get(name) or {}
            if not isinstance(lat, dict):
                raise InputError("must be a mapping {p50, p95}", file=file, key=f"{key}.{name}")
            row[name] = {"p50": lat.get("p50"), "p95": lat.get("p95")}
        wrong = row["wrong_answers"]
        if not isinstance(wrong, list) or not all(isinstance(w, dict) and "got" in w and "count" in w for w in wrong):
            raise InputError("must be a list of {got, count}", file=file, key=f"{key}.wrong_answers")
        cases.append(row)
    return {"cases": cases, "passed": all(c["passed"] for c in cases),
            "failed_cases": [c["id"] for c in cases if not c["passed"]],
            "not_run": [str(x) for x in neg.get("not_run") or []]}
