"""The CP's load in its own unit: SMETS1 installations migrated per second (SCTAD 3.4(b), Table A7's CP row).

Why a unit of its own: SCTAD 3.4(b) tests the Commissioning Party "in
migrations per day", and the CP under test takes migration files, not SRVs.
Table A7's CP row is in SRV/s (each installation's migration journey is
Table A2's 9 or 13 SRVs), so dividing each row's rate by its journey length
gives installations per second at the same point of the same plan; the files
then carry those installations' devices. Free of Locust: the run command and
the report use it too.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from dcc_capacity.paths import data_dir

if TYPE_CHECKING:  # the CLI reads DEFAULT_BATCH at parse time: no pandas for that
    from dcc_capacity.model.volume import VolumePlan

__all__ = ["CP_CLASS", "CP_NFRS", "DEFAULT_BATCH", "FALLOUT_SHARE", "FALLOUT_SOURCE", "cp_nfr_path", "cp_rates",
           "installations_per_s", "csv_file"]

CP_CLASS = "CpMigrationFiles"
"""The user class (load/users/cp.py) and rate key of CP mode; its rate is installations/s, not SRV/s."""
DEFAULT_BATCH = 10
"""Installations per migration (one CR, MCF, audit file and S1SP Commissioning File each): project default, no
public source gives the CP's file sizes (``--cp-batch``)."""
FALLOUT_SHARE = 0.07
"""Share of devices the embedded CP fails (MIGRATION_FALLOUT) in CP mode."""
FALLOUT_SOURCE = ("smets1-live-services-criteria-nov-2019.txt, LSC 1: 2,139 dormant installations migrated with "
                  "an overall success rate of 93 % (7 % fell out or stalled)")
CP_NFRS = ("NFR-CP-RATE", "NFR-CP-FILE-P95", "NFR-CP-REPROCESS")
"""The CP NFRs the report's CP section judges (metric ``external`` in the catalogue)."""
_MIGRATION_CLASSES = {"S1MigrationCredit": "s1_migration_credit", "S1MigrationPrepay": "s1_migration_prepay"}


def installations_per_s(plan: VolumePlan, rates: Mapping[str, float]) -> float:
    """Installations/s behind the migration classes' SRV/s: each row's rate over its journey length."""
    return sum(rates.get(cls, 0.0) / len(plan.journeys[row]) for cls, row in _MIGRATION_CLASSES.items()
               if plan.journeys.get(row))


def cp_rates(plan: VolumePlan, rates: Mapping[str, float]) -> dict[str, float]:
    """CP mode's class rates: the migration rows' SRV/s as installations/s of the one file-driving class."""
    return {CP_CLASS: installations_per_s(plan, rates)}


def cp_nfr_path() -> Path:
    """The CP's example NFR catalogue, ``volume_profiles/nfr-cp.yaml``: ``run --sp CP``'s default ``--nfr``."""
    return data_dir("volume_profiles") / "nfr-cp.yaml"


def csv_file(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> bytes:
    """A migration file's bytes (MCF, S1CF, audit, Commissioning Request): header, rows, LF line ends, UTF-8."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue().encode()
