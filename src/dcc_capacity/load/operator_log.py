"""The operator's record of a steered run: ``operator_actions.jsonl`` and the stress steps, read back for run.json.

Free of Locust (unlike :mod:`dcc_capacity.load.controlled_shape`, which writes
them), so ``dcc-capacity run`` can read them without gevent's patching.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["ACTIONS_FILE", "load_operator_actions", "stress_section"]

ACTIONS_FILE = "operator_actions.jsonl"


def load_operator_actions(run_dir: str | Path) -> list[dict[str, Any]]:
    """The run's operator actions, in order, for run.json's ``operator_actions`` ([] when there are none).

    A line cut short by a killed process is skipped: the file is written one
    whole line per action, so only the last one can be partial.
    """
    path = Path(run_dir) / ACTIONS_FILE
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and {"time", "who", "action"} <= row.keys():
            out.append(row)
    return out


def stress_section(result: dict[str, Any]) -> dict[str, Any]:
    """run.json's ``stress`` object from :meth:`ControlledShape.result` (shape.json): steps and the knee."""
    steps = [{"step": s["step"], "target_rate": s["total_rate"], "start_s": s["started_t"], "end_s": s["ended_t"],
              "requests": s["requests"], "failures": s["failures"], "p95_ms": s["p95_ms"], "passed": s["passed"]}
             for s in result.get("steps") or []]
    return {"steps": steps, "knee": result.get("knee_rate")}
