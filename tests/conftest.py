"""Shared fixtures: repository paths and the CLI runner."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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
