"""What run.json must declare so the report can judge a scenario: soak slot windows, the outage window, limits.

The report is rebuilt from the run folder alone, so whatever only the run
knows goes into run.json here: when the outage really was (the embedded
emulator's windows count from ITS start, not from the test's), which slot's
mix the soak offered when, and the verdict limits given on the command line.
Free of Locust (the CLI process stays unpatched).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from dcc_capacity.errors import InputError
from dcc_capacity.spec.model import parse_duration
from dcc_capacity.spec.resolve import Resolved
from dcc_capacity.testtypes.soak import soak_slots

__all__ = ["limits_from_args", "scenario_facts", "soak_slots"]


def limits_from_args(args: argparse.Namespace) -> dict[str, float]:
    """The limits given on the ``run`` command line (InputError for a bad one); run.json ``limits``."""
    out: dict[str, float] = {}
    for key, opt, value in (("drift_ms_per_h", "--drift-limit", args.drift_limit),
                            ("memory_mib_per_h", "--memory-growth-limit", args.memory_growth_limit)):
        if value is not None:
            if not (value >= 0 and math.isfinite(value)):
                raise InputError(f"must be >= 0 (got {value})", key=opt)
            out[key] = float(value)
    if args.fair_share_min is not None:
        if not 0 < args.fair_share_min <= 1:
            raise InputError(f"must be in (0, 1] (got {args.fair_share_min})", key="--fair-share-min")
        out["fair_share_min"] = float(args.fair_share_min)
    if args.recovery_target is not None:
        out["recovery_target_s"] = parse_duration(args.recovery_target, "--recovery-target")
    return out


def scenario_facts(spec: Any, r: Resolved, run_dir: Path, test_start: float, emulator_t0: float | None,
                   limits: dict[str, float]) -> dict[str, Any]:
    """run.json keys for the scenario sections: ``limits``, ``excluded_classes``, and the test type's own facts
    (soak slots, the catch-up's outage window: testtypes/)."""
    from dcc_capacity.testtypes.registry import get

    out: dict[str, Any] = {}
    if limits:
        out["limits"] = dict(limits)
    if spec.exclude:
        out["excluded_classes"] = list(spec.exclude)
    out.update(get(spec.test).facts(spec, r, run_dir, test_start, emulator_t0))
    return out
