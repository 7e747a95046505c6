"""The NFR and test catalogue (nfr.yaml) and the testing issues (issues.yaml).

The catalogue is the SP's non-functional requirements in a form the report
can measure (metric, scope, threshold) and the SP's planned tests with the
NFRs each covers: the two ends of the SCTAD 4.2 Test Traceability Matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ._files import check, read_yaml, require

__all__ = ["METRIC_NAMES", "SCOPES", "DEFAULT_ISSUE_THRESHOLDS", "TEST_TYPES", "Nfr", "TestDef", "Issue",
           "load_catalogue", "load_issues"]

TEST_TYPES = ("load", "stress", "soak", "spike", "catchup", "noisy-neighbour", "negative", "baseline")
METRIC_NAMES = (
    "ack_ms.p50", "ack_ms.p95", "ack_ms.p99", "ack_ms.max", "trt_ms.p50", "trt_ms.p95", "trt_ms.p99", "trt_ms.max",
    "error_rate", "throttle_rate", "missing_rate", "failure_rate", "achieved_ratio", "achieved_rate", "requests",
    "external",
)
"""Metrics an NFR can name; ``external`` means the result comes from ``nfr_results.json``."""
SCOPES = ("all", "srv", "srv_class", "class", "slot")
DEFAULT_ISSUE_THRESHOLDS = {1: 0, 2: 0, 3: 5, 4: 10}
"""Outstanding testing issues allowed per severity (SVTAD Table 13.2 style); overridable in nfr.yaml."""


@dataclass(frozen=True)
class Nfr:
    """One non-functional requirement: what is measured, where, and the bound it must meet."""

    id: str
    text: str
    source: str
    metric: str
    threshold: float | None
    op: str = "<="
    scope: str = "all"
    severity: int = 2

    @property
    def scope_dim(self) -> str:
        return self.scope.split(":", 1)[0]

    @property
    def scope_value(self) -> str | None:
        parts = self.scope.split(":", 1)
        return parts[1] if len(parts) == 2 else None


@dataclass(frozen=True)
class TestDef:
    """A planned test of the SP's test specification and the NFRs it covers."""

    id: str
    name: str
    type: str
    nfr_ids: tuple[str, ...]


@dataclass(frozen=True)
class Issue:
    """A System Capacity Testing Issue (severity 1 = highest)."""

    id: str
    severity: int
    title: str
    status: str = "open"


def load_catalogue(path: Path) -> tuple[list[Nfr], list[TestDef], dict[int, int]]:
    doc = read_yaml(path)
    if not isinstance(doc, dict):
        raise InputError("must be a mapping with 'nfrs' and 'tests'", file=path)
    nfrs: list[Nfr] = []
    for i, raw in enumerate(require(doc, "nfrs", path, list)):
        p = f"nfrs.{i}."
        check(raw, str(i), path, dict, prefix="nfrs.")
        metric = require(raw, "metric", path, str, METRIC_NAMES, p)
        thr = raw.get("threshold")
        if metric != "external":
            require(raw, "threshold", path, (int, float), prefix=p)
        scope = str(raw.get("scope", "all"))
        if scope.split(":", 1)[0] not in SCOPES or (scope != "all" and ":" not in scope):
            raise InputError(f"must be 'all' or one of srv:/srv_class:/class:/slot:<value> (got {scope!r})",
                             file=path, key=p + "scope")
        nfrs.append(Nfr(
            id=str(require(raw, "id", path, (str, int), prefix=p)), text=str(raw.get("text", "")),
            source=str(raw.get("source", "")), metric=metric, threshold=None if thr is None else float(thr),
            op=check(raw.get("op", "<="), "op", path, str, ("<=", ">=", "<", ">"), p), scope=scope,
            severity=check(raw.get("severity", 2), "severity", path, int, (1, 2, 3, 4), p)))
    ids = [n.id for n in nfrs]
    if len(set(ids)) != len(ids):
        raise InputError("NFR ids must be unique", file=path, key="nfrs")
    tests: list[TestDef] = []
    for i, raw in enumerate(require(doc, "tests", path, list)):
        p = f"tests.{i}."
        check(raw, str(i), path, dict, prefix="tests.")
        refs = tuple(str(x) for x in require(raw, "nfr_ids", path, list, prefix=p))
        for ref in refs:
            if ref not in ids:
                raise InputError(f"unknown NFR {ref!r}", file=path, key=p + "nfr_ids")
        tests.append(TestDef(id=str(require(raw, "id", path, (str, int), prefix=p)), name=str(raw.get("name", "")),
                             type=require(raw, "type", path, str, TEST_TYPES, p), nfr_ids=refs))
    thresholds = dict(DEFAULT_ISSUE_THRESHOLDS)
    for sev, limit in (doc.get("issue_thresholds") or {}).items():
        check(limit, str(sev), path, int, prefix="issue_thresholds.")
        thresholds[int(sev)] = limit
    return nfrs, tests, thresholds


def load_issues(path: Path) -> list[Issue]:
    if not path.exists():
        return []
    doc = read_yaml(path) or []
    if not isinstance(doc, list):
        raise InputError("must be a list of {id, severity, title, status}", file=path)
    out = []
    for i, raw in enumerate(doc):
        check(raw, str(i), path, dict)
        out.append(Issue(id=str(require(raw, "id", path, (str, int), prefix=f"{i}.")),
                         severity=require(raw, "severity", path, int, (1, 2, 3, 4), f"{i}."),
                         title=str(raw.get("title", "")),
                         status=check(raw.get("status", "open"), "status", path, str, ("open", "closed"), f"{i}.")))
    return out
