"""What run.json must declare so the report can judge a scenario: soak slot windows, the outage window, limits.

The report is rebuilt from the run folder alone, so whatever only the run
knows goes into run.json here: when the outage really was (the embedded
emulator's windows count from ITS start, not from the test's), which slot's
mix the soak offered when, and the verdict limits the user set (the types' verdict knobs).
Free of Locust (the CLI process stays unpatched).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dcc_capacity.spec.model import knobs_of
from dcc_capacity.spec.resolve import Resolved
from dcc_capacity.testtypes.soak import soak_slots

__all__ = ["limits_of", "scenario_facts", "soak_slots"]


def limits_of(spec: Any) -> dict[str, float]:
    """The verdict limits the user set (the type's ``group="verdict"`` knobs: ``--drift-limit`` ...), by their
    run.json ``limits`` key (the field's name); the report's defaults fill the rest (report/scenarios.py)."""
    return {name: float(getattr(spec, name)) for name, k in knobs_of(type(spec)).items()
            if k.group == "verdict" and getattr(spec, name) is not None}


def scenario_facts(spec: Any, r: Resolved, run_dir: Path, test_start: float,
                   emulator_t0: float | None) -> dict[str, Any]:
    """run.json keys for the scenario sections: ``limits``, ``excluded_classes``, and the test type's own facts
    (soak slots, the catch-up's outage window: testtypes/)."""
    from dcc_capacity.testtypes.registry import get

    out: dict[str, Any] = {}
    limits = limits_of(spec)
    if limits:
        out["limits"] = dict(limits)
    if spec.exclude:
        out["excluded_classes"] = list(spec.exclude)
    out.update(get(spec.test).facts(spec, r, run_dir, test_start, emulator_t0))
    return out
