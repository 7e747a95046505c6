"""What run.json must declare so the report can judge a scenario: soak slot windows, the outage window, limits.

The report is rebuilt from the run folder alone, so whatever only the run
knows goes into run.json here: when the outage really was (the embedded
emulator's windows count from ITS start, not from the test's), which slot's
mix the soak offered when, and the verdict limits given on the command line.
Free of Locust (the CLI process stays unpatched).
"""

from __future__ import annotations

import argparse
import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dcc_capacity.errors import InputError
from dcc_capacity.model.volume import SLOT_SECONDS, SLOTS
from dcc_capacity.spec.resolve import Resolved, TestSpec, class_rates, drop, parse_duration, scaled

__all__ = ["limits_from_args", "scenario_facts", "soak_slots"]


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds")


def soak_slots(spec: TestSpec, r: Resolved) -> list[dict[str, Any]]:
    """The soak's slots in day order: window (s from the test start) and SRV/s per class (the slot's A7 peak).

    The same arithmetic as ``load/shape.py`` (SoakShape): every slot at its
    own peak, scaled together when ``--rate`` gives the busiest slot's total.
    """
    slot_rates = {s: class_rates(r.plan, spec.sp, s, spec.secmp0192_share, spec.s1sp) for s in SLOTS}
    peak = max(sum(v.values()) for v in slot_rates.values())
    f = (spec.rate / peak) if (spec.rate is not None and peak > 0) else 1.0
    total = sum(SLOT_SECONDS[s] for s in SLOTS)
    out, edge = [], 0.0
    for s in SLOTS:
        span = spec.duration_s * SLOT_SECONDS[s] / total
        rates = {k: v for k, v in drop(scaled(slot_rates[s], f), spec.exclude).items() if v > 0}
        out.append({"slot": s, "start_s": edge, "end_s": edge + span, "total_rate": sum(rates.values()),
                    "rates": rates})
        edge += span
    return out


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


def _outage(spec: TestSpec, run_dir: Path, test_start: float, emulator_t0: float | None) -> dict[str, Any] | None:
    if not spec.client_hold and emulator_t0 is None:
        return None  # --host without --client-hold: the SUT's own outage, if any, is not ours to know
    if spec.client_hold:
        # The Service Users hold their traffic for the shape's window (CatchupShape: 1/3 of the run, 1/6 long).
        start = test_start + spec.duration_s / 3
        return {"start_epoch": start, "end_epoch": start + (spec.outage_s or spec.duration_s / 6),
                "source": "client hold window of the catch-up shape (from the test start)"}
    try:
        cfg = json.loads((run_dir / "logs" / "emulator-config.json").read_text())
        window = cfg["faults"]["outage"]["windows"][0]
    except (OSError, ValueError, KeyError, IndexError):
        return None
    start = emulator_t0 + float(window["start_s"])
    return {"start_epoch": start, "end_epoch": start + float(window["duration_s"]),
            "source": "embedded emulator outage window (logs/emulator-config.json), from the emulator's start"}


def scenario_facts(spec: TestSpec, r: Resolved, run_dir: Path, test_start: float, emulator_t0: float | None,
                   limits: dict[str, float]) -> dict[str, Any]:
    """run.json keys for the scenario sections: ``limits``, ``soak`` (slots), ``catchup`` (outage window)."""
    out: dict[str, Any] = {}
    if limits:
        out["limits"] = dict(limits)
    if spec.exclude:
        out["excluded_classes"] = list(spec.exclude)
    if spec.test == "soak":
        out["soak"] = {"slots": soak_slots(spec, r)}
    if spec.test == "catchup":
        outage = _outage(spec, run_dir, test_start, emulator_t0)
        if outage is not None:
            outage["start"], outage["end"] = _iso(outage["start_epoch"]), _iso(outage["end_epoch"])
            outage["duration_s"] = outage["end_epoch"] - outage["start_epoch"]
            out["catchup"] = {"outage": outage, "client_hold": spec.client_hold}
    return out
