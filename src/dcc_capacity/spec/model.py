"""The run spec: every setting of one run, declared once (name, default, description, bounds).

:class:`SpecBase` holds what every test type has (profile, SP, slot, rate,
duration, fleet, measurement, safety ceilings); each test type's module in
:mod:`dcc_capacity.testtypes` subclasses it with its own knobs and a
``test: Literal[...]`` tag, and :data:`dcc_capacity.testtypes.registry.RunSpec`
is the discriminated union of them all. From the fields' metadata
(:func:`knob`) three surfaces are generated, so a default such as the stress
ceiling 3.0 is written once:

* the ``dcc-capacity run`` flags (:mod:`dcc_capacity.spec.cli`): ``--max-factor``;
* the run-configuration keys (:mod:`dcc_capacity.config.runconfig`): ``run.max_factor``;
* the Locust options of ``locust -f locustfiles/dcc.py`` (:mod:`dcc_capacity.spec.options`): ``--dcc-max-factor``.

The parent writes the validated spec to ``<run>/spec.json``; every Locust
process loads that same object (``--dcc-spec``) instead of re-parsing strings.
Free of Locust, so the CLI validates input without gevent's patching.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dcc_capacity.errors import InputError
from dcc_capacity.model.cpmigration import DEFAULT_BATCH
from dcc_capacity.model.volume import SLOTS, SPS
from dcc_capacity.spec.rates import excluded

__all__ = ["Knob", "SpecBase", "StepKnobs", "check_bounds", "knob", "knobs_of", "parse_duration"]


def parse_duration(text: str | float | int, key: str = "--duration") -> float:
    """``8s``, ``2m``, ``1h30m``, ``90`` -> seconds; InputError otherwise."""
    if isinstance(text, int | float) and not isinstance(text, bool):
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


@dataclass(frozen=True)
class Knob:
    """How one spec field meets the user: its flag, its configuration key, its Locust option, its bounds."""

    name: str
    """The field's name (the one name run.json's ``spec`` uses)."""
    flag: str
    """``dcc-capacity run`` flag, e.g. ``--max-factor``; its argparse dest is the flag without dashes."""
    config: str | None
    """Dotted run-configuration key (``run.max_factor``, ``seed``, ``safety.max_rate``); None: flag only."""
    locust: str | None
    """Locust option: ``--dcc-`` + the flag for the options this locustfile owns; a library's own option name
    (``--trt-late``: load/runcontext.py registers it for any open-model locustfile); None: the parent only."""
    owned: bool
    """True when the locustfile registers :attr:`locust` from this spec (False: a library registers it)."""
    default: Any
    doc: str
    kind: str
    """``float``, ``int``, ``str``, ``bool``, ``duration`` (seconds; ``30s``, ``5m`` accepted) or ``list``."""
    optional: bool
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    group: str | None = None
    cli: bool = True
    """A ``dcc-capacity run`` flag exists (False: the run sets the field itself, e.g. stress ``interactive``)."""

    @property
    def dest(self) -> str:
        return self.flag[2:].replace("-", "_")

    @property
    def locust_dest(self) -> str | None:
        return self.locust[2:].replace("-", "_") if self.locust else None

    def text(self, value: Any) -> Any:
        """``value`` as the CLI / Locust option writes it (durations as ``60s``, lists comma separated)."""
        if value is None:
            return None
        if self.kind == "duration":
            return f"{value:g}s"
        if self.kind == "list":
            return ",".join(value)
        return value


def knob(default: Any, doc: str, *, flag: str | None = None, config: str | None = "run", locust: str | None = "",
         lo: float | None = None, hi: float | None = None, lo_open: bool = False, duration: bool = False,
         choices: tuple[str, ...] | None = None, metavar: str | None = None, group: str | None = None,
         cli: bool = True) -> Any:
    """A spec field with its metadata. ``flag`` defaults to the field name (``max_factor`` -> ``--max-factor``),
    ``config`` to ``run.<dest>`` (give a section such as ``safety`` or a full dotted key), ``locust`` to
    ``--dcc-<flag>`` (None: the parent only); ``cli=False``: no ``run`` flag (set by the run itself)."""
    extra = {"flag": flag, "config": config, "locust": locust, "lo": lo, "hi": hi, "lo_open": lo_open,
             "duration": duration, "choices": choices, "metavar": metavar, "group": group, "cli": cli}
    return Field(default, description=doc, json_schema_extra={"knob": extra})  # type: ignore[dict-item]


def _kind(annotation: Any, duration: bool) -> tuple[str, bool]:
    text = str(annotation)
    optional = "None" in text
    if duration:
        return "duration", optional
    for name in ("bool", "int", "float", "tuple", "str"):
        if name in text:
            return ("list" if name == "tuple" else name), optional
    return "str", optional


_KNOBS: dict[type, dict[str, Knob]] = {}


def _extra(info: Any) -> dict[str, Any] | None:
    extra = info.json_schema_extra
    return extra.get("knob") if isinstance(extra, dict) else None


def knobs_of(cls: type[BaseModel]) -> dict[str, Knob]:
    """Field name -> :class:`Knob` of every field of ``cls`` that has one (cached on the class)."""
    cached = _KNOBS.get(cls)
    if cached is not None:
        return cached
    out: dict[str, Knob] = {}
    for name, info in cls.model_fields.items():
        extra, doc = _extra(info), info.description
        for base in cls.__mro__[1:]:  # a subclass that narrows ``test`` to its Literal keeps the base's metadata
            if extra is not None:
                break
            base_info = getattr(base, "model_fields", {}).get(name)
            if base_info is not None:
                extra, doc = _extra(base_info), base_info.description
        if extra is None:
            continue
        flag = extra["flag"] or "--" + name.replace("_", "-")
        dest = flag[2:].replace("-", "_")
        config = extra["config"]
        if config is not None and "." not in config and config not in ("seed",):
            config = f"{config}.{dest}"
        locust = extra["locust"]
        owned = locust == ""
        if owned:
            locust = "--dcc-" + flag[2:]
        kind, optional = _kind(info.annotation, extra["duration"])
        default = info.default
        out[name] = Knob(name=name, flag=flag, config=config, locust=locust, owned=owned and locust is not None,
                         default=default, doc=doc or "", kind=kind, optional=optional,
                         lo=extra["lo"], hi=extra["hi"], lo_open=extra["lo_open"], choices=extra["choices"],
                         metavar=extra["metavar"], group=extra["group"], cli=extra["cli"])
    _KNOBS[cls] = out
    return out


def _num(x: float) -> str:
    return f"{x:g}" if abs(x) < 1e6 else f"{x:,.0f}"


def check_bounds(k: Knob, value: Any) -> None:
    """InputError naming the flag when ``value`` is outside the knob's bounds (or not finite)."""
    if value is None or k.kind not in ("float", "int", "duration") or (k.lo is None and k.hi is None):
        return
    if not math.isfinite(float(value)):
        raise InputError(f"must be a finite number (got {value})", key=k.flag)
    low_bad = k.lo is not None and (value <= k.lo if k.lo_open else value < k.lo)
    high_bad = k.hi is not None and value > k.hi
    if low_bad or high_bad:
        low = "" if k.lo is None else (f"> {_num(k.lo)}" if k.lo_open else f">= {_num(k.lo)}")
        high = "" if k.hi is None else f"<= {_num(k.hi)}"
        raise InputError(f"must be {' and '.join(x for x in (low, high) if x)} (got {value})", key=k.flag)


class SpecBase(BaseModel):
    """What every test type has. Subclasses (one per test type) add their knobs and fix ``test``."""

    model_config = ConfigDict(extra="forbid", validate_assignment=False)

    test: str = knob("load", "the test to run", metavar="TEST", group="test")
    test_id: str | None = knob(None, "catalogue test id this run is evidence for (default: the shipped catalogue's "
                                     "id of the test type, e.g. LOAD, STRESS)", metavar="ID", locust=None)
    profile: str = knob("volume_profiles/foc.yaml", "volume profile YAML, or foc/moc/ioc for a shipped one")
    sp: str = knob("DSP", "Service Provider: DSP, S1SP, DCO or CP", choices=SPS)
    slot: str | None = knob(None, "night, day or evening (default: the SP's busiest slot)", choices=SLOTS)
    s1sp: str | None = knob(None, "with --sp S1SP: send one S1SP's share (a name of the profile's s1sp_shares, "
                                  "or 1..N; default: the whole S1SP row)", metavar="N")
    cp_batch: int = knob(DEFAULT_BATCH, "with --sp CP: SMETS1 installations per migration (one set of migration "
                                        "files)", lo=1, hi=100_000, metavar="N")
    rate: float | None = knob(None, "total SRV/s, overriding the profile (mix kept)", lo=0, lo_open=True)
    duration_s: float = knob(60.0, "test duration, e.g. 30s, 5m (stress, scale: upper bound)", flag="--duration",
                             duration=True)
    normal: bool = knob(False, "the slot's average rate instead of its peak")
    secmp0192_share: float = knob(0.02, "share of BAU sent as SECMP0192 5.1 schedules (a project default)",
                                  lo=0, hi=1)
    exclude: tuple[str, ...] = knob((), "user classes not sent, comma separated; 'smets1': the SMETS2-only "
                                        "baseline (the others keep their rates)", metavar="CLASSES")
    seed: int = knob(20240601, "fleet seed (same seed, same devices)", config="seed", lo=0)
    fleet_size: int = knob(1_000_000, "installations in the fleet", lo=1, hi=2**32)
    pool_size: int = knob(1024, "installations per (SMETS, payment mode) pool the load draws from", lo=1)
    retries: int = knob(0, "extra attempts of a failed SRV before a journey ends", lo=0, hi=100)
    trt_late_s: float = knob(30.0, "an async response later than this (from the planned send) is 'late'",
                             flag="--trt-late", duration=True, locust="--trt-late", metavar="DURATION",
                             group="measure")
    trt_missing_s: float = knob(120.0, "no async response after this is 'missing'", flag="--trt-missing",
                                duration=True, locust="--trt-missing", lo=0, hi=7 * 86400, lo_open=True,
                                metavar="DURATION", group="measure")
    drain_s: float | None = knob(None, "after the load, wait at most this for awaited responses, then record them "
                                       "missing (default: --trt-missing)", flag="--drain", duration=True,
                                 locust="--drain", lo=0, hi=7 * 86400, metavar="DURATION", group="measure")
    max_in_flight: int = knob(1000, "open HTTP exchanges per user class and load process; an arrival past it is "
                                    "dropped and the run is INVALID", locust="--max-in-flight", lo=1, hi=1_000_000,
                              group="measure")
    max_parked: int = knob(100_000, "journeys per load process waiting for a response their next step needs",
                           flag="--max-parked-journeys", locust="--max-parked-journeys", lo=0, hi=10_000_000,
                           group="measure")
    max_send_lag_ms: float | None = knob(None, "the run is INVALID when the generator's send lag p99 exceeds this "
                                               "(default 50 ms, a project default)", flag="--max-send-lag",
                                         config="run.max_send_lag_ms", locust=None, lo=0, lo_open=True,
                                         metavar="MS", group="measure")
    max_rate: float | None = knob(None, "safety ceiling: the total SRV/s offered never exceeds this", config="safety",
                                  lo=0, lo_open=True, group="safety")
    max_duration_s: float | None = knob(None, "safety ceiling: the load stops after this long, e.g. 2h",
                                        flag="--max-duration", config="safety", duration=True, group="safety")

    KIND: ClassVar[str] = ""

    @model_validator(mode="before")
    @classmethod
    def _inputs(cls, data: Any) -> Any:
        """Durations from text, comma lists, ``--max-p95-ms 0`` as off: the forms the flags and options give."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for name, k in knobs_of(cls).items():
            v = data.get(name)
            if isinstance(v, str) and v == "":
                data[name] = None if k.optional else k.default
            elif v is None:
                continue
            elif k.kind == "duration":
                data[name] = parse_duration(v, k.flag)
            elif k.kind == "list" and isinstance(v, str):
                data[name] = tuple(n.strip() for n in v.split(",") if n.strip())
        return data

    @field_validator("test_id")
    @classmethod
    def _test_id(cls, v: str | None) -> str | None:
        """An id the report can anchor (letters, digits, '.', '_', '-')."""
        if v is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", v):
            raise InputError(f"letters, digits, '.', '_' or '-' only (got {v!r})", key="--test-id")
        return v

    @field_validator("profile")
    @classmethod
    def _profile(cls, v: str) -> str:
        """A path, or a bare ioc/moc/foc naming the shipped example (as `plan` accepts)."""
        if not Path(v).exists() and v.lower() in ("ioc", "moc", "foc"):
            from dcc_capacity.paths import data_dir

            return str(data_dir("volume_profiles") / f"{v.lower()}.yaml")
        return v

    @model_validator(mode="after")
    def _bounds(self) -> SpecBase:
        for name, k in knobs_of(type(self)).items():
            check_bounds(k, getattr(self, name))
        if self.trt_late_s > self.trt_missing_s:
            raise InputError(f"must be <= --trt-missing {self.trt_missing_s:g} s (got {self.trt_late_s:g} s)",
                             key="--trt-late")
        return self

    def check(self) -> SpecBase:
        """SP, slot and ``--exclude`` against the volume model (InputError naming the flag)."""
        if self.sp not in SPS:
            raise InputError(f"unknown Service Provider {self.sp!r} (one of {', '.join(SPS)})", key="--sp")
        if self.slot is not None and self.slot not in SLOTS:
            raise InputError(f"unknown slot {self.slot!r} (one of {', '.join(SLOTS)})", key="--slot")
        if self.s1sp is not None and self.sp != "S1SP":
            raise InputError(f"goes with --sp S1SP (got --sp {self.sp})", key="--s1sp")
        excluded(self.exclude)
        return self

    def to_dict(self) -> dict[str, Any]:
        """run.json ``spec`` and ``<run>/spec.json``: every field, JSON types."""
        return self.model_dump(mode="json")


class StepKnobs(BaseModel):
    """Knobs of a test that steps the load through multiples of the reference rate (stress, scale)."""

    step_fraction: float = knob(0.1, "step size, as a fraction of the peak", flag="--step", lo=0, hi=10,
                                lo_open=True, group="steps")
    step_s: float = knob(60.0, "length of each step", flag="--step-duration", duration=True, group="steps")
    start_factor: float = knob(1.0, "first step as a multiple of the peak", lo=0, lo_open=True, group="steps")
    max_factor: float = knob(3.0, "ceiling as a multiple of the peak", lo=0, lo_open=True, group="steps")

    @model_validator(mode="after")
    def _ceiling(self) -> StepKnobs:
        if self.max_factor < self.start_factor:
            raise InputError(f"must be >= --start-factor {self.start_factor:g} (got {self.max_factor:g})",
                             key="--max-factor")
        return self

    def factors(self) -> list[float]:
        """The step factors from ``start_factor`` up to ``max_factor`` (the ceiling included when on a step)."""
        n = int(math.floor((self.max_factor - self.start_factor) / self.step_fraction + 1e-9)) + 1
        return [self.start_factor + i * self.step_fraction for i in range(n)]
