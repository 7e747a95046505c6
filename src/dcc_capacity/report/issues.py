"""The testing issues of a run folder (``issues.yaml``): System Capacity Testing Issues by severity.

The NFR and test catalogue lives in :mod:`dcc_capacity.model.nfr` (one schema for
the live line, the verdict files and the report).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dcc_capacity.errors import InputError
from dcc_capacity.report._files import check, read_yaml, require

__all__ = ["Issue", "load_issues"]


@dataclass(frozen=True)
class Issue:
    """A System Capacity Testing Issue (severity 1 = highest)."""

    id: str
    severity: int
    title: str
    status: str = "open"


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
