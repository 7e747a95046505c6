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

from ..negcases import CASES, load_verdicts, summarise

__all__ = ["NFR_ID", "TEST_ID", "negative_results", "nfr_results", "write_results"]

NFR_ID = "NFR-NEG"
TEST_ID = "NEGATIVE"


def negative_results(run_dir: str | Path, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """run.json's ``negative``: every case (sent, answered as required, wrong answers, latencies, passed)."""
    cases = summarise(load_verdicts(run_dir), CASES)
    return {"cases": cases, "passed": all(c["passed"] for c in cases),
            "failed_cases": [c["id"] for c in cases if not c["passed"]], "settings": settings or {}}


def nfr_results(negative: dict[str, Any]) -> list[dict[str, Any]]:
    """NFR-NEG per case test (share of answers as required) and for NEGATIVE (share of cases passed)."""
    out = []
    for c in negative["cases"]:
        share = c["as_required"] / c["answered"] if c["answered"] else None
        out.append({"id": NFR_ID, "test_id": c["id"], "measured": share, "threshold": 1.0, "pass": c["passed"]})
    cases = negative["cases"]
    out.append({"id": NFR_ID, "test_id": TEST_ID, "measured": sum(c["passed"] for c in cases) / len(cases),
                "threshold": 1.0, "pass": all(c["passed"] for c in cases)})
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
