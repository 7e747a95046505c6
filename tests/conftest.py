"""Shared fixtures: repository paths and the CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Every emulator the suite starts - in this process, a `dcc-capacity emulator` or `dcc-capacity run` subprocess,
# a Locust worker - inherits this: the sub-second `fast` device latency, so tests stay as quick as they were.
# A user who sets nothing gets the realistic `dcc-test` preset (docs/emulator.md, "Device latency"); the tests
# of that preset name it in their config, which wins over this variable.
os.environ["DCC_CAPACITY_DEVICE_LATENCY"] = "fast"
# Every `dcc-capacity run` the tests start judges the generator's send lag against 1 s, not the 50 ms project default:
# the tests judge behaviour (roles, TLS, verdicts, reports) on a shared 2-core VM whose hypervisor takes up to a third
# of the CPU in spells, which made low-rate runs INVALID at random. The send-lag verdict itself keeps its own tests at
# 50 ms (test_pending.py: a valid run's p99 < 50 ms; a flood is INVALID with --max-send-lag 50), and the benchmarks
# measure lag with the host's steal beside it. A flag or the test's own environment wins over this (configmap.py).
os.environ["DCC_CAPACITY_RUN_MAX_SEND_LAG"] = "1000"

ROOT = Path(__file__).resolve().parents[1]
SHARED_EXAMPLE = ROOT / "tests" / "data"


@pytest.fixture
def run_cli():
    """Run ``dcc-capacity ARGS`` in a subprocess, as a user would; returns CompletedProcess."""

    def _run(*args: str, timeout: float = 120, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "dcc_capacity", *args],
            capture_output=True, text=True, timeout=timeout, cwd=cwd or ROOT,
        )

    return _run


@pytest.fixture(scope="session")
def sign_wrap():
    """DCC Boxed's signing tool, schema and test keys (npm @smartdcc/duis-sign-wrap)."""
    from peers import duis_sign_wrap

    return duis_sign_wrap()


@pytest.fixture(scope="session")
def duis_xsd(sign_wrap):
    """The official DUIS V5.1 schema, compiled by lxml."""
    from dcc_capacity.duis.schema import load_schema

    return load_schema(sign_wrap.xsd)


CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
"""Flags for Debian's chromium on a closed network (no background fetches)."""


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of Debian's chromium. CI installs it (.ci/run): there a missing browser fails, never skips."""
    import os
    import shutil

    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run installs Debian's chromium package")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    return path


# -- CLI runs in the background lane (tests/_lanes.py) -----------------------------------------------------------

def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the selected tests' background runs now: they run while the tests before them do."""
    from _lanes import BACKGROUND

    BACKGROUND.start(session.items)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Between tests: move the queued runs on (a finished one's job goes on, a free lane takes the next). A
    ``quiet`` test (its figures depend on the CPU it gets) holds the background lane: no run starts beside it."""
    from _lanes import SCHEDULER

    SCHEDULER.pump()
    if item.get_closest_marker("quiet") is not None:
        SCHEDULER.quiet()


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    from _lanes import SCHEDULER

    SCHEDULER.hold = nextitem is not None and nextitem.get_closest_marker("quiet") is not None  # a quiet run
    SCHEDULER.pump()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from _lanes import BACKGROUND

    BACKGROUND.stop()


@pytest.fixture
def background_run(request: pytest.FixtureRequest):
    """The result of this test's ``@background(job)`` run (tests/_lanes.py)."""
    from _lanes import BACKGROUND

    return BACKGROUND.result(request.node)
