"""`locust -f locustfiles/dcc.py` as users run it: -t honoured, no --host starts the emulator, no callback said."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from _lanes import Cli, cli, lanes
from _load_helpers import slow_sut
from dcc_capacity.load.records import load_records

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def locust(*args: str, run_time: str = "10s", timeout: float = 90) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "DCC_CAPACITY_DEVICE_LATENCY": "fast"}
    return subprocess.run([sys.executable, "-m", "locust", "-f", "locustfiles/dcc.py", "--headless", "-t", run_time,
                           "--only-summary", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _locust(*args: str, run_time: str) -> Cli:
    return cli(["-f", "locustfiles/dcc.py", "--headless", "-t", run_time, "--only-summary", *args], module="locust",
               timeout=90, env={"DCC_CAPACITY_DEVICE_LATENCY": "fast"})


def _silent_host(tmp: Path):  # noqa: ANN202 - a job (tests/_lanes.py)
    with slow_sut(tmp) as sut:  # acks every request, never calls back (no callback URL)
        return (yield _locust("--host", sut.url, "--dcc-rate", "10", "--run-dir", str(tmp / "run"), "--trt-late",
                              "1", "--trt-missing", "2", run_time="8s"))


def _embedded(tmp: Path):  # noqa: ANN202 - a job
    return tmp, (yield _locust("--dcc-rate", "20", "--run-dir", str(tmp), "--trt-late", "5", "--trt-missing", "10",
                               run_time="6s"))


@pytest.fixture(scope="module")
def runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """Both Locust runs at once (tests/_lanes.py)."""
    silent, embedded = tmp_path_factory.mktemp("silent"), tmp_path_factory.mktemp("embedded")
    yield from lanes(request, {
        "test_a_host_that_never_calls_back_is_named_within_seconds": lambda: _silent_host(silent),
        "test_no_host_runs_the_embedded_emulator_for_locusts_own_run_time": lambda: _embedded(embedded),
    })


def test_no_host_runs_the_embedded_emulator_for_locusts_own_run_time(runs):
    listed = subprocess.run([sys.executable, "-m", "locust", "-f", "locustfiles/dcc.py", "--list"], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, capture_output=True, text=True,
                            timeout=60)
    for cls in ("MeterReads", "S2IcCredit", "S2IcPrepay", "S1MigrationCredit", "S1MigrationPrepay", "Bau",
                "Secmp0192Schedules"):
        assert cls in listed.stdout
    tmp_path, p = runs.result("test_no_host_runs_the_embedded_emulator_for_locusts_own_run_time")
    assert p.returncode == 0, p.stderr[-3000:]
    assert "will be ignored" not in p.stderr  # Locust's -t is the shape's duration, not an ignored option
    shape = json.loads((tmp_path / "shape.json").read_text())
    assert shape["duration_s"] == 6
    started = re.search(r"embedded emulator on (http://127\.0\.0\.1:(\d+)) \(callbacks to (\S+)\)", p.stderr)
    assert started, p.stderr[-3000:]
    df = load_records(tmp_path)
    req = df[df["kind"] == "request"]
    attempts = int((~req["label"].astype(str).str.endswith(" CV5")).sum())
    assert 110 <= attempts <= 130, attempts  # 20 SRV/s for Locust's 6 s, not --dcc-duration's default 60 s
    assert set(req["outcome"]) == {"ok"}  # every async response came back to this process's listener
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", int(started[2])), 2):
        pass  # stopped when Locust quit


def test_a_host_that_never_calls_back_is_named_within_seconds(runs):
    p = runs.result("test_a_host_that_never_calls_back_is_named_within_seconds")
    hint = [ln for ln in p.stderr.splitlines() if "NO async response received yet" in ln]
    assert hint, p.stderr[-3000:]
    elapsed = re.match(r"\[dcc-capacity\] 00:00:(\d\d) \| awaiting", hint[0])
    assert elapsed and int(elapsed[1]) <= 7, hint[0]  # within seconds (the run lasts 8), no progress line needed
    assert re.search(r"listener http://127\.0\.0\.1:\d+/\?", hint[0]) and "--callback-port" in hint[0]
