"""Why a run is being stopped early, told to its load processes through the run folder: ``interrupt.json``.

The parent stops Locust with SIGINT when the operator presses Ctrl-C (or the job
gets SIGTERM) and when the system under test dies. Locust's shutdown then runs the
drain (:mod:`dcc_capacity.load.drain`), which waits up to ``--drain`` - minutes
against a slow gateway - for answers a dead SUT will never give and the operator
asked not to wait for; the parent kills Locust 15 s later, and the drain file (what
was awaited, the send lag, the host's CPU) was lost with it. So the parent writes
this file before the signal, and a draining process that sees it ends its drain at
once: what is still awaited is recorded missing, its books are written, and the
run's report follows within seconds.

Free of Locust, so the parent writes it without gevent's patching.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

__all__ = ["INTERRUPT_FILE", "interrupt_reason", "request_interrupt"]

INTERRUPT_FILE = "interrupt.json"


def request_interrupt(run_dir: str | Path, reason: str) -> None:
    """Tell the run's load processes to end their drain now, and why (kept in the run folder as evidence)."""
    path = Path(run_dir) / INTERRUPT_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"reason": reason, "time": time.time()}) + "\n", encoding="utf-8")
    tmp.replace(path)  # whole or absent: a process polling it never reads half a file


def interrupt_reason(run_dir: str | Path | None) -> str | None:
    """The reason the run is being stopped early, None while it is not (one stat: cheap to poll)."""
    if run_dir is None:
        return None
    path = Path(run_dir) / INTERRUPT_FILE
    if not path.exists():
        return None
    try:
        return str(json.loads(path.read_text(encoding="utf-8")).get("reason") or "interrupted")
    except (OSError, ValueError, AttributeError):
        return "interrupted"
