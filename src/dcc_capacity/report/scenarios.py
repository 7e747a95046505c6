"""The scenario sections of the report: soak drift, outage catch-up, noisy-neighbour fairness.

One entry point for ``build.py`` (:func:`analyse`), so the shared builder
only gains a line. Each scenario's figures live in its own module
(``drift.py``, ``catchup.py``, ``fairness.py``); their verdicts are shown in
the section and listed as risks when they fail, but do not change the NFR
exit status: they are judgements against limits the tester chose
(run.json ``limits``, from ``run --drift-limit`` etc.), not contract NFRs.
"""

from __future__ import annotations

import math
from typing import Any

from dcc_capacity.errors import InputError

__all__ = ["DEFAULT_LIMITS", "analyse", "public", "risks"]

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


def analyse(folder: Any, metrics: Any, duration: float | None, batches: Any) -> dict[str, Any]:
    """The scenario figures of this run (empty for a test type without one); ``batches(columns)`` re-reads."""
    run = folder.run
    limits = _limits(run.get("limits"), folder.path / "run.json")
    test = run.get("test_type")
    out: dict[str, Any] = {}
    if test == "soak":
        from dcc_capacity.report.drift import analyse as drift
        from dcc_capacity.report.drift import drift_chart

        out["drift"] = drift(run, metrics.latency_time, metrics.bucket_s, folder.sut_metrics, folder.start_epoch,
                             duration, limits)
        out["drift"]["_chart"] = drift_chart(out["drift"])
    elif test == "catchup":
        from dcc_capacity.report.catchup import COLUMNS
        from dcc_capacity.report.catchup import analyse as catchup

        res = catchup(run, lambda: batches(COLUMNS), folder.start_epoch, duration, limits)
        if res is not None:
            out["catchup"] = res
    elif test == "noisy-neighbour":
        from dcc_capacity.report.fairness import COLUMNS as FCOLS
        from dcc_capacity.report.fairness import analyse as fairness

        res = fairness(run, lambda: batches(FCOLS), folder.start_epoch, duration, limits)
        if res is not None:
            out["fairness"] = res
    if out:
        out["lines"] = _lines(out)
    return out


def public(s: dict[str, Any]) -> dict[str, Any]:
    """The JSON part (summary.json ``scenarios``): chart series left out."""
    out = dict(s)
    if "drift" in out:
        out["drift"] = {k: v for k, v in out["drift"].items() if not k.startswith("_")}
    return out


def _f(v: Any, fmt: str = ".1f") -> str:
    return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, fmt)


def _lines(s: dict[str, Any]) -> list[str]:
    lines = []
    if "drift" in s:
        d = s["drift"]
        parts = [f"{k} {_f((d.get(k) or {}).get('slope'), '+.1f')} {(d.get(k) or {}).get('unit', '')}"
                 for k in ("ack_p95", "trt_p95", "rss") if k in d]
        lines.append(f"soak drift: {', '.join(parts)}: {d['verdict'].upper()}")
    if "catchup" in s:
        c = s["catchup"]
        ttr = _f(c["time_to_recover_s"], ".2f")
        lines.append(f"catch-up: backlog {c['backlog']} requests, time to recover {ttr} s "
                     f"(target {_f(c['recovery_target_s'], '.1f')} s), rate needed {_f(c['rate_needed'])}/s, "
                     f"peak achieved {_f(c['peak_rate_achieved'])}/s: {c['verdict'].upper()}")
    if "fairness" in s:
        f = s["fairness"]
        quiet = [u for u in f["users"] if u["role"] == "quiet" and u["kept"] is not None]
        kept = min((u["kept"] for u in quiet), default=None)
        lines.append(f"noisy neighbour: burst by {', '.join(f['burst_users']) or 'nobody'}; quiet users kept "
                     f">= {_f(None if kept is None else kept * 100, '.1f')} % of their offered load in the burst: "
                     f"{f['verdict'].upper()}")
    return lines


def risks(s: dict[str, Any]) -> list[dict[str, str]]:
    """Risk lines for the report's 6.3.2 when a scenario verdict failed."""
    out = []
    if (s.get("drift") or {}).get("verdict") == "fail":
        out.append({"level": "high", "text": "Soak: latency or SUT memory drifts upwards beyond its limit.",
                    "href": "drift"})
    if (s.get("catchup") or {}).get("verdict") == "fail":
        out.append({"level": "high", "text": "Outage catch-up: the SUT did not recover within the target.",
                    "href": "catchup"})
    if (s.get("fairness") or {}).get("verdict") == "fail":
        out.append({"level": "high", "text": "Noisy neighbour: a quiet Service User lost part of its share.",
                    "href": "fairness"})
    return out
