"""What decides the offered load of a run (:class:`TestSpec`), and the volume model's rates per user class.

Free of Locust, so the run command can validate input and write run.json
without gevent's patching; ``shape.py`` turns a spec into a running shape.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from dcc_capacity.errors import InputError
from dcc_capacity.load.users.rows import ROW_CLASSES
from dcc_capacity.model.cpmigration import cp_rates
from dcc_capacity.model.srvmix import SrvMix, derive_mix
from dcc_capacity.model.volume import SLOTS, SPS, VolumePlan, load_plan

__all__ = ["CLASS_GROUPS", "TESTS", "Resolved", "TestSpec", "class_rates", "drop", "excluded", "mix_for",
           "parse_duration", "resolve", "scaled", "spec_from_options"]

TESTS = ("load", "stress", "soak", "spike", "catchup", "noisy-neighbour", "negative")
NEGATIVE_RATE = 4.0
"""negative: DUIS case instances per second unless --rate says otherwise (modest: the error paths, not load)."""

CLASS_GROUPS: dict[str, tuple[str, ...]] = {
    "smets1": ("S1MigrationCredit", "S1MigrationPrepay", "Secmp0192Schedules"),
    "smets1-migration": ("S1MigrationCredit", "S1MigrationPrepay"),
}
"""``--exclude`` shorthands. ``smets1``: every class that only exists for SMETS1 (the migration journeys and the
SECMP0192 schedules on SMETS1 installations), so what is left is the SMETS2-only baseline (R2.0)."""


def parse_duration(text: str | float | int, key: str = "--duration") -> float:
    """``8s``, ``2m``, ``1h30m``, ``90`` -> seconds; InputError otherwise."""
    if isinstance(text, int | float):
        value = float(text)
    else:
        s = str(text).strip().lower()
        total, num = 0.0, ""
        units = {"s": 1, "m": 60, "h": 3600}
        try:
            for ch in s:
                if ch.isdigit() or ch == ".":
                    num += ch
                elif ch in units and num:
                    total += float(num) * units[ch]
                    num = ""
                else:
                    raise ValueError
            value = total + (float(num) if num else 0.0)
        except ValueError:
            raise InputError(f"not a duration such as 30s, 5m or 1h (got {text!r})", key=key) from None
    if not value > 0 or not math.isfinite(value):
        raise InputError(f"must be > 0 (got {text!r})", key=key)
    return value


@dataclass
class TestSpec:
    """What decides the offered load of one run."""

    test: str = "load"
    profile: str = "volume_profiles/foc.yaml"
    sp: str = "DSP"
    slot: str | None = None
    rate: float | None = None
    duration_s: float = 60.0
    normal: bool = False
    secmp0192_share: float = 0.02
    s1sp: str | None = None
    """``--s1sp``: with ``sp`` S1SP, the one S1SP of the profile's ``s1sp_shares`` (name or 1-based number) whose
    share is sent; None: the whole S1SP row."""
    step_fraction: float = 0.1
    step_s: float = 60.0
    start_factor: float = 1.0
    max_factor: float = 3.0
    max_error_rate: float = 0.01
    max_p95_ms: float | None = 1000.0
    spike_factor: float = 3.0
    burst_factor: float = 2.0
    outage_s: float | None = None
    client_hold: bool = False
    """catchup: the Service Users hold their traffic in the outage and resend it (for a SUT without an outage)."""
    exclude: tuple[str, ...] = ()
    """User classes (or CLASS_GROUPS names) not sent; the others keep the rates they have with the full mix."""
    test_id: str | None = None
    """run.json ``test_id``: the catalogue test this run is evidence for (``run --test-id``); default
    :func:`default_test_id`, the shipped catalogue's id of the test type, so a run and the catalogue agree."""
    interactive: bool = False
    """stress: the operator steers the steps from the web UI's Capacity tab (a ControlledShape) instead of the
    fixed step ramp; ``--duration`` is then the upper bound and ``step_s`` the automatic ramp's hold time."""

    def check(self) -> TestSpec:
        if self.test not in TESTS:
            raise InputError(f"unknown test {self.test!r} (one of {', '.join(TESTS)})", key="--test")
        if self.sp not in SPS:
            raise InputError(f"unknown Service Provider {self.sp!r} (one of {', '.join(SPS)})", key="--sp")
        if self.slot is not None and self.slot not in SLOTS:
            raise InputError(f"unknown slot {self.slot!r} (one of {', '.join(SLOTS)})", key="--slot")
        if self.s1sp is not None and self.sp != "S1SP":
            raise InputError(f"goes with --sp S1SP (got --sp {self.sp})", key="--s1sp")
        if self.rate is not None and not self.rate > 0:
            raise InputError(f"must be > 0 (got {self.rate})", key="--rate")
        excluded(self.exclude)
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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


DEFAULT_TEST_IDS: dict[str, str] = {"load": "LOAD", "stress": "STRESS", "soak": "SOAK", "spike": "SPIKE",
                                     "catchup": "CATCHUP", "noisy-neighbour": "NOISY", "negative": "NEGATIVE"}
"""Test type -> the test id of the shipped catalogue (volume_profiles/nfr-default.yaml) and the example plans."""


def default_test_id(test: str) -> str:
    """The id ``run`` writes when no ``--test-id`` is given: one scheme with the shipped catalogue."""
    return DEFAULT_TEST_IDS.get(test, test.upper())


def spec_from_options(opts: Any) -> TestSpec:
    """The TestSpec carried by Locust's parsed options (see load/users/locustfile.py)."""
    def get(name: str, default: Any) -> Any:
        v = getattr(opts, name, None) if opts is not None else None
        return default if v in (None, "") else v

    p95 = float(get("stress_max_p95_ms", 1000.0))
    return TestSpec(test=get("dcc_test", "load"), profile=get("volume_profile", "volume_profiles/foc.yaml"),
                    sp=get("sp", "DSP"), slot=get("slot", None),
                    rate=float(get("dcc_rate", 0)) or None, duration_s=parse_duration(get("dcc_duration", "60s")),
                    normal=bool(get("normal", False)), secmp0192_share=float(get("secmp0192_share", 0.02)),
                    step_fraction=float(get("stress_step", 0.1)), step_s=parse_duration(get("step_duration", "60s"),
                                                                                      "--step-duration"),
                    start_factor=float(get("stress_start", 1.0)), max_factor=float(get("stress_max", 3.0)),
                    max_error_rate=float(get("stress_max_error_rate", 0.01)), max_p95_ms=p95 if p95 > 0 else None,
                    spike_factor=float(get("spike_factor", 3.0)), burst_factor=float(get("burst_factor", 2.0)),
                    client_hold=bool(get("client_hold", False)), interactive=bool(get("dcc_interactive", False)),
                    s1sp=get("s1sp", None),
                    exclude=tuple(n for n in str(get("dcc_exclude", "")).split(",") if n))




@dataclass
class Resolved:
    """A spec's plan, slot and reference rates (the slot's peak, its average with --normal, or --rate)."""

    plan: VolumePlan
    slot: str
    rates: dict[str, float]
    alerts_per_s: float
    mix: SrvMix | None = None
    """What the classes send inside those rates, and the fleet they send it to (srvmix.py)."""


def mix_for(spec: TestSpec, plan: VolumePlan | None = None) -> SrvMix:
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


def resolve(spec: TestSpec) -> Resolved:
    """Load the profile and compute the per-class rates of ``spec`` (InputError for bad input)."""
    spec.check()
    plan = load_plan(spec.profile)
    if spec.s1sp is not None:  # a number becomes the S1SP's name: run.json and the report name it
        spec.s1sp = plan.s1sp_name(spec.s1sp)
    slot = spec.slot or plan.busiest_slot(spec.sp if spec.s1sp is None else f"S1SP/{spec.s1sp}")
    mix = mix_for(spec, plan)
    if spec.test == "negative":  # the negative cases, not the profile's mix (the profile still names SP and slot)
        return Resolved(plan, slot, {"NegativeCases": spec.rate or NEGATIVE_RATE}, 0.0, mix)
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
    if total * factor <= 0 and spec.test != "soak":
        raise InputError(f"{spec.sp} sends nothing in the {slot} slot (all rates 0); choose another --slot",
                         file=spec.profile, key="--slot")
    # --rate scales the FULL mix; the excluded classes are then left out, so a baseline run without SMETS1 and
    # the run with it offer the SMETS2 classes exactly the same rates.
    kept = drop(scaled(rates, factor), spec.exclude)
    if spec.exclude and sum(kept.values()) <= 0 and spec.test != "soak":
        raise InputError(f"nothing left to send in the {slot} slot once {', '.join(spec.exclude)} is excluded",
                         key="--exclude")
    return Resolved(plan, slot, kept, alerts * factor, mix)
