"""``dcc-capacity plan PROFILE --sp CP``: the CP's load in its own unit, SMETS1 installations migrated.

SCTAD 3.4(b) tests the CP in migrations per day; Table A7's CP row is in
SRV/s. This table shows what ``run --sp CP`` (CP mode, load/users/cp.py)
sends per slot: Table A7's CP row over each migration journey's length.
"""

from __future__ import annotations

from dcc_capacity.cli.textgrid import grid, per_day, per_second
from dcc_capacity.model.cpmigration import DEFAULT_BATCH, installations_per_s
from dcc_capacity.model.volume import SLOT_HOURS, SLOT_HOURS_LABEL, SLOTS, VolumePlan
from dcc_capacity.spec.rates import class_rates

__all__ = ["render_cp_table"]


def render_cp_table(plan: VolumePlan, batch: int = DEFAULT_BATCH) -> str:
    """Installations per slot (profile), the peak test rate (A7 CP row / journeys), a day at it, files per hour."""
    p = plan.profile
    rows = []
    for slot in SLOTS:
        per_s = installations_per_s(plan, class_rates(plan, "CP", slot))
        in_slot = p.s1_migrations_per_day * p.slot_split("s1_migration")[slot]
        rows.append((f"{SLOT_HOURS_LABEL[slot]} {slot}", [
            per_day(in_slot), per_second(per_s),
            per_day(per_s * 86_400), f"{per_s * 3600 / batch:,.1f}", f"{SLOT_HOURS[slot]:g}"]))
    title = (f"CP mode (run --sp CP): SMETS1 installations migrated - profile predicted.per_day.s1_migrations "
             f"{p.s1_migrations_per_day:,.0f} a day; test rate = Table A7 CP row / each migration journey's length")
    return "\n".join(grid(title, "slot", rows, [
        ("installations", "in the slot"), ("test rate", "installations/s"), ("a day at it", "installations/day"),
        (f"migrations of {batch}", "per hour"), ("slot", "hours")]))
