"""The suite's own resilience (issue #9): kill -9 of a whole run, a lost Locust worker, torn record files.

These start real runs (the CLI, Locust, the embedded emulator) as subprocesses
and kill them with SIGKILL: the evidence on disk is what is being tested, so
nothing here is faked. Each run is short and bounded.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest

from _load_helpers import wait_until
from dcc_capacity.load.records import load_records

pytestmark = pytest.mark.quiet  # its figures depend on the CPU it gets (tests/_lanes.py)

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
RATE = 40.0


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src")}


def _start_run(out: Path, log: Path, *extra: str) -> subprocess.Popen:
    """`dcc-capacity run` in its own process group, stderr to ``log``."""
    fh = log.open("wb")
    return subprocess.Popen([PY, "-m", "dcc_capacity", "run", "--test", "load", "--rate", str(RATE), "--out",
                             str(out), *extra], cwd=ROOT, env=_env(), stdout=fh, stderr=fh, start_new_session=True)


def _emulator_url(log: Path, proc: subprocess.Popen, deadline: float) -> str:
    while time.time() < deadline and proc.poll() is None:
        m = re.search(r"embedded emulator on (http://127\.0\.0\.1:\d+)", log.read_text(errors="replace"))
        if m:
            return m.group(1)
        time.sleep(0.2)
    raise AssertionError(f"the run did not start its emulator:\n{log.read_text(errors='replace')[-2000:]}")


def _acked(url: str) -> int:
    with urllib.request.urlopen(url + "/metrics.json", timeout=2) as resp:  # noqa: S310 - loopback
        return int(json.loads(resp.read())["totals"]["acked"])


def _request_rows(out: Path) -> int:
    df = load_records(out)
    return int((df["kind"] == "request").sum())


def _srv_attempts(out: Path) -> int:
    """Request rows as the summary counts them: a critical SRV's CV 4 and CV 5 rows are one SRV attempt."""
    df = load_records(out)
    df = df[df["kind"] == "request"]
    keys = list(zip(df["process"], df["request_id"], strict=True))
    label = df["label"].astype(str)
    cv4 = {k for k, is4 in zip(keys, label.str.endswith(" CV4"), strict=True) if is4}
    paired_cv5 = sum(k in cv4 for k, is5 in zip(keys, label.str.endswith(" CV5"), strict=True) if is5)
    return len(df) - paired_cv5


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _kill_tree(proc: subprocess.Popen) -> list[int]:
    """SIGKILL the run and every process under it (Locust runs in sessions of its own, so not one killpg)."""
    import psutil

    victims = [proc.pid, *(c.pid for c in psutil.Process(proc.pid).children(recursive=True))]
    groups = {os.getpgid(p) for p in victims if psutil.pid_exists(p)}
    for g in groups:
        os.killpg(g, signal.SIGKILL)
    proc.wait(10)
    return victims


@pytest.fixture
def cli(capsys):
    """The CLI in this process (fast): (exit status, stdout, stderr)."""
    from dcc_capacity.cli import main

    def _run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse
            code = int(exc.code or 0)
        cap = capsys.readouterr()
        return code, cap.out, cap.err

    return _run


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_kill_9_of_the_whole_run_loses_at_most_the_last_second_and_reports_incomplete(tmp_path, cli):

    out, log = tmp_path / "killed", tmp_path / "run.log"
    proc = _start_run(out, log, "--duration", "60s")
    try:
        url = _emulator_url(log, proc, time.time() + 40)
        # run.json is there before any load: the folder can be reported on whatever happens next.
        early = json.loads((out / "run.json").read_text())
        assert early["status"] == "running" and early["spec"]["duration_s"] == 60
        deadline = time.time() + 40
        while time.time() < deadline and not (list((out / "records").glob("*.arrows")) and _acked(url) > 4 * RATE):
            time.sleep(0.2)
        time.sleep(1.3)  # mid-flush-interval, not right after a flush
        acked = _acked(url)  # what the SUT had answered a moment before the kill
        victims = _kill_tree(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    wait_until(lambda: not any(_alive(p) for p in victims), 5.0, "every process of the killed run is gone")
    on_disk = _request_rows(out)
    # Rows are flushed every second: at most ~1 s of acked requests (plus the few acked since the poll) are lost.
    assert acked - 1.5 * RATE <= on_disk <= acked + 0.5 * RATE, (acked, on_disk)
    code, stdout, err = cli("report", str(out))
    assert code == 1, err
    assert "Traceback" not in err and "run INCOMPLETE" in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["requests"] == _srv_attempts(out) and summary["complete"] is False and summary["killed"] is True
    html = (out / "report.html").read_text()
    assert "INCOMPLETE" in html and "This run was killed" in html


def _small_file(tmp_path: Path) -> tuple[Path, list[int]]:
    from dcc_capacity.load.records import RecordWriter

    w = RecordWriter(tmp_path, tag="cut", start_flusher=False)
    sizes = []
    for batch, n in enumerate((7, 13, 5)):
        for i in range(n):
            w.write(request_id=f"{batch}-{i}", intended_ts=1.7e9 + i, outcome="ok", label="4.6.1")
        w.flush()
        sizes.append(w.path.stat().st_size)
    w._sink.close()  # a SIGKILLed writer: no end-of-stream marker
    return w.path, sizes


def test_every_cut_point_of_a_record_file_keeps_exactly_the_complete_batches(tmp_path):
    """A kill can stop the writer anywhere: whatever the cut, the reader keeps each batch that is whole, no error."""
    from dcc_capacity.load.records import RecordStats, iter_raw_batches

    path, ends = _small_file(tmp_path)
    data = path.read_bytes()
    cut_file = tmp_path / "records" / "records-x.arrows"
    path.unlink()
    checked = 0
    for cut in range(0, len(data) + 1, 3):
        cut_file.write_bytes(data[:cut])
        stats = RecordStats()
        rows = [b.num_rows for b in iter_raw_batches(cut_file, stats)]
        whole = [n for n, end in zip((7, 13, 5), ends, strict=True) if end <= cut]
        assert rows == whole, (cut, rows, whole)
        assert bool(stats.truncated) == (cut not in (len(data), *ends) and cut > 0), cut
        checked += 1
    assert checked > 100


def test_a_folder_still_running_reports_as_killed_and_incomplete(tmp_path, cli):
    """run.json as written before the load (status running, no end, no duration): report builds, exit 1."""
    from _report_helpers import make_run

    run = make_run(tmp_path / "r", status="running", duration_s=120.0)
    doc = json.loads((run / "run.json").read_text())
    for key in ("end", "duration_s"):
        doc.pop(key)
    (run / "run.json").write_text(json.dumps(doc))
    code, _, err = cli("report", str(run))
    assert code == 1 and "Traceback" not in err and "run INCOMPLETE" in err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["killed"] is True and summary["complete"] is False and summary["requests"] > 1000
    assert 100 < summary["duration_s"] < 130  # as far as the records go (the last answer, a little past 120 s)
    html = (run / "report.html").read_text()
    assert "This run was killed" in html and "INCOMPLETE" in html


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_worker_killed_mid_run_is_reported_and_the_run_marked_incomplete(tmp_path):
    import psutil

    out, log = tmp_path / "lost", tmp_path / "run.log"
    proc = _start_run(out, log, "--duration", "8s", "--workers", "2")
    victim = None
    try:
        deadline = time.time() + 40
        while time.time() < deadline and victim is None and proc.poll() is None:
            time.sleep(0.2)
            files = list((out / "records").glob("*.arrows"))
            if len(files) == 2 and all(f.stat().st_size > 2000 for f in files):
                kids = psutil.Process(proc.pid).children(recursive=True)
                workers = [k for k in kids if "--worker" in k.cmdline()]
                victim = workers[1] if len(workers) == 2 else None
        assert victim is not None, log.read_text(errors="replace")[-2000:]
        killed_at = time.time()
        victim.send_signal(signal.SIGKILL)
        proc.wait(90)
    finally:
        if proc.poll() is None:
            _kill_tree(proc)
    err = log.read_text(errors="replace")
    # The run finished without all its load: INCOMPLETE, and INVALID (exit 3): the lost worker's share was not sent
    # until Locust re-dispatched it, so the generator, not the system, fell short.
    assert proc.returncode == 3, err[-2000:]
    assert "Traceback" not in err and "worker-1" in err and "lost mid-run" in err
    run_doc = json.loads((out / "run.json").read_text())
    assert run_doc["status"] == "incomplete" and "worker-1 at" in run_doc["failure"]
    (lost,) = run_doc["lost_workers"]
    assert lost["worker"] == "worker-1" and lost["pid"] == victim.pid and lost["exit_status"] == -9
    assert abs(datetime.fromisoformat(lost["lost_at"]).timestamp() - killed_at) < 2.0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is False and summary["lost_workers"][0]["worker"] == "worker-1"
    assert summary["valid"] is False and "lost mid-run (worker-1)" in summary["invalid_reasons"][0]
    html = (out / "report.html").read_text()
    assert "Locust workers lost mid-run" in html and "INCOMPLETE" in html and 'class="banner INVALID"' in html
    # the surviving worker carried on after the loss: its records go on well past the victim's last one
    df = load_records(out)
    req = df[df["kind"] == "request"]
    last = req.groupby("process")["sent_ts"].max().sort_values()
    assert len(last) == 2 and last.iloc[1] > last.iloc[0] + 2.0, last.to_dict()


PARENT = """
import subprocess, sys, time
from dcc_capacity.orchestrate.resilience import die_with_parent

child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], preexec_fn=die_with_parent)
print(child.pid, flush=True)
time.sleep(60)
"""


@pytest.mark.timeout(30)
def test_locust_started_by_a_run_that_is_killed_stops_instead_of_loading_the_sut_unsupervised():
    """`run` starts Locust with die_with_parent: SIGKILL of the runner alone sends its children SIGTERM."""
    import psutil

    parent = subprocess.Popen([PY, "-c", PARENT], env=_env(), stdout=subprocess.PIPE, text=True)
    try:
        child = psutil.Process(int(parent.stdout.readline()))
        assert child.is_running() and child.status() != psutil.STATUS_ZOMBIE
        parent.send_signal(signal.SIGKILL)
        parent.wait(5)
        deadline = time.time() + 5
        while time.time() < deadline and psutil.pid_exists(child.pid) and child.status() != psutil.STATUS_ZOMBIE:
            time.sleep(0.05)
        assert not psutil.pid_exists(child.pid) or child.status() == psutil.STATUS_ZOMBIE
    finally:
        if parent.poll() is None:
            parent.kill()
