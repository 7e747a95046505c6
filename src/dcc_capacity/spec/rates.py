"""The volume model's rates per Locust user class, and ``--exclude``: what the spec's fields mean in SRV/s.

Below the run spec's resolution (spec/resolve.py) and the test types (testtypes/: the soak offers every slot's
own rates), above only the volume model, so the spec model can check ``--exclude`` and a test type can compute
its rates without importing the code that uses the test types.
"""

from __future__ import annotations

from dcc_capacity.errors import InputError
from dcc_capacity.model.srvmix import ROW_CLASSES
from dcc_capacity.model.volume import VolumePlan

__all__ = ["CLASS_GROUPS", "class_rates", "drop", "excluded", "scaled"]

CLASS_GROUPS: dict[str, tuple[str, ...]] = {
    "smets1": ("S1MigrationCredit", "S1MigrationPrepay", "Secmp0192Schedules"),
    "smets1-migration": ("S1MigrationCredit", "S1MigrationPrepay"),
}
"""``--exclude`` shorthands. ``smets1``: every class that only exists for SMETS1 (the migration journeys and the
SECMP0192 schedules on SMETS1 installations), so what is left is the SMETS2-only baseline (R2.0)."""


def class_rates(plan: VolumePlan, sp: str, slot: str, secmp0192_share: float = 0.0,
                s1sp: str | None = None) -> dict[str, float]:
    """SRV/s per user class for ``sp`` in ``slot`` (alerts excluded: northbound); SECMP0192 taken out of BAU.

    When the profile gives ``secmp0192`` (DCC-scheduled executions), the Secmp0192Schedules class sends the
    executions that fall in ``slot`` instead, and BAU keeps its whole rate (secmp0192_share is not used).
    ``s1sp``: one named S1SP's share (profile ``s1sp_shares``).
    """
    rows = plan.row_rates(sp, slot, s1sp)
    rates = {ROW_CLASSES[row]: rate for row, rate in rows.items() if row in ROW_CLASSES}
    if plan.secmp0192 is not None:
        rate = plan.secmp0192_rate(sp, slot, s1sp)
        if rate > 0:
            rates["Secmp0192Schedules"] = rate
        return rates
    if secmp0192_share > 0 and rates.get("Bau", 0.0) > 0:
        part = rates["Bau"] * secmp0192_share
        rates["Bau"] -= part
        rates["Secmp0192Schedules"] = part
    return rates


def scaled(rates: dict[str, float], factor: float) -> dict[str, float]:
    return {k: v * factor for k, v in rates.items()}


def excluded(names: tuple[str, ...] | list[str] | str) -> frozenset[str]:
    """The class names ``--exclude`` means (groups expanded); InputError for an unknown name."""
    if isinstance(names, str):
        names = tuple(n for n in names.split(",") if n.strip())
    known = {*ROW_CLASSES.values(), "Secmp0192Schedules"}
    out: set[str] = set()
    for raw in names:
        name = raw.strip()
        if name in CLASS_GROUPS:
            out.update(CLASS_GROUPS[name])
        elif name in known:
            out.add(name)
        else:
            choices = ", ".join([*CLASS_GROUPS, *sorted(known)])
            raise InputError(f"unknown user class or group {name!r} (one of {choices})", key="--exclude")
    return frozenset(out)


def drop(rates: dict[str, float], exclude: tuple[str, ...] | list[str] | str) -> dict[str, float]:
    """``rates`` without the excluded classes: the rest keep their rates (a baseline without SMETS1, say)."""
    gone = excluded(exclude)
    return {k: v for k, v in rates.items() if k not in gone}
