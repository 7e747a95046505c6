"""The run's own resilience: evidence that survives ``kill -9`` and workers that die are reported, not hidden.

Why a ``run.json`` before any load: the records stream to disk every second,
but ``run.json`` used to be written only at the end, so a run killed with
SIGKILL left records nobody could report on. :func:`write_run_json_early`
writes a ``status: running`` document as soon as the run folder exists;
``_finish`` replaces it. A folder still saying ``running`` was never finished
(killed, or its machine died): ``dcc-capacity report`` builds from the records
on disk and marks it INCOMPLETE (see docs/running.md, "If a run is killed").

Why a worker watch: in a distributed run Locust's master only marks a worker
that stops sending heartbeats as "missing" and carries on with the rest, so the
run "passes" with a fraction of the load. :class:`WorkerWatch` notices a worker
process that ended before the master did (when, which, its exit status); the
run then ends ``incomplete`` and run.json lists ``lost_workers``.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dcc_capacity.spec.resolve import default_test_id

__all__ = ["LostWorker", "WorkerWatch", "die_with_parent", "write_run_json_early", "lost_workers_failure"]


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds")


def write_run_json_early(out: Path, *, spec: Any, slot: str, started: float, target: str, command_line: list[str],
                         seed: int, workers: int) -> Path:
    """Write ``run.json`` with ``status: running``: enough for ``report`` to build if the run never finishes.

    Written to a temporary name and renamed, so a kill mid-write leaves no half
    JSON file. ``duration_s`` is left out on purpose: a killed run's duration is
    what its records cover (the report takes it from them).
    """
    doc = {
        "schema_version": 1,
        "test_id": spec.test_id or default_test_id(spec.test),
        "test_name": f"{spec.test.capitalize()}, {spec.sp}, {slot}",
        "test_type": spec.test, "sp": spec.sp, "slot": slot, "status": "running",
        "start": _iso(started), "planned_duration_s": spec.duration_s,
        "profile": {"path": str(spec.profile)}, "command_line": command_line or ["dcc-capacity", "run"],
        "seed": seed, "target": target, "spec": spec.to_dict(), "workers": workers,
        "runner_pid": os.getpid(),
    }
    path = out / "run.json"
    tmp = out / ".run.json.tmp"
    tmp.write_text(json.dumps(doc, indent=2, default=float) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def die_with_parent() -> None:
    """``preexec_fn``: the child gets SIGTERM when the process that started it dies (Linux; no-op elsewhere).

    Why: if ``run`` itself is SIGKILLed (the OOM killer, a closed terminal),
    Locust would otherwise go on loading the SUT unsupervised for the rest of
    the test (hours, in a soak). SIGTERM lets Locust stop and flush its records.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@dataclass
class LostWorker:
    """One Locust worker process that ended before the master: which, when, how."""

    worker: str
    pid: int
    lost_at: float
    after_s: float
    exit_status: int | None

    def to_dict(self) -> dict[str, Any]:
        return {"worker": self.worker, "pid": self.pid, "lost_at": _iso(self.lost_at),
                "after_s": round(self.after_s, 1), "exit_status": self.exit_status}


@dataclass
class WorkerWatch:
    """Polled from the run's watch loop: records each worker that died while the master was still running."""

    workers: list[subprocess.Popen]
    started: float = field(default_factory=time.time)
    lost: list[LostWorker] = field(default_factory=list)
    say: Any = None

    def check(self) -> list[LostWorker]:
        """New losses since the last call (each worker is reported once)."""
        seen = {w.pid for w in self.lost}
        new = []
        for i, proc in enumerate(self.workers):
            # Exit status 0: a worker told to quit at the end, a moment before the master; not a loss.
            if proc.pid in seen or proc.poll() is None or proc.returncode == 0:
                continue
            now = time.time()
            lw = LostWorker(worker=f"worker-{i}", pid=proc.pid, lost_at=now, after_s=now - self.started,
                            exit_status=proc.returncode)
            self.lost.append(lw)
            new.append(lw)
            if self.say is not None:
                self.say(f"Locust {lw.worker} (pid {lw.pid}) died {lw.after_s:.1f} s into the run "
                         f"(exit status {lw.exit_status}); the run goes on with the others and is marked incomplete")
        return new


def lost_workers_failure(lost: list[LostWorker]) -> str:
    """The run.json ``failure`` text for lost workers ('' when none)."""
    if not lost:
        return ""
    which = ", ".join(f"{w.worker} at {w.after_s:.1f} s" for w in lost)
    return f"{len(lost)} Locust worker(s) lost mid-run: {which}"
