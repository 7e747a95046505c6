"""The operator's record of a steered run: ``operator_actions.jsonl``, read back for run.json (the stress steps:
testtypes/stress.py ``stress_section``).

Free of Locust (unlike :mod:`dcc_capacity.load.controlled_shape`, which writes
them), so ``dcc-capacity run`` can read them without gevent's patching.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["ACTIONS_FILE", "load_operator_actions"]

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

