"""Volume-model row -> user class name: kept free of Locust so the run command can use it unpatched."""

from __future__ import annotations

__all__ = ["ROW_CLASSES"]

ROW_CLASSES: dict[str, str] = {
    "meter_reads": "MeterReads", "s2_ic_credit": "S2IcCredit", "s2_ic_prepay": "S2IcPrepay",
    "s1_migration_credit": "S1MigrationCredit", "s1_migration_prepay": "S1MigrationPrepay", "bau": "Bau",
}
"""Volume-model row -> user class name (the key the shapes use). ``alerts`` is northbound: no class."""
