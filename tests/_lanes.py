"""End-to-end CLI runs side by side: a module's runs two at a time, and single runs in a background lane.

Why: each ``dcc-capacity run`` in the tests is a few seconds of load between
start-up and the report, a process tree (parent, emulator, Locust) that uses
about one core in bursts and waits the rest. Run one after another they made
the suite 15 minutes on 2 cores. Two ways to overlap them, under one rule:
never more than two runs at once anywhere (:data:`LANES`), so a run's load
phase always has a core. The runs stay low-rate and their send lag is still
judged, against 1 s (tests/conftest.py): a run that late is INVALID and its test fails.

- A module's runs (:func:`lanes`): the module declares ``{test name: job}``;
  its fixture queues only the jobs of the tests pytest selected (so ``-k``
  runs just what it names); each test waits for its own result while the
  others go on. A run whose verdict depends on the CPU it gets (a stress knee:
  the emulator must keep its configured capacity) is declared :class:`alone`
  and takes both lanes.
- A test's single run in the background (:func:`background`): marked on the
  test, queued when collection ends (tests/conftest.py), so it runs while the
  tests before it do; the test reads its result from the ``background_run``
  fixture. For "run, then read the folder" tests only: a test that must act
  mid-run (kill a process at the right moment) stays in the foreground.

No threads: the pytest process is gevent-patched (the test modules import
Locust), where a thread is a greenlet that shares the interpreter's import
locks with the tests. A job is a generator that yields the command lines it
wants run (:func:`cli`) and returns its result; :data:`SCHEDULER` starts
them as subprocesses writing to files (never a pipe nobody reads) and moves
them on between tests (a pytest hook) and while a test waits for a result.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

__all__ = ["BACKGROUND", "LANES", "SCHEDULER", "Ran", "alone", "background", "cli", "lanes", "run_one"]

ROOT = Path(__file__).resolve().parents[1]
LANES = 2
"""Runs at once: the machine's 2 cores (the suite's budget is 12 minutes on 2 cores)."""
BACKGROUND_LANES = 1
"""Background runs at once beside the foreground (0: a queued run starts when its test asks for it). Off for one stop
after CI went red three times on runs made INVALID by host steal; back on since the runs judge send lag against 1 s
(tests/conftest.py: DCC_CAPACITY_RUN_MAX_SEND_LAG), the send-lag verdict keeping its own 50 ms tests."""


@dataclass(frozen=True)
class Ran:
    """A finished CLI run: its exit status, what it printed, where it wrote."""

    returncode: int
    stdout: str
    stderr: str
    out: Path | None = None


@dataclass(frozen=True)
class Cli:
    """One command a job wants run (``python -m <module> ARGS``), with output to files."""

    argv: list[str]
    out: Path | None
    timeout: float
    module: str
    env: dict[str, str]


def cli(args: Sequence[str], out: Path | None = None, *, timeout: float = 240, module: str = "dcc_capacity",
        env: dict[str, str] | None = None) -> Cli:
    """What a job yields: ``python -m <module> ARGS`` (``--out OUT`` appended); the job is sent a :class:`Ran`."""
    argv = [*args, *(["--out", str(out)] if out is not None else [])]
    return Cli(argv, out, timeout, module, dict(env or {}))


Job = Callable[[], Generator[Cli, Ran, Any]]


@dataclass(frozen=True)
class alone:  # noqa: N801 - reads as a marker: {"test_x": alone(job)}
    """A job that runs with no other run beside it (it takes both lanes)."""

    job: Job


@dataclass
class _Task:
    gen: Generator[Cli, Ran, Any]
    slots: int
    front: bool = False
    started: bool = False
    proc: subprocess.Popen | None = None
    cmd: Cli | None = None
    deadline: float = 0.0
    logs: Path | None = None
    done: bool = False
    result: Any = None
    error: BaseException | None = None
    files: list[Any] = field(default_factory=list)


class Scheduler:
    """Runs queued jobs' commands, at most :data:`LANES` at once, in queue order."""

    def __init__(self) -> None:
        self.queue: list[_Task] = []
        self.running: list[_Task] = []
        self.hold = False
        """A ``quiet`` test is running: no background run starts (tests/conftest.py)."""

    def submit(self, job: Job, slots: int = 1, *, front: bool = False) -> _Task:
        """Queue ``job``; ``front``: ahead of the background lane's tasks (a module's tests wait for it next)."""
        task = _Task(job(), slots, front=front)
        at = next((i for i, t in enumerate(self.queue) if not t.front), len(self.queue)) if front else len(self.queue)
        self.queue.insert(at, task)
        self.pump()
        return task

    def _busy(self) -> int:
        return sum(t.slots for t in self.running)

    def pump(self) -> None:
        """Collect finished commands, move their jobs on, start what fits."""
        for task in list(self.running):
            if task.proc is not None and task.proc.poll() is None:
                if time.monotonic() > task.deadline:
                    task.proc.kill()
                    task.proc.wait(10)
                    self._finish(task, error=TimeoutError(f"{task.cmd.argv[:4]}... ran over {task.cmd.timeout:g} s"))
                continue
            self._advance(task)
        while self.queue and self._busy() + self.queue[0].slots <= LANES:
            if not self.queue[0].front and (self.hold or self.background_running() >= BACKGROUND_LANES):
                break
            task = self.queue.pop(0)
            self.running.append(task)
            self._advance(task)

    def background_running(self) -> int:
        return sum(1 for t in self.running if not t.front)

    def quiet(self) -> None:
        """Hold the background lane while a test that needs the CPU runs: no run starts beside it (one already
        going ends on its own; waiting for it measured slower than running the suite one test at a time)."""
        self.hold = True

    def _advance(self, task: _Task) -> None:
        try:
            if not task.started:
                task.started = True
                cmd = next(task.gen)
            else:
                cmd = task.gen.send(self._collect(task))
        except StopIteration as stop:
            self._finish(task, result=stop.value)
            return
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test that asks
            self._finish(task, error=exc)
            return
        self._launch(task, cmd)

    def _launch(self, task: _Task, cmd: Cli) -> None:
        task.cmd, task.logs = cmd, Path(tempfile.mkdtemp(prefix="dcc-cli-"))
        task.files = [open(task.logs / "stdout", "w+"), open(task.logs / "stderr", "w+")]  # noqa: SIM115
        task.proc = subprocess.Popen([sys.executable, "-m", cmd.module, *cmd.argv], cwd=ROOT, stdout=task.files[0],
                                     stderr=task.files[1],
                                     env={**os.environ, "PYTHONPATH": str(ROOT / "src"), **cmd.env})
        task.deadline = time.monotonic() + cmd.timeout

    def _collect(self, task: _Task) -> Ran:
        assert task.proc is not None and task.cmd is not None
        so, se = task.files
        so.seek(0)
        se.seek(0)
        ran = Ran(int(task.proc.returncode), so.read(), se.read(), task.cmd.out)
        self._close(task)
        return ran

    def _close(self, task: _Task) -> None:
        for f in task.files:
            f.close()
        task.files, task.proc = [], None
        if task.logs is not None:
            shutil.rmtree(task.logs, ignore_errors=True)
            task.logs = None

    def _finish(self, task: _Task, result: Any = None, error: BaseException | None = None) -> None:
        self._close(task)
        task.done, task.result, task.error = True, result, error
        if task in self.running:
            self.running.remove(task)

    def wait(self, task: _Task, timeout: float = 600) -> Any:
        """The job's result, pumping until it is done (its exception re-raised here)."""
        if task in self.queue and not task.front:  # what the foreground waits for goes next, held or not
            self.queue.remove(task)
            task.front = True
            at = next((i for i, t in enumerate(self.queue) if not t.front), len(self.queue))
            self.queue.insert(at, task)
        deadline = time.monotonic() + timeout
        while not task.done:
            if time.monotonic() > deadline:
                raise TimeoutError("the run's job did not finish in time")
            self.pump()
            time.sleep(0.05)
        if task.error is not None:
            raise task.error
        return task.result

    def cancel(self, tasks: Sequence[_Task]) -> None:
        for task in tasks:
            if task in self.queue:
                self.queue.remove(task)
            if task.proc is not None and task.proc.poll() is None:
                task.proc.kill()
                task.proc.wait(10)
            if not task.done:
                self._finish(task, error=RuntimeError("cancelled"))
            task.gen.close()


SCHEDULER = Scheduler()


def run_one(cmd: Cli) -> Generator[Cli, Ran, Ran]:
    """The commonest job body: one command, its :class:`Ran` the result (``yield from run_one(cli(...))``)."""
    return (yield cmd)


class Lanes:
    def __init__(self, tasks: dict[str, _Task]) -> None:
        self._tasks = tasks

    def result(self, name: str, timeout: float = 600) -> Any:
        if name not in self._tasks:
            raise KeyError(f"no run declared for {name!r}")
        return SCHEDULER.wait(self._tasks[name], timeout)


def lanes(request: pytest.FixtureRequest, jobs: dict[str, Job | alone]) -> Iterator[Lanes]:
    """Queue the selected tests' jobs (in declaration order); yield their results' handle."""
    selected = {item.name.split("[")[0] for item in request.session.items if item.module is request.module}
    tasks = {name: SCHEDULER.submit(job.job if isinstance(job, alone) else job,
                                    LANES if isinstance(job, alone) else 1, front=True)
             for name, job in jobs.items() if name in selected}
    try:
        yield Lanes(tasks)
    finally:
        SCHEDULER.cancel(list(tasks.values()))


# -- the background lane ------------------------------------------------------------------------------------------

def background(job: Callable[[Path], Generator[Cli, Ran, Any]]) -> pytest.MarkDecorator:
    """Mark a test whose job ``job(tmp)`` is queued when collection ends; the test reads ``background_run``."""
    return pytest.mark.background.with_args(job)  # with_args: a lone callable would be the decorated function


class _Background:
    def __init__(self) -> None:
        self.tasks: dict[str, _Task] = {}
        self.dirs: list[Path] = []

    def start(self, items: Sequence[pytest.Item]) -> None:
        """Queue every selected background test's job, in the order the tests will ask."""
        by_job: dict[tuple[str, int], _Task] = {}  # a parametrized test's items share one run
        for item in items:
            marker = item.get_closest_marker("background")
            if marker is None:
                continue
            job = marker.args[0]
            key = (item.nodeid.split("[")[0], id(job))
            if key not in by_job:
                tmp = Path(tempfile.mkdtemp(prefix="dcc-bg-"))
                self.dirs.append(tmp)
                by_job[key] = SCHEDULER.submit(lambda job=job, tmp=tmp: job(tmp))
            self.tasks[item.nodeid] = by_job[key]

    def result(self, item: pytest.Item, timeout: float = 600) -> Any:
        if item.nodeid not in self.tasks:
            raise KeyError(f"{item.nodeid} is not marked @background")
        return SCHEDULER.wait(self.tasks[item.nodeid], timeout)

    def shared(self, request: pytest.FixtureRequest, test: str, job: Callable[[Path], Any]) -> Any:
        """For a module fixture several tests read: the run queued for ``test`` (marked ``@background(job)``),
        or, when pytest did not select that test, ``job`` run now."""
        task = self.tasks.get(f"{request.node.nodeid}::{test}")  # a module fixture's node is the module
        if task is None:
            tmp = Path(tempfile.mkdtemp(prefix="dcc-bg-"))
            self.dirs.append(tmp)
            task = SCHEDULER.submit(lambda: job(tmp), front=True)
        return SCHEDULER.wait(task)

    def stop(self) -> None:
        SCHEDULER.cancel(list(self.tasks.values()))
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)


BACKGROUND = _Background()
