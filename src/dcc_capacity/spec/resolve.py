"""A run spec resolved against the volume model: its plan, slot, SRV mix and rates per user class.

The spec itself is spec/model.py plus each test type's knobs (testtypes/, found through the registry); the
rates per class are spec/rates.py. Free of Locust, so the run command can
validate input and write run.json without gevent's patching; load/shape.py turns a spec into a running shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dcc_capacity.errors import InputError
from dcc_capacity.model.cpmigration import cp_rates
from dcc_capacity.model.srvmix import SrvMix, derive_mix
from dcc_capacity.model.volume import VolumePlan, load_plan
from dcc_capacity.spec.model import SpecBase
from dcc_capacity.spec.rates import class_rates, drop, scaled
from dcc_capacity.testtypes.registry import TYPES, get, validate_spec

__all__ = ["Resolved", "TestSpec", "check_sendable", "default_test_id", "mix_for", "resolve"]


def TestSpec(**values: Any) -> SpecBase:  # noqa: N802 - reads as the constructor it replaces
    """A run spec of the test type ``values["test"]`` names (default load), validated: for tests and scripts."""
    return validate_spec({"test": "load", **values})


def default_test_id(test: str) -> str:
    """The id ``run`` writes when no ``--test-id`` is given: the shipped catalogue's id of the test type."""
    t = TYPES.get(test)
    return t.test_id if t is not None else test.upper()


@dataclass
class Resolved:
    """A spec's plan, slot and reference rates (the slot's peak, its average with --normal, or --rate)."""

    plan: VolumePlan
    slot: str
    rates: dict[str, float]
    alerts_per_s: float
    mix: SrvMix | None = None
    """What the classes send inside those rates, and the fleet they send it to (srvmix.py)."""


def mix_for(spec: SpecBase, plan: VolumePlan | None = None) -> SrvMix:
    """The SRV mix and fleet of ``spec``'s profile, SP and slot: the same in the CLI and every Locust process.

    For a soak (all three slots) the Bau class keeps the make-up of ``spec``'s slot (the busiest by default).
    """
    plan = plan if plan is not None else load_plan(spec.profile)
    slot = spec.slot or plan.busiest_slot(spec.sp)
    share = 0.0 if plan.secmp0192 is not None else spec.secmp0192_share
    return derive_mix(plan, spec.sp, slot, class_rates(plan, spec.sp, slot, spec.secmp0192_share, spec.s1sp),
                      secmp0192_share=share)


def check_sendable(mix: SrvMix, profile: str) -> None:
    """Every journey SRV must have a DUIS template, or the journey would silently skip it: exit 2 up front."""
    from dcc_capacity.duis.templates import available_variants

    templated = set(available_variants())
    for row, steps in mix.journeys.items():
        for i, variant in enumerate(steps):
            if variant not in templated:
                raise InputError(f"SRV {variant!r} has no DUIS template in srv_templates/, so a run cannot send "
                                 f"this journey", file=profile, key=f"journeys.{row}[{i}]")


def resolve(spec: SpecBase) -> Resolved:
    """Load the profile and compute the per-class rates of ``spec`` (InputError for bad input)."""
    kind = get(spec.test)
    spec.check()
    plan = load_plan(spec.profile)
    if spec.s1sp is not None:  # a number becomes the S1SP's name: run.json and the report name it
        spec.s1sp = plan.s1sp_name(spec.s1sp)
    slot = spec.slot or plan.busiest_slot(spec.sp if spec.s1sp is None else f"S1SP/{spec.s1sp}")
    mix = mix_for(spec, plan)
    own = kind.rates(spec, {})
    if own is not None:  # the type's own classes (negative: the cases), not the profile's mix
        return Resolved(plan, slot, own, 0.0, mix)
    check_sendable(mix, spec.profile)
    rates = class_rates(plan, spec.sp, slot, spec.secmp0192_share, spec.s1sp)
    if spec.sp == "CP":  # CP mode: migration files at installations/s, not DUIS journeys (model/cpmigration.py)
        rates = cp_rates(plan, rates)
    alerts = plan.row_rates(spec.sp, slot, spec.s1sp).get("alerts", 0.0)
    total = sum(rates.values())
    factor = 1.0
    if spec.rate is not None:
        if total <= 0:
            raise InputError(f"{spec.sp} sends nothing in the {slot} slot of this profile: no mix to scale",
                             file=spec.profile, key="--rate")
        factor = spec.rate / total
    elif spec.normal:
        factor = 1.0 / max(plan.profile.peak_to_average(spec.sp, slot), 1e-9)
    if total * factor <= 0 and not kind.quiet_slot_ok:
        raise InputError(f"{spec.sp} sends nothing in the {slot} slot (all rates 0); choose another --slot",
                         file=spec.profile, key="--slot")
    # --rate scales the FULL mix; the excluded classes are then left out, so a baseline run without SMETS1 and
    # the run with it offer the SMETS2 classes exactly the same rates.
    kept = drop(scaled(rates, factor), spec.exclude)
    if spec.exclude and sum(kept.values()) <= 0 and not kind.quiet_slot_ok:
        raise InputError(f"nothing left to send in the {slot} slot once {', '.join(spec.exclude)} is excluded",
                         key="--exclude")
    return Resolved(plan, slot, kept, alerts * factor, mix)
