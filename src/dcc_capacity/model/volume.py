"""The SCTAD Appendix A volume model: profile -> Tables A5, A6, A7 and per-row rates.

Everything the suite offers as load comes from here, so the formulas follow
docs/volume-model.md (the contract) literally, one line per formula, in the
contract's order of operations; tests hold them to the worked example at a
relative error below 1e-9. The tables are pandas DataFrames (rows x slots) so
reports and shapes can slice them without re-deriving anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dcc_capacity.errors import InputError
from dcc_capacity.model.profiles import JOURNEY_ROWS, SLOTS, SPS, Profile, load_profile
from dcc_capacity.model.secmp0192 import ScheduledLoad, scheduled_load

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "SLOTS", "SLOT_SECONDS", "SLOT_HOURS", "SLOT_HOURS_LABEL", "ROWS", "JOURNEY_ROWS", "SPS", "DEFAULT_JOURNEYS",
    "METER_READ_VARIANTS", "METER_READ_PREPAY_VARIANTS", "VolumePlan", "compute_plan", "load_plan",
    "effective_journeys", "s1sp_row",
]

SLOT_SECONDS: dict[str, int] = {"night": 25200, "day": 43200, "evening": 18000}
SLOT_HOURS: dict[str, float] = {slot: seconds / 3600 for slot, seconds in SLOT_SECONDS.items()}
SLOT_HOURS_LABEL: dict[str, str] = {"night": "00:00-07:00", "day": "07:00-19:00", "evening": "19:00-24:00"}

ROWS: tuple[str, ...] = (
    "meter_reads", "s2_ic_credit", "s2_ic_prepay", "s1_migration_credit", "s1_migration_prepay", "bau", "alerts",
)
"""Table A2 rows (SRV types), in table order."""

DEFAULT_JOURNEYS: dict[str, tuple[str, ...]] = {
    "s2_ic_credit": ("12.2", "8.11", "6.4.1", "6.20.1", "6.8", "3.4", "8.7.1", "8.7.2", "8.1.1", "1.1.1", "6.21",
                     "6.15.1"),
    "s2_ic_prepay": ("12.2", "8.11", "6.4.1", "6.20.1", "6.8", "3.4", "8.7.1", "8.7.2", "1.6", "1.5", "1.1.1", "1.6",
                     "1.5", "2.1", "2.2", "6.21", "6.15.1"),
    "s1_migration_credit": ("12.2", "8.11", "6.8", "8.7.1", "8.7.2", "8.1.1", "1.1.1", "6.21", "6.15.1"),
    "s1_migration_prepay": ("12.2", "8.11", "6.8", "8.7.1", "8.7.2", "1.6", "1.5", "1.1.1", "2.1", "2.2", "1.6", "1.5",
                            "6.15.1"),
}
"""Table A2 journeys (typos mended: "3,4" is 3.4, "8.1,1" is 8.1.1); one SRV per entry, in order."""

METER_READ_VARIANTS: tuple[str, ...] = ("4.6.1", "4.8.1")
"""Table A2 meter reads for every meter."""
METER_READ_PREPAY_VARIANTS: tuple[str, ...] = ("4.14",)
"""Table A2 meter reads added for prepayment meters."""

_SUPPLIER_ROWS = ("meter_reads", "bau", "alerts")  # shared with S1SP/DCO through f1
_MIGRATION_ROWS = ("s1_migration_credit", "s1_migration_prepay")


def s1sp_row(name: str) -> str:
    """The A6/A7 row of one named S1SP (profile ``s1sp_shares``): ``S1SP/<name>``, beside the S1SP total."""
    return f"S1SP/{name}"


@dataclass(frozen=True)
class VolumePlan:
    """Tables A5-A7 of one profile, and the per-row rates the load shapes drive."""

    profile: Profile
    a5: pd.DataFrame
    """SRVs/day: index ROWS, columns SLOTS."""
    a6: pd.DataFrame
    """SRVs/day per Service Provider: index SPS (plus ``S1SP/<name>`` after S1SP per s1sp_shares), columns SLOTS."""
    a7: pd.DataFrame
    """Peak SRV/s in the test environment: index as a6, columns SLOTS."""
    journeys: dict[str, tuple[str, ...]]
    """Effective journeys (defaults with the profile's overrides)."""
    growth: float
    """g = (E1p + E2p) / (E1c + E2c)."""
    smets1_fraction: float
    """f1 = E1p / (E1p + E2p) (0 when nothing is enrolled)."""
    s1sp_shares: dict[str, tuple[float, float]]
    """S1SP name -> (fleet share, migrations share) from the profile; empty: one S1SP row."""
    secmp0192: ScheduledLoad | None = None
    """SECMP0192's DCC-scheduled executions (profile ``secmp0192``), or None."""

    def row_weights(self, sp: str, s1sp: str | None = None) -> dict[str, float]:
        """How much of each A5 row ``sp`` carries: 1 (all), f1 (its SMETS1 part) or 0 (none).

        ``s1sp`` names one S1SP of the profile's ``s1sp_shares``: its fleet share of the f1 rows and its share
        of the migration rows.
        """
        _check(sp, SPS, "Service Provider")
        fleet, migrations = self.s1sp_share(s1sp) if s1sp is not None else (1.0, 1.0)
        if s1sp is not None and sp != "S1SP":
            raise InputError(f"an S1SP name ({s1sp!r}) goes with the Service Provider S1SP, not {sp}")
        if sp == "DSP":
            return {row: 1.0 for row in ROWS}
        if sp == "CP":
            return {row: 1.0 if row in _MIGRATION_ROWS else 0.0 for row in ROWS}
        return {row: self.smets1_fraction * fleet if row in _SUPPLIER_ROWS else migrations if row in _MIGRATION_ROWS
                else 0.0 for row in ROWS}

    def s1sp_share(self, name: str) -> tuple[float, float]:
        """(fleet share, migrations share) of the S1SP ``name`` or its 1-based number in ``s1sp_shares``."""
        if not self.s1sp_shares:
            raise InputError(f"--s1sp {name}: this profile has one S1SP row (no s1sp_shares)",
                             file=str(self.profile.path), key="s1sp_shares")
        names = list(self.s1sp_shares)
        if name not in self.s1sp_shares and name.isdigit() and 1 <= int(name) <= len(names):
            name = names[int(name) - 1]
        if name not in self.s1sp_shares:
            raise InputError(f"unknown S1SP {name!r} (one of {', '.join(names)}, or 1..{len(names)})",
                             key="--s1sp")
        return self.s1sp_shares[name]

    def s1sp_name(self, name: str) -> str:
        """The profile's name of the S1SP ``name`` (a name or a 1-based number)."""
        self.s1sp_share(name)
        return name if name in self.s1sp_shares else list(self.s1sp_shares)[int(name) - 1]

    def row_rates(self, sp: str, slot: str, s1sp: str | None = None) -> dict[str, float]:
        """Target SRV/s per row in the test environment for ``sp`` in ``slot``; sums to ``a7.loc[sp, slot]``
        (``a7.loc["S1SP/<name>", slot]`` with ``s1sp``).

        Every row of ROWS is present; rows ``sp`` does not carry are 0.0.
        """
        _check(slot, SLOTS, "slot")
        factor = self.profile.peak_to_average(sp, slot) * self.profile.test_scale(sp) / SLOT_SECONDS[slot]
        weights = self.row_weights(sp, s1sp)
        return {row: float(self.a5.loc[row, slot]) * weights[row] * factor for row in ROWS}

    def secmp0192_rate(self, sp: str, slot: str, s1sp: str | None = None) -> float:
        """SRV/s of the profile's SECMP0192 executions that ``sp`` (or one S1SP) carries in ``slot``, in the test
        environment: the slot's executions / its seconds x peak-to-average x test_scale (x a named S1SP's fleet
        share). 0 without ``secmp0192`` and for the CP (the DSP, S1SP and DCO carry them: PIA 4.1, 4.3)."""
        _check(slot, SLOTS, "slot")
        if self.secmp0192 is None or sp not in ("DSP", "S1SP", "DCO"):
            return 0.0
        share = self.s1sp_share(s1sp)[0] if s1sp is not None else 1.0
        return (self.secmp0192.per_slot[slot] / SLOT_SECONDS[slot] * share * self.profile.peak_to_average(sp, slot)
                * self.profile.test_scale(sp))

    def busiest_slot(self, sp: str) -> str:
        """The slot with the highest A7 rate for ``sp`` or a named S1SP's row (the first one on a tie)."""
        _check(sp, tuple(str(r) for r in self.a7.index), "Service Provider")
        return str(self.a7.loc[sp].idxmax())

    def to_dict(self) -> dict[str, Any]:
        """The contract's JSON object: profile name, capability, A5, A6, A7 (numbers unrounded).

        A6 and A7 add one ``S1SP/<name>`` row per S1SP when the profile gives ``s1sp_shares``, and the object
        a ``SECMP0192`` section when it gives ``secmp0192``; without them it is exactly the contract's.
        """
        out: dict[str, Any] = {
            "profile": self.profile.name,
            "capability": self.profile.capability,
            "A5": _table(self.a5),
            "A6": _table(self.a6),
            "A7": _table(self.a7),
        }
        if self.secmp0192 is not None:
            from dcc_capacity.model.secmp0192 import plan_section

            out["SECMP0192"] = plan_section(self)
        return out


def _table(frame: pd.DataFrame) -> dict[str, dict[str, float]]:
    return {str(row): {slot: float(frame.loc[row, slot]) for slot in SLOTS} for row in frame.index}


def _check(value: str, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise InputError(f"unknown {what} {value!r} (one of {', '.join(allowed)})")


def effective_journeys(profile: Profile) -> dict[str, tuple[str, ...]]:
    """Default journeys with the profile's overrides applied."""
    return {row: profile.journey_override(row) or DEFAULT_JOURNEYS[row] for row in JOURNEY_ROWS}


def compute_plan(profile: Profile) -> VolumePlan:
    """Apply the contract's formulas to ``profile``."""
    import pandas as pd  # here, not at the top: a broken profile is reported before paying pandas' import

    e1c, e2c = profile.current_enrolled["smets1"], profile.current_enrolled["smets2"]
    e1p, e2p = profile.predicted_enrolled["smets1"], profile.predicted_enrolled["smets2"]
    i2, m1 = profile.s2_installs_per_day, profile.s1_migrations_per_day
    p1, p2 = profile.prepay_share["smets1"], profile.prepay_share["smets2"]
    alerts_rate = profile.alerts_per_device_per_day
    current = profile.current_srvs_per_day
    journeys = effective_journeys(profile)
    length = {row: len(journey) for row, journey in journeys.items()}
    split_ic, split_mig = profile.slot_split("s2_ic"), profile.slot_split("s1_migration")

    g = (e1p + e2p) / (e1c + e2c)  # profiles refuse zero current enrolment
    # With nothing enrolled the rows f1 multiplies are all zero, so any f1 gives the same tables.
    f1 = e1p / (e1p + e2p) if e1p + e2p > 0 else 0.0

    a5 = pd.DataFrame(0.0, index=list(ROWS), columns=list(SLOTS))
    for s in SLOTS:
        h = SLOT_HOURS[s]
        a5.loc["meter_reads", s] = current["meter_reads"][s] * g
        a5.loc["s2_ic_credit", s] = i2 * (1 - p2) * length["s2_ic_credit"] * split_ic[s]
        a5.loc["s2_ic_prepay", s] = i2 * p2 * length["s2_ic_prepay"] * split_ic[s]
        a5.loc["s1_migration_credit", s] = m1 * (1 - p1) * length["s1_migration_credit"] * split_mig[s]
        a5.loc["s1_migration_prepay", s] = m1 * p1 * length["s1_migration_prepay"] * split_mig[s]
        a5.loc["bau", s] = current["bau"][s] * g + (p1 * e1p + p2 * e2p) * h / 24
        a5.loc["alerts", s] = (e1p + e2p) * alerts_rate * h / 24

    migrations = a5.loc["s1_migration_credit"] + a5.loc["s1_migration_prepay"]
    s1sp = f1 * (a5.loc["meter_reads"] + a5.loc["bau"] + a5.loc["alerts"]) + migrations
    shares = profile.s1sp_shares()
    fleet = f1 * (a5.loc["meter_reads"] + a5.loc["bau"] + a5.loc["alerts"])
    named = [fleet * fleet_share + migrations * mig_share for fleet_share, mig_share in shares.values()]
    a6 = pd.DataFrame([a5.sum(axis=0), s1sp, *named, s1sp, migrations],
                      index=["DSP", "S1SP", *(s1sp_row(n) for n in shares), "DCO", "CP"],
                      columns=list(SLOTS)).astype(float)

    a7 = pd.DataFrame(0.0, index=a6.index, columns=list(SLOTS))
    for row in a6.index:
        sp = row.partition("/")[0]  # a named S1SP takes the S1SP's peak-to-average and test_scale
        for s in SLOTS:
            a7.loc[row, s] = a6.loc[row, s] / SLOT_SECONDS[s] * profile.peak_to_average(sp, s) * profile.test_scale(sp)

    scheduled = scheduled_load(profile.secmp0192) if profile.secmp0192 is not None else None
    return VolumePlan(profile=profile, a5=a5, a6=a6, a7=a7, journeys=journeys, growth=g, smets1_fraction=f1,
                      s1sp_shares=shares, secmp0192=scheduled)


def load_plan(path: str | Path) -> VolumePlan:
    """Load the profile at ``path`` and compute its plan."""
    return compute_plan(load_profile(path))
