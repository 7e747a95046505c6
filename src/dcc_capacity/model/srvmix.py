"""The SRV mix a run sends, derived from the profile for one Service Provider and slot.

Why this exists: Table A7 fixes how MUCH a run sends; what it sends inside
that total must follow the same profile, or the test exercises a system
other than the one modelled. From the plan, the SP and the slot this module
derives, in one place that the run command, every Locust process and
``dcc-capacity plan --mix`` share:

- the fleet: SMETS1 share ``f1 = E1p / (E1p + E2p)`` (predicted enrolment:
  the load is the measurement day's), prepayment shares ``p1``, ``p2``
  (``prepay_share``); the dual-fuel share is a project default (no profile
  figure);
- the BAU make-up: the top-up share (SRV 2.2) from Table A5's BAU formula,
  ``(p1*E1p + p2*E2p) * h/24`` over ``bau[slot]`` (one top-up per prepayment
  meter per day, SCTAD Appendix A), the other BAU SRVs in the proportions of
  ``srv_templates/bau_mix.csv`` (its 2.2 row stands in for the top-ups when
  no profile is given, so a profile replaces it);
- the journeys: the plan's effective ones (defaults with the profile's
  ``journeys`` overrides);
- what each user class therefore sends: per-SRV shares, and the share of its
  SRVs that go to SMETS1 and to prepayment installations, so a run's records
  (``srv_variant``, ``smets``, ``prepay``) can be checked against it.

Every number carries its source (:class:`Figure`). Nothing here imports
Locust: the parent CLI derives the same mix as the load processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dcc_capacity.duis.mix import BauMix
from dcc_capacity.model.volume import (
    METER_READ_PREPAY_VARIANTS,
    METER_READ_VARIANTS,
    SLOT_HOURS,
    SLOT_HOURS_LABEL,
    VolumePlan,
)

__all__ = ["CLASS_ROWS", "DEFAULT_DUAL_FUEL_SHARE", "PREPAY_ONLY", "ROW_CLASSES", "TOPUP_VARIANT", "Figure",
           "FleetShares", "SrvMix", "derive_mix", "ClassMix"]

TOPUP_VARIANT = "2.2"
"""SRV 2.2 Top Up Device: the one top-up a day per prepayment meter that Table A5's BAU formula adds."""
PREPAY_ONLY = frozenset({TOPUP_VARIANT})
"""BAU SRVs the Bau user class sends only to prepayment installations (a top-up needs a prepayment meter)."""
DEFAULT_DUAL_FUEL_SHARE = 0.6
"""Share of installations with gas (GSME + GPF): project default, the profile has no such figure."""

CLASS_ROWS: dict[str, str] = {
    "MeterReads": "meter_reads", "S2IcCredit": "s2_ic_credit", "S2IcPrepay": "s2_ic_prepay",
    "S1MigrationCredit": "s1_migration_credit", "S1MigrationPrepay": "s1_migration_prepay", "Bau": "bau",
    "Secmp0192Schedules": "bau",
}
"""User class -> the Table A2 row whose rate it sends (SECMP0192's 5.1 schedules are carved out of BAU)."""
ROW_CLASSES: dict[str, str] = {
    "meter_reads": "MeterReads", "s2_ic_credit": "S2IcCredit", "s2_ic_prepay": "S2IcPrepay",
    "s1_migration_credit": "S1MigrationCredit", "s1_migration_prepay": "S1MigrationPrepay", "bau": "Bau",
}
"""Volume-model row -> user class name (the key the shapes use). ``alerts`` is northbound: no class. Here, in the
volume model, so the run spec's rates and the Locust user classes read one table without importing each other."""

_JOURNEY_KIND = {"S2IcCredit": (2, False), "S2IcPrepay": (2, True), "S1MigrationCredit": (1, False),
                 "S1MigrationPrepay": (1, True)}


@dataclass(frozen=True)
class Figure:
    """A number and where it comes from (a profile key, a formula over profile keys, a file, a default)."""

    value: float
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "source": self.source}


@dataclass(frozen=True)
class FleetShares:
    """The fleet's make-up for a run: what :class:`~dcc_capacity.model.fleet.Fleet` is built with."""

    smets1: Figure
    prepay_smets1: Figure
    prepay_smets2: Figure
    dual_fuel: Figure

    def fleet(self, seed: int, size: int):  # noqa: ANN201 - a Fleet (imported late: Faker is not free)
        """The run's fleet of ``size`` installations from ``seed`` with these shares."""
        from dcc_capacity.model.fleet import Fleet

        return Fleet(seed=seed, size=size, smets1_share=self.smets1.value,
                     prepay_share={"smets1": self.prepay_smets1.value, "smets2": self.prepay_smets2.value},
                     dual_fuel_share=self.dual_fuel.value)

    def to_dict(self) -> dict[str, Any]:
        return {"smets1_share": self.smets1.to_dict(), "prepay_share_smets1": self.prepay_smets1.to_dict(),
                "prepay_share_smets2": self.prepay_smets2.to_dict(), "dual_fuel_share": self.dual_fuel.to_dict()}


@dataclass(frozen=True)
class ClassMix:
    """What one user class sends: its SRV/s, its SRVs' shares, and the installations they go to."""

    name: str
    row: str
    srv_per_s: float
    variants: dict[str, float]
    """SRV variant -> share of this class's SRVs (sums to 1)."""
    smets1: float
    """Share of this class's SRVs sent to SMETS1 installations."""
    prepay: float
    """Share of this class's SRVs sent to prepayment installations."""
    source: str


@dataclass(frozen=True)
class SrvMix:
    """The derived mix of one SP and slot (rates at the slot's peak; shares do not depend on ``--rate``)."""

    profile: str
    capability: str
    sp: str
    slot: str
    fleet: FleetShares
    only_smets: int | None
    """1 for the S1SP and DCO (they carry only SMETS1 installations), else None."""
    journeys: dict[str, tuple[str, ...]]
    journey_sources: dict[str, str]
    topup_share: Figure
    """Share of the SP's BAU row that is top-ups (Table A5's BAU formula)."""
    bau: BauMix
    """The Bau user class's make-up (top-ups at the share that keeps their rate, the rest from bau_mix.csv)."""
    classes: dict[str, ClassMix]

    # -- what the records of a run should show --------------------------------------------------
    @property
    def total_srv_per_s(self) -> float:
        return sum(c.srv_per_s for c in self.classes.values())

    def class_shares(self) -> dict[str, float]:
        """User class -> share of all SRVs sent (the per-row shares, SECMP0192 apart from the rest of BAU)."""
        total = self.total_srv_per_s
        return {n: (c.srv_per_s / total if total else 0.0) for n, c in self.classes.items()}

    def row_shares(self) -> dict[str, float]:
        """Table A2 row -> share of all SRVs sent (alerts are northbound: not sent, not counted)."""
        out: dict[str, float] = {}
        for name, share in self.class_shares().items():
            out[self.classes[name].row] = out.get(self.classes[name].row, 0.0) + share
        return out

    def srv_shares(self) -> dict[str, float]:
        """SRV variant -> share of all SRVs sent, over every class."""
        out: dict[str, float] = {}
        for name, share in self.class_shares().items():
            for variant, part in self.classes[name].variants.items():
                out[variant] = out.get(variant, 0.0) + share * part
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def smets1_share(self) -> float:
        """Share of all SRVs sent to SMETS1 installations."""
        return sum(share * self.classes[n].smets1 for n, share in self.class_shares().items())

    def prepay_share(self) -> float:
        """Share of all SRVs sent to prepayment installations."""
        return sum(share * self.classes[n].prepay for n, share in self.class_shares().items())

    def bau_topup_share(self) -> float:
        """Share of 2.2 among the BAU row's SRVs as sent (Bau plus SECMP0192): equals ``topup_share``."""
        bau = self.classes.get("Bau")
        rows = sum(c.srv_per_s for c in self.classes.values() if c.row == "bau")
        if bau is None or rows <= 0:
            return 0.0
        return bau.srv_per_s * bau.variants.get(TOPUP_VARIANT, 0.0) / rows

    def srv_sources(self) -> dict[str, str]:
        """SRV variant -> where its share comes from (the classes that send it and their figures)."""
        out: dict[str, list[str]] = {}
        bau_sources = dict(zip(self.bau.variants, self.bau.sources, strict=True))
        for name, c in self.classes.items():
            for variant in c.variants:
                if name == "Bau":
                    text = f"Bau: {bau_sources.get(variant, '')}"
                elif c.row in self.journeys:
                    text = f"{name}: journey {c.row} ({self.journey_sources[c.row]})"
                else:
                    text = f"{name}: {c.source}"
                out.setdefault(variant, []).append(text)
        return {v: "; ".join(texts) for v, texts in out.items()}

    def to_dict(self) -> dict[str, Any]:
        """``plan --mix --format json`` and run folders' plan.json ``mix``: numbers unrounded, each with a source."""
        shares = self.class_shares()
        sources = self.srv_sources()
        by_class = {n: {"row": c.row, "srv_per_s": c.srv_per_s, "share": shares[n], "smets1_share": c.smets1,
                        "prepay_share": c.prepay, "source": c.source, "variants": c.variants}
                    for n, c in self.classes.items()}
        srvs = {}
        for variant, share in self.srv_shares().items():
            s1 = sum(shares[n] * c.variants.get(variant, 0.0) * _variant_smets1(self, n, variant)
                     for n, c in self.classes.items())
            srvs[variant] = {"share": share, "srv_per_s": share * self.total_srv_per_s,
                             "smets1_share": s1 / share if share else 0.0, "source": sources[variant]}
        return {
            "profile": self.profile, "capability": self.capability, "sp": self.sp, "slot": self.slot,
            "hours": SLOT_HOURS_LABEL[self.slot], "total_srv_per_s": self.total_srv_per_s,
            "fleet": self.fleet.to_dict(), "only_smets": self.only_smets,
            "smets1_share": self.smets1_share(), "prepay_share": self.prepay_share(),
            "topup_share": self.topup_share.to_dict(), "rows": self.row_shares(), "classes": by_class, "srvs": srvs,
            "journeys": {row: {"srvs": list(j), "source": self.journey_sources[row]}
                         for row, j in self.journeys.items()},
        }


def _variant_smets1(mix: SrvMix, name: str, variant: str) -> float:
    """Share of ``variant``'s SRVs from class ``name`` that go to SMETS1 installations."""
    if mix.only_smets == 1:
        return 1.0
    if name == "Bau" and variant in PREPAY_ONLY:
        return _smets1_of_prepay(mix.fleet)
    if name == "MeterReads" and variant in METER_READ_PREPAY_VARIANTS:
        return _smets1_of_prepay(mix.fleet)
    if name == "MeterReads":  # 4.6.1 / 4.8.1: credit installations pick 1 of 2, prepayment ones 1 of 3
        s, p1, p2 = mix.fleet.smets1.value, mix.fleet.prepay_smets1.value, mix.fleet.prepay_smets2.value
        w1, w2 = s * ((1 - p1) / 2 + p1 / 3), (1 - s) * ((1 - p2) / 2 + p2 / 3)
        return w1 / (w1 + w2) if w1 + w2 else 0.0
    return mix.classes[name].smets1


def _smets1_of_prepay(fleet: FleetShares) -> float:
    s, p1, p2 = fleet.smets1.value, fleet.prepay_smets1.value, fleet.prepay_smets2.value
    both = s * p1 + (1 - s) * p2
    return s * p1 / both if both else 0.0


def derive_mix(plan: VolumePlan, sp: str, slot: str, class_rates: dict[str, float], *,
               secmp0192_share: float = 0.0, bau: BauMix | None = None,
               dual_fuel_share: float = DEFAULT_DUAL_FUEL_SHARE) -> SrvMix:
    """The mix of ``sp`` in ``slot``; ``class_rates`` are the per-class SRV/s (spec/rates.py class_rates).

    ``secmp0192_share`` is the part of BAU ``class_rates`` gave to SECMP0192's schedules (the Bau class sends
    the top-ups at a share that keeps their rate: top-up share / (1 - secmp0192_share)).
    """
    profile = plan.profile
    e1p, e2p = profile.predicted_enrolled["smets1"], profile.predicted_enrolled["smets2"]
    p1, p2 = profile.prepay_share["smets1"], profile.prepay_share["smets2"]
    only = 1 if sp in ("S1SP", "DCO") else None
    fleet = FleetShares(
        smets1=Figure(plan.smets1_fraction, "profile predicted.enrolled: f1 = smets1 / (smets1 + smets2)"),
        prepay_smets1=Figure(p1, "profile prepay_share.smets1"),
        prepay_smets2=Figure(p2, "profile prepay_share.smets2"),
        dual_fuel=Figure(dual_fuel_share, "project default (the profile has no dual-fuel figure)"),
    )
    topup = _topup_share(plan, sp, slot, e1p, e2p, p1, p2)
    base = bau if bau is not None else BauMix.load()
    bau_class = _bau_class_mix(base, topup, secmp0192_share)
    journeys = dict(plan.journeys)
    journey_sources = {row: (f"profile journeys.{row}" if profile.journey_override(row) else
                             "Table A2 default (docs/volume-model.md)") for row in journeys}

    s = 1.0 if only == 1 else fleet.smets1.value
    prepay_any = p1 if only == 1 else s * p1 + (1 - s) * p2
    classes: dict[str, ClassMix] = {}
    for name, rate in class_rates.items():
        row = CLASS_ROWS.get(name)
        if row is None or rate <= 0:
            continue
        if name == "MeterReads":
            credit = {v: (1 - prepay_any) / len(METER_READ_VARIANTS) for v in METER_READ_VARIANTS}
            every = METER_READ_VARIANTS + METER_READ_PREPAY_VARIANTS
            variants = {v: credit.get(v, 0.0) + prepay_any / len(every) for v in every}
            classes[name] = ClassMix(name, row, rate, variants, s, prepay_any,
                                     "Table A2 meter reads: 4.6.1, 4.8.1; 4.14 for prepayment meters (one of them "
                                     "per read, evenly)")
        elif name in _JOURNEY_KIND:
            gen, prepay = _JOURNEY_KIND[name]
            steps = journeys[row]
            variants = {}
            for v in steps:
                variants[v] = variants.get(v, 0.0) + 1 / len(steps)
            classes[name] = ClassMix(name, row, rate, variants, 1.0 if gen == 1 else 0.0, 1.0 if prepay else 0.0,
                                     f"journey {row} ({journey_sources[row]}), {len(steps)} SRVs per installation")
        elif name == "Bau":
            variants = dict(zip(bau_class.variants, bau_class.weights, strict=True))
            t = variants.get(TOPUP_VARIANT, 0.0)
            s1_prepay = 1.0 if only == 1 else _smets1_of_prepay(fleet)
            classes[name] = ClassMix(name, row, rate, variants, t * s1_prepay + (1 - t) * s,
                                     t + (1 - t) * prepay_any,
                                     f"top-ups: {topup.source}; the rest: srv_templates/bau_mix.csv weights")
        elif name == "Secmp0192Schedules":
            how = (f"the profile's secmp0192 executions in the {slot} slot (SECMP0192 PIA 3.1, 4.3)"
                   if plan.secmp0192 is not None else
                   f"{secmp0192_share:g} of BAU (--secmp0192-share, project default 0.02)")
            classes[name] = ClassMix(name, row, rate, {"5.1": 1.0}, 1.0, p1,
                                     f"SECMP0192 5.1 (4.3 / 4.4.3 DCC-scheduled) on SMETS1 installations: {how}")
    return SrvMix(profile.name, profile.capability, sp, slot, fleet, only, journeys, journey_sources, topup,
                  bau_class, classes)


def _topup_share(plan: VolumePlan, sp: str, slot: str, e1p: float, e2p: float, p1: float, p2: float) -> Figure:
    """Top-ups over the BAU row the SP carries in ``slot``: Table A5's BAU formula, per prepayment meter a day.

    The DSP carries every prepayment meter's top-up over the whole BAU row. The S1SP and DCO carry f1 of the
    BAU row (Table A6) and the top-ups of the SMETS1 prepayment meters (``p1 * E1p``): the same formula, cut to
    the meters they serve (capped at all of their BAU).
    """
    h = SLOT_HOURS[slot] / 24
    weight = plan.row_weights(sp)["bau"]
    carried = float(plan.a5.loc["bau", slot]) * weight
    if sp in ("S1SP", "DCO"):
        topups, formula = p1 * e1p * h, "p1*E1p"
    else:
        topups, formula = (p1 * e1p + p2 * e2p) * h * weight, "(p1*E1p + p2*E2p)"
    share = min(1.0, topups / carried) if carried > 0 else 0.0
    where = f"f1 x bau[{slot}]" if sp in ("S1SP", "DCO") else f"bau[{slot}]"
    return Figure(share, f"Table A5 bau: {formula} x h/24 over {where} (one top-up per prepayment meter per day, "
                         "SCTAD Appendix A; profile predicted.enrolled, prepay_share)")


def _bau_class_mix(base: BauMix, topup: Figure, secmp0192_share: float) -> BauMix:
    """The Bau class's make-up: 2.2 at the top-up share (kept at its rate although SECMP0192 is carved out of
    BAU), the other SRVs of ``base`` in their weights' proportions, without ``base``'s own 2.2 row."""
    others = [(v, w, src) for v, w, src in zip(base.variants, base.weights, base.sources, strict=True)
              if v != TOPUP_VARIANT]
    t = topup.value / (1 - secmp0192_share) if secmp0192_share < 1 else 1.0
    t = min(1.0, t) if others else 1.0
    total = sum(w for _, w, _ in others)
    variants, weights, sources = [TOPUP_VARIANT] if t > 0 else [], [t] if t > 0 else [], []
    if t > 0:
        kept = "" if not secmp0192_share else f" / (1 - {secmp0192_share:g} SECMP0192)"
        sources.append(f"top-ups: {topup.source}{kept}")
    for v, w, src in others:
        if (1 - t) > 0:
            variants.append(v)
            weights.append((1 - t) * w / total)
            sources.append(f"bau_mix.csv weight {w:g} of {total:g} ({src})")
    return BauMix(tuple(variants), tuple(weights), tuple(sources))
