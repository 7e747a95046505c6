"""Volume profiles: the YAML inputs of the Appendix A model (schema version 1).

A profile is where a test manager's forecast enters the suite, so a mistake in
it must stop the run with one line that says which file, which key and which
line to fix, never a traceback and never a silently ignored typo. The schema
is a tree of pydantic models with ``extra="forbid"`` and strict types; every
pydantic error is translated into an :class:`~dcc_capacity.errors.InputError`
carrying the YAML line (:mod:`dcc_capacity.config.validation` and
:mod:`dcc_capacity.config.yamlsource`).

See docs/volume-model.md for every key and its meaning.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from dcc_capacity.config.validation import validate
from dcc_capacity.config.yamlsource import YamlSource, dotted_keys, dotted_leaves, load_yaml
from dcc_capacity.errors import InputError
from dcc_capacity.model.catalogue import get_srv
from dcc_capacity.model.secmp0192 import Secmp0192Inputs
from dcc_capacity.paths import data_dir

__all__ = ["Profile", "ProfileModel", "Input", "load_profile", "parse_profile", "resolve_profile_path",
           "SCHEMA_VERSION", "CAPABILITIES", "SLOTS", "SPS", "JOURNEY_ROWS", "DEFAULT_SPLITS", "Current", "CurrentSrvs",
           "Enrolled", "Journeys", "OptionalSlotValues", "PeakToAverage", "PerDay", "PerSp", "Predicted", "PrepayShare",
           "S1spShare", "SlotSplit", "SlotValues", "Split"]

SCHEMA_VERSION = 1
CAPABILITIES = ("IOC", "MOC", "FOC")
# The model's vocabulary lives here because the schema needs it; dcc_capacity.model.volume re-exports it.
SLOTS: tuple[str, ...] = ("night", "day", "evening")
SPS: tuple[str, ...] = ("DSP", "S1SP", "DCO", "CP")
JOURNEY_ROWS: tuple[str, ...] = ("s2_ic_credit", "s2_ic_prepay", "s1_migration_credit", "s1_migration_prepay")
_SPLIT_TOLERANCE = 1e-9

NonNeg = Annotated[float, Field(ge=0)]
Share = Annotated[float, Field(ge=0, le=1)]


def _known_variant(variant: str) -> str:
    if get_srv(variant) is None:
        raise ValueError(f"unknown SRV variant {variant!r} (not in srv_templates/catalogue.csv)")
    return variant


Variant = Annotated[str, AfterValidator(_known_variant)]


class _Strict(BaseModel):
    """Unknown keys are errors, "5" is not a number, and NaN/inf are not volumes."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


class SlotValues(_Strict):
    night: NonNeg
    day: NonNeg
    evening: NonNeg


class OptionalSlotValues(_Strict):
    night: NonNeg | None = None
    day: NonNeg | None = None
    evening: NonNeg | None = None


class Enrolled(_Strict):
    smets1: NonNeg
    smets2: NonNeg


class CurrentSrvs(_Strict):
    meter_reads: SlotValues
    bau: SlotValues


class Current(_Strict):
    enrolled: Enrolled
    srvs_per_day: CurrentSrvs


class PerDay(_Strict):
    s2_installs: NonNeg
    s1_migrations: NonNeg


class Predicted(_Strict):
    enrolled: Enrolled
    per_day: PerDay


class PrepayShare(_Strict):
    smets1: Share
    smets2: Share


class PerSp(_Strict):
    DSP: NonNeg | None = None
    S1SP: NonNeg | None = None
    DCO: NonNeg | None = None
    CP: NonNeg | None = None


class PeakToAverage(_Strict):
    DSP: OptionalSlotValues | None = None
    S1SP: OptionalSlotValues | None = None
    DCO: OptionalSlotValues | None = None
    CP: OptionalSlotValues | None = None


class Journeys(_Strict):
    s2_ic_credit: Annotated[list[Variant], Field(min_length=1)] | None = None
    s2_ic_prepay: Annotated[list[Variant], Field(min_length=1)] | None = None
    s1_migration_credit: Annotated[list[Variant], Field(min_length=1)] | None = None
    s1_migration_prepay: Annotated[list[Variant], Field(min_length=1)] | None = None


class Split(_Strict):
    """A slot split; an absent slot gets nothing, and the whole must be 1."""

    night: Share = 0.0
    day: Share = 0.0
    evening: Share = 0.0

    @model_validator(mode="after")
    def _sums_to_one(self) -> Split:
        total = self.night + self.day + self.evening
        if abs(total - 1.0) > _SPLIT_TOLERANCE:
            raise ValueError(f"night + day + evening must sum to 1 (got {total:.12g})")
        return self


class SlotSplit(_Strict):
    s2_ic: Split | None = None
    s1_migration: Split | None = None


S1spName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")]


class S1spShare(_Strict):
    """One S1SP's part of the SMETS1 fleet's traffic and of the migrations (each column sums to 1)."""

    fleet: Share
    migrations: Share


def _s1sp_shares(value: dict[str, float | S1spShare] | None) -> dict[str, float | S1spShare] | None:
    if value is None:
        return value
    if not value:
        raise ValueError("give at least one S1SP, or leave s1sp_shares out")
    for part in ("fleet", "migrations"):
        total = sum(v if isinstance(v, float | int) else getattr(v, part) for v in value.values())
        if abs(total - 1.0) > _SPLIT_TOLERANCE:
            raise ValueError(f"the S1SPs' {part} shares must sum to 1 (got {total:.12g})")
    return value


S1spShares = Annotated[dict[S1spName, Share | S1spShare] | None, AfterValidator(_s1sp_shares)]


class ProfileModel(_Strict):
    """The whole file. Field order is the order of the contract's example."""

    schema_version: int
    name: str | None = None
    capability: Literal["IOC", "MOC", "FOC"]
    measurement_day: Annotated[dt.date, Field(strict=False)] | None = None
    sources: list[str] | dict[str, str] = Field(default_factory=list)
    current: Current
    predicted: Predicted
    prepay_share: PrepayShare
    alerts_per_device_per_day: NonNeg
    peak_to_average: PeakToAverage = Field(default_factory=PeakToAverage)
    test_scale: PerSp = Field(default_factory=PerSp)
    journeys: Journeys = Field(default_factory=Journeys)
    slot_split: SlotSplit = Field(default_factory=SlotSplit)
    s1sp_shares: S1spShares = None
    secmp0192: Secmp0192Inputs | None = None


DEFAULT_SPLITS: dict[str, dict[str, float]] = {
    "s2_ic": {"night": 0.0, "day": 1.0, "evening": 0.0},
    "s1_migration": {"night": 0.0, "day": 12 / 17, "evening": 5 / 17},
}
"""Contract defaults: SMETS2+ installs all in the day; migrations by day/evening hours."""


@dataclass(frozen=True)
class Input:
    """One number the model reads, with where it came from (for reports)."""

    key: str
    value: Any
    source: str | None
    line: int | None


@dataclass(frozen=True)
class Profile:
    """A validated profile plus its file: the model reads it, reports cite it."""

    path: Path
    model: ProfileModel
    yaml: YamlSource

    @property
    def name(self) -> str:
        """The profile's ``name``, else its file name without the extension."""
        return self.model.name if self.model.name is not None else self.path.stem

    @property
    def capability(self) -> str:
        return self.model.capability

    @property
    def measurement_day(self) -> dt.date | None:
        return self.model.measurement_day

    @property
    def sources(self) -> tuple[str, ...]:
        """Every source line; the mapping form reads ``"key: text"``."""
        src = self.model.sources
        if isinstance(src, dict):
            return tuple(f"{k}: {v}" for k, v in src.items())
        return tuple(src)

    def source_of(self, key: str) -> str | None:
        """Source text given for ``key`` or its nearest ancestor (mapping form of ``sources`` only)."""
        src = self.model.sources
        if not isinstance(src, dict):
            return None
        probe = key
        while probe:
            if probe in src:
                return src[probe]
            probe = probe.rpartition(".")[0]
        return None

    @property
    def current_enrolled(self) -> dict[str, float]:
        return self.model.current.enrolled.model_dump()

    @property
    def predicted_enrolled(self) -> dict[str, float]:
        return self.model.predicted.enrolled.model_dump()

    @property
    def current_srvs_per_day(self) -> dict[str, dict[str, float]]:
        """Observed Table A3 rows that scale with enrolment: ``{"meter_reads"|"bau": {slot: SRVs/day}}``."""
        return self.model.current.srvs_per_day.model_dump()

    @property
    def s2_installs_per_day(self) -> float:
        return self.model.predicted.per_day.s2_installs

    @property
    def s1_migrations_per_day(self) -> float:
        return self.model.predicted.per_day.s1_migrations

    @property
    def prepay_share(self) -> dict[str, float]:
        """``{"smets1": p1, "smets2": p2}``, each 0..1."""
        return self.model.prepay_share.model_dump()

    @property
    def alerts_per_device_per_day(self) -> float:
        return self.model.alerts_per_device_per_day

    def test_scale(self, sp: str) -> float:
        """Production -> test environment factor for ``sp`` (1.0 when absent)."""
        value = getattr(self.model.test_scale, _check(sp, SPS, "Service Provider"))
        return 1.0 if value is None else value

    def peak_to_average(self, sp: str, slot: str) -> float:
        """Peak-to-average ratio of ``sp`` in ``slot`` (1.0 when absent)."""
        per_sp = getattr(self.model.peak_to_average, _check(sp, SPS, "Service Provider"))
        value = None if per_sp is None else getattr(per_sp, _check(slot, SLOTS, "slot"))
        return 1.0 if value is None else value

    def journey_override(self, row: str) -> tuple[str, ...] | None:
        """The profile's own journey for ``row``, or None to use the default."""
        value = getattr(self.model.journeys, _check(row, JOURNEY_ROWS, "journey row"))
        return None if value is None else tuple(value)

    def slot_split(self, kind: str) -> dict[str, float]:
        """Effective split of ``"s2_ic"`` or ``"s1_migration"`` over the slots (default when absent)."""
        value = getattr(self.model.slot_split, _check(kind, tuple(DEFAULT_SPLITS), "slot_split kind"))
        return dict(DEFAULT_SPLITS[kind]) if value is None else value.model_dump()

    def s1sp_shares(self) -> dict[str, tuple[float, float]]:
        """S1SP name -> (share of the SMETS1 fleet's traffic, share of the migrations); empty: one S1SP row.

        SCTAD 8.5 sizes the volumes "for each of the three S1SP"; a bare number gives both shares.
        """
        value = self.model.s1sp_shares or {}
        return {name: (float(v), float(v)) if isinstance(v, float | int) else (v.fleet, v.migrations)
                for name, v in value.items()}

    @property
    def secmp0192(self) -> Secmp0192Inputs | None:
        """SECMP0192's DCC-scheduled 4.3 / 4.4.3 inputs, or None (then run's 2 %-of-BAU default applies)."""
        return self.model.secmp0192

    def inputs(self) -> Iterator[Input]:
        """Every number given in the file, as (dotted key, value, source, line), in file order."""
        for key, value in dotted_leaves(self.yaml.data, ""):
            if key in ("name", "schema_version", "sources") or key.startswith(("sources.", "sources[")):
                continue
            yield Input(key, value, self.source_of(key), self.yaml.line_of(key))


def _check(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise InputError(f"unknown {what} {value!r} (one of {', '.join(allowed)})")
    return value


def _hint(key: str, kind: str, value: Any) -> str | None:
    """Profile-specific wording for the errors users meet most."""
    if key == "sources" and kind.endswith("_type"):
        return "expected a list of texts or a mapping of key: text"
    if kind in ("greater_than_equal", "less_than_equal") and ("share" in key or key.startswith("slot_split")):
        return "a share must be between 0 and 1"
    if kind == "too_short" and key.startswith("journeys"):
        return "must list at least one SRV variant"
    return None


def resolve_profile_path(path: str | Path) -> Path:
    """``path`` itself, or for a bare name (``foc``, ``foc.yaml``) that is not a file here, the shipped example.

    An installed wheel has no checkout to point at, so ``dcc-capacity plan foc`` must still find its example.
    """
    given = Path(path)
    if given.exists() or given.parent != Path(".") or given.suffix not in ("", ".yaml", ".yml"):
        return given
    shipped = data_dir("volume_profiles") / (given.name if given.suffix else f"{given.name}.yaml")
    return shipped if shipped.is_file() else given


def load_profile(path: str | Path) -> Profile:
    """Read and validate a profile file; any problem is an InputError naming file, key and line.

    A bare name such as ``foc`` finds the shipped example (see :func:`resolve_profile_path`).
    """
    return parse_profile(load_yaml(resolve_profile_path(path)))


def parse_profile(src: YamlSource) -> Profile:
    """Validate already-parsed YAML (kept separate so tests and tools can build sources in memory)."""
    data = src.data
    if data is None:
        raise src.error(None, "empty profile (expected a mapping with schema_version: 1)")
    if not isinstance(data, dict):
        raise src.error(None, f"a profile is a YAML mapping, not a {type(data).__name__}")
    # Check the version first: a future schema should fail on its version, not on its new keys.
    if "schema_version" not in data:
        raise src.error("schema_version", f"missing required key (this suite reads schema_version: {SCHEMA_VERSION})")
    version = data["schema_version"]
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise src.error("schema_version", f"unsupported schema version {version!r} (this suite reads "
                                          f"{SCHEMA_VERSION})")
    model = validate(ProfileModel, src, hint=_hint)
    if model.current.enrolled.smets1 + model.current.enrolled.smets2 <= 0:
        raise src.error("current.enrolled", "smets1 + smets2 must be > 0: the growth g = predicted / current "
                                            "enrolment divides by it")
    if isinstance(model.sources, dict):
        known = set(dotted_keys(data, ""))
        for key in model.sources:
            if key not in known or key.startswith("sources"):
                raise src.error(f"sources.{key}", "names no key of this profile (sources may be keyed by the "
                                                  "dotted key of the figure they support, e.g. "
                                                  "predicted.per_day.s2_installs)")
    return Profile(src.path or Path("<profile>"), model, src)  # an in-memory source has no file
