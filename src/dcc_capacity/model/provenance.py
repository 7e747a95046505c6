"""Where each threshold, default and input of a report comes from.

Why a module of its own: the Test Assurance Board reads a number in the
evidence and must be able to tell a figure the SCTAD (or the Service
Provider's own file) states from one this project made up so the suite runs
out of the box. A made-up figure dressed in a seed section ("SCTAD 3.5") is
worse than none, so the rule is one place: a value whose source is empty or
says :data:`PROJECT_DEFAULT` is a project default, is shown as such and
raises a risk in 6.3.2; the shipped example profiles raise one too.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dcc_capacity.model.volume import VolumePlan

__all__ = ["PROJECT_DEFAULT", "is_project_default", "source_text", "is_example_profile", "plan_provenance"]

PROJECT_DEFAULT = "project default — replace before submitting"
"""The label of a value no seed and no user file gives (the reports print it verbatim)."""


def is_project_default(source: str | None) -> bool:
    """True when ``source`` names nothing (empty) or says it is this project's own default."""
    text = (source or "").strip().lower()
    return not text or text.startswith("project default")


def source_text(source: str | None) -> str:
    """The source as a report shows it: the text given, or :data:`PROJECT_DEFAULT` when there is none."""
    return PROJECT_DEFAULT if not (source or "").strip() else str(source).strip()


def _shipped_profiles() -> set[str]:
    from dcc_capacity.paths import data_dir

    try:
        return {hashlib.sha256(p.read_bytes()).hexdigest() for p in data_dir("volume_profiles").glob("*.yaml")}
    except OSError:
        return set()


def is_example_profile(path: str | Path, name: str = "") -> bool:
    """A shipped example profile (same bytes as one in volume_profiles/) or one that calls itself an example."""
    if "example" in name.lower():
        return True
    try:
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return False
    return digest in _shipped_profiles()


def plan_provenance(plan: VolumePlan, profile_path: str | Path) -> dict[str, Any]:
    """plan.json additions: every profile input with its source, and Table A7 split by row.

    ``A7_rows`` lets a report say which part of the required rate the suite
    sends and which (alerts) the system under test generates itself.
    """
    from dcc_capacity.model.volume import SLOTS, SPS

    profile = plan.profile
    inputs = {}
    for inp in profile.inputs():
        if inp.key == "capability":  # a label the plan checks, not a figure of the model
            continue
        value = inp.value
        if not isinstance(value, (int, float, str, bool)) and value is not None:
            value = str(value)
        inputs[inp.key] = {"value": value if not hasattr(value, "isoformat") else value.isoformat(),
                           "source": inp.source or f"{Path(profile_path).name} (no source given for this figure)",
                           "line": inp.line}
    rows = {sp: {slot: plan.row_rates(sp, slot) for slot in SLOTS} for sp in SPS}
    for name in plan.s1sp_shares:  # one S1SP's share (run --s1sp): its own A7 row
        rows[f"S1SP/{name}"] = {slot: plan.row_rates("S1SP", slot, name) for slot in SLOTS}
    extra: dict[str, Any] = {}
    if plan.secmp0192 is not None:  # SECMP0192's executions are sent beside Table A7, not inside it
        extra["secmp0192_rates"] = {
            key: {slot: plan.secmp0192_rate("S1SP" if name else key, slot, name) for slot in SLOTS}
            for key, name in [*((sp, None) for sp in SPS), *((f"S1SP/{n}", n) for n in plan.s1sp_shares)]}
    return {**extra, "inputs": inputs, "A7_rows": rows,
            "example_profile": is_example_profile(profile_path, profile.name)}
