"""The scenario sections of the report: soak drift, outage catch-up, noisy-neighbour fairness, scale recovery.

One entry point for ``build.py`` (:func:`analyse`), so the shared builder
only gains a line. Each test type says which section it has (testtypes/:
``section``, ``template``, its console ``line`` and ``risk``); the figures are
the report's, one module per section (``drift.py``, ``catchup.py``, ``fairness.py``,
``scale.py``), found through :data:`ANALYSERS`; their verdicts are shown in
the section and listed as risks when they fail, but do not change the NFR
exit status: they are judgements against limits the tester chose
(run.json ``limits``, from ``run --drift-limit`` etc.), not contract NFRs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from dcc_capacity.errors import InputError
from dcc_capacity.report import catchup, drift, fairness, scale
from dcc_capacity.testtypes.registry import TYPES

__all__ = ["ANALYSERS", "DEFAULT_LIMITS", "analyse", "public", "risks", "sections"]

DEFAULT_LIMITS: dict[str, Any] = {"drift_ms_per_h": 100.0, "memory_mib_per_h": 50.0, "fair_share_min": 0.9,
                                  "recovery_target_s": None}
"""Verdict limits when run.json gives none. recovery_target_s None: as long as the outage lasted."""


def _limits(given: Any, path: Any) -> dict[str, Any]:
    """run.json ``limits`` over the defaults; a hand-edited bad value is one line naming the field (exit 2)."""
    if given is None:
        return dict(DEFAULT_LIMITS)
    if not isinstance(given, dict):
        raise InputError("must be an object", file=path, key="limits")
    out = dict(DEFAULT_LIMITS)
    for key, value in given.items():
        if key not in DEFAULT_LIMITS:
            raise InputError(f"unknown limit (one of {', '.join(DEFAULT_LIMITS)})", file=path, key=f"limits.{key}")
        if value is None and key == "recovery_target_s":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise InputError(f"must be a number >= 0 (got {value!r})", file=path, key=f"limits.{key}")
        out[key] = float(value)
    return out


def _drift(folder: Any, metrics: Any, duration: float | None, batches: Any,
           limits: dict[str, Any]) -> dict[str, Any] | None:
    out = drift.analyse(folder.run, metrics.latency_time, metrics.bucket_s, folder.sut_metrics, folder.start_epoch,
                        duration, limits)
    out["_chart"] = drift.drift_chart(out)
    return out


def _catchup(folder: Any, metrics: Any, duration: float | None, batches: Any,
             limits: dict[str, Any]) -> dict[str, Any] | None:
    return catchup.analyse(folder.run, lambda: batches(catchup.COLUMNS), folder.start_epoch, duration, limits)


def _fairness(folder: Any, metrics: Any, duration: float | None, batches: Any,
              limits: dict[str, Any]) -> dict[str, Any] | None:
    return fairness.analyse(folder.run, lambda: batches(fairness.COLUMNS), folder.start_epoch, duration, limits)


Analyser = Callable[[Any, Any, float | None, Any, dict[str, Any]], dict[str, Any] | None]
ANALYSERS: dict[str, Analyser] = {"drift": _drift, "catchup": _catchup, "fairness": _fairness,
                                  "scale": scale.analyse}
"""A test type's ``section`` -> the function that computes its figures (folder, metrics, duration,
``batches(columns)``, limits; None: nothing to show). A new section adds its module here."""


def analyse(folder: Any, metrics: Any, duration: float | None, batches: Any) -> dict[str, Any]:
    """The scenario figures of this run (empty for a test type without one); ``batches(columns)`` re-reads.

    The section is the test type's (testtypes/: ``section``, ``line``, ``risk``); its figures come from
    :data:`ANALYSERS`."""
    run = folder.run
    limits = _limits(run.get("limits"), folder.path / "run.json")
    kind = TYPES.get(str(run.get("test_type")))
    out: dict[str, Any] = {}
    res = ANALYSERS[kind.section](folder, metrics, duration, batches, limits) if kind and kind.section else None
    if res is not None and kind is not None and kind.section:
        out[kind.section] = res
        line = kind.line(res)
        out["lines"] = [line] if line else []
    return out


def sections() -> list[tuple[str, str]]:
    """(summary key, template) of every test type's scenario section, for reports/_scenarios.html.j2."""
    return [(t.section, t.template) for t in TYPES.values() if t.section and t.template]


def public(s: dict[str, Any]) -> dict[str, Any]:
    """The JSON part (summary.json ``scenarios``): chart series (keys starting with ``_``) left out."""
    return {k: ({kk: vv for kk, vv in v.items() if not kk.startswith("_")} if isinstance(v, dict) else v)
            for k, v in s.items()}


def risks(s: dict[str, Any]) -> list[dict[str, str]]:
    """Risk lines for the report's 6.3.2 when a scenario verdict failed."""
    out = []
    for t in TYPES.values():
        if t.section and isinstance(s.get(t.section), dict):
            risk = t.risk(s[t.section])
            if risk is not None:
                out.append(risk)
    return out
