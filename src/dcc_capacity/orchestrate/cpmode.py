"""CP mode's part of a run: the embedded emulator plays the Commissioning Party, Locust drives its SFTP.

Why here and small: ``run --sp CP`` (every test type but ``negative``, which
has its own migration cases) tests the CP on its own interface, migration
files over SFTP (SCTAD 3.4(b)); the load side is load/users/cp.py, the report
side report/cp.py. This module only says how the run wires them: the
emulator's CP settings (SFTP root in the run folder, migration fallout at the
share the live service saw) and the ``sftp://`` host the Locust processes use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dcc_capacity.model.cpmigration import FALLOUT_SHARE

__all__ = ["active", "emulator_settings", "locust_host"]


def active(sp: str, test: str) -> bool:
    """CP mode: the CP is tested on its migration files, unless the test type brings its own CP cases
    (:attr:`~dcc_capacity.testtypes.base.TestType.cp_files`)."""
    from dcc_capacity.testtypes.registry import get

    return sp == "CP" and get(test).cp_files


def emulator_settings(cp_root: Path) -> dict[str, Any]:
    """The embedded emulator's config in CP mode (merged over the usual one): the CP's SFTP and its fallout."""
    return {"sp": "CP", "cp": {"root": str(cp_root)},
            "faults": {"migration_fallout": {"enabled": True, "share": FALLOUT_SHARE, "reprocess_succeeds": True}}}


def locust_host(info: dict[str, Any], username: str = "cp", password: str = "cp") -> str:  # noqa: S107
    """The embedded CP's SFTP URL for the Locust processes (loopback; the emulator's test login)."""
    return f"sftp://{username}:{password}@127.0.0.1:{int(info['sftp_port'])}"
