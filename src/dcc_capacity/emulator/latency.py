"""Device latency: the time from the I99 acknowledgement to the async response, per SMETS generation and SRV class.

Why a model of its own: a real DCC answers a SMETS2 on-demand read in
seconds, a SMETS1 one later (the request travels on through the S1SP and the
CSP), and a SECMP0192 DCC-scheduled execution within 24 h. A capacity test
only shows whether the load generator holds its rate against such response
times if the emulator produces them, so the latency is keyed by generation
and class and given the way performance people state it: a median and a
tail (p50 / p99 of a log-normal), a fixed value, or an empirical quantile
table measured on a real system.

Two presets (docs/emulator.md, "Device latency"): ``dcc-test`` (the default:
realistic for a DCC test environment) and ``fast`` (the sub-second values the
suite had before, for its own tests and the README demo). Anything not set
explicitly comes from the preset, so one entry can be changed alone.
"""

from __future__ import annotations

import bisect
import math
import os
import random
from itertools import pairwise
from statistics import NormalDist
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dcc_capacity.errors import InputError

__all__ = ["ENV_PRESET", "GENERATIONS", "LATENCY_CLASSES", "PRESETS", "DeviceLatencyConfig", "Latency",
           "LatencySampler", "default_preset", "preset_table", "known_classes"]

LATENCY_CLASSES = ("critical", "device", "non_device", "scheduled")
"""The SRV classes of :data:`~.config.SRV_CLASSES` plus ``scheduled`` (SECMP0192 / DSP-scheduled executions)."""
GENERATIONS = ("smets1", "smets2")
PresetName = Literal["dcc-test", "fast"]
ENV_PRESET = "DCC_CAPACITY_DEVICE_LATENCY"
"""Environment variable naming the preset used when neither the config nor a CLI option names one (the test suite
sets it to ``fast`` in tests/conftest.py, so every emulator it starts, in any process, is fast)."""
DEFAULT_PRESET: PresetName = "dcc-test"
_Z99 = NormalDist().inv_cdf(0.99)
_MAX_MS = 7 * 86_400_000  # a week: longer is a typo, not a latency


class Latency(BaseModel):
    """One distribution in milliseconds: exactly one of ``p50_ms`` + ``p99_ms`` (log-normal), ``fixed_ms`` or
    ``table`` (``[[quantile, ms], ...]`` from quantile 0 to 1, sampled by linear interpolation between points)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    p50_ms: float | None = Field(default=None, gt=0, le=_MAX_MS)
    p99_ms: float | None = Field(default=None, gt=0, le=_MAX_MS)
    fixed_ms: float | None = Field(default=None, ge=0, le=_MAX_MS)
    table: tuple[tuple[float, float], ...] | None = None

    @field_validator("table")
    @classmethod
    def _table(cls, v: tuple[tuple[float, float], ...] | None) -> tuple[tuple[float, float], ...] | None:
        if v is None:
            return v
        if len(v) < 2:
            raise ValueError("a quantile table needs at least two [quantile, ms] points")
        qs, ms = [q for q, _ in v], [m for _, m in v]
        if qs[0] != 0 or qs[-1] != 1:
            raise ValueError("a quantile table runs from quantile 0 to quantile 1")
        if any(b <= a for a, b in pairwise(qs)):
            raise ValueError("table quantiles must increase")
        if any(b < a for a, b in pairwise(ms)):
            raise ValueError("table ms must not decrease")
        if ms[0] < 0 or ms[-1] > _MAX_MS:
            raise ValueError(f"table ms must be between 0 and {_MAX_MS}")
        return v

    @model_validator(mode="after")
    def _one_shape(self) -> Latency:
        lognormal = self.p50_ms is not None or self.p99_ms is not None
        shapes = int(lognormal) + int(self.fixed_ms is not None) + int(self.table is not None)
        if shapes != 1:
            raise ValueError("give exactly one of p50_ms + p99_ms, fixed_ms or table")
        if lognormal:
            if self.p50_ms is None or self.p99_ms is None:
                raise ValueError("a log-normal needs both p50_ms and p99_ms")
            if self.p99_ms < self.p50_ms:
                raise ValueError(f"p99_ms ({self.p99_ms:g}) is below p50_ms ({self.p50_ms:g})")
        return self


def _ln(p50: float, p99: float) -> Latency:
    return Latency(p50_ms=p50, p99_ms=p99)


def _fixed(ms: float) -> Latency:
    return Latency(fixed_ms=ms)


# Sources and reasoning for every figure: docs/emulator.md, "Device latency". The 24 h bound of `scheduled` is
# SECMP0192's (PIA 4.2; assumption MP192-SA3); every other figure is a project assumption.
_SCHEDULED = Latency(table=((0.0, 60_000), (0.5, 900_000), (0.9, 4 * 3_600_000), (1.0, 24 * 3_600_000)))
_FAST_CRITICAL, _FAST_DEVICE = _ln(265, 850), _ln(132, 425)  # the old lognormal(mean 300 / 150 ms, sigma 0.5)
PRESETS: dict[str, dict[str, dict[str, Latency]]] = {
    "dcc-test": {
        "smets2": {"critical": _ln(3_000, 12_000), "device": _ln(2_000, 10_000), "non_device": _fixed(0),
                   "scheduled": _SCHEDULED},
        "smets1": {"critical": _ln(8_000, 25_000), "device": _ln(6_000, 20_000), "non_device": _fixed(0),
                   "scheduled": _SCHEDULED},
    },
    "fast": {
        gen: {"critical": _FAST_CRITICAL, "device": _FAST_DEVICE, "non_device": _fixed(0),
              "scheduled": _ln(400, 900)}
        for gen in GENERATIONS
    },
}


def default_preset() -> PresetName:
    """The preset when nothing names one: ``$DCC_CAPACITY_DEVICE_LATENCY``, else ``dcc-test``.

    A bad value is the user's input: exit 2 naming the variable, not a silent fallback.
    """
    value = os.environ.get(ENV_PRESET, "").strip()
    if not value:
        return DEFAULT_PRESET
    if value not in PRESETS:
        raise InputError(f"unknown device-latency preset {value!r}; use {' or '.join(PRESETS)}",
                         key=f"${ENV_PRESET}")
    return value  # type: ignore[return-value]


class DeviceLatencyConfig(BaseModel):
    """``capacity.device_latency``: a preset plus per-generation, per-class overrides."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    preset: PresetName = Field(default_factory=default_preset)
    smets1: dict[str, Latency] = Field(default_factory=dict)
    smets2: dict[str, Latency] = Field(default_factory=dict)

    @field_validator("smets1", "smets2")
    @classmethod
    def _classes(cls, v: dict[str, Latency]) -> dict[str, Latency]:
        return known_classes(v, LATENCY_CLASSES)


def known_classes(v: dict[str, Any], allowed: tuple[str, ...]) -> dict[str, Any]:
    """``v`` when every key is an SRV class in ``allowed``; else the one-line error pydantic reports with its path."""
    bad = sorted(set(v) - set(allowed))
    if bad:
        raise ValueError(f"unknown SRV class {bad[0]!r}; use {', '.join(allowed)}")
    return v


def preset_table(cfg: DeviceLatencyConfig) -> dict[str, dict[str, Latency]]:
    """The effective ``{generation: {class: Latency}}``: the preset with the explicit entries on top."""
    base = PRESETS[cfg.preset]
    return {gen: {**base[gen], **getattr(cfg, gen)} for gen in GENERATIONS}


class LatencySampler:
    """Draws latencies in seconds from a :class:`Latency` (one ``random`` call per draw: the hot path)."""

    __slots__ = ("_kind", "_mu", "_sigma", "_value", "_qs", "_ms", "_rng", "spec")

    def __init__(self, spec: Latency, rng: random.Random) -> None:
        self.spec = spec
        self._rng = rng
        self._qs: list[float] = []
        self._ms: list[float] = []
        self._mu = self._sigma = self._value = 0.0
        if spec.fixed_ms is not None:
            self._kind, self._value = "fixed", spec.fixed_ms / 1000.0
        elif spec.table is not None:
            self._kind = "table"
            self._qs = [q for q, _ in spec.table]
            self._ms = [m / 1000.0 for _, m in spec.table]
        else:
            assert spec.p50_ms is not None and spec.p99_ms is not None
            # median = exp(mu); p99 = exp(mu + z99 * sigma)
            self._kind = "lognormal"
            self._mu = math.log(spec.p50_ms / 1000.0)
            self._sigma = math.log(spec.p99_ms / spec.p50_ms) / _Z99

    def sample(self) -> float:
        if self._kind == "lognormal":
            return self._rng.lognormvariate(self._mu, self._sigma)
        if self._kind == "fixed":
            return self._value
        u = self._rng.random()
        i = bisect.bisect_right(self._qs, u) - 1  # qs[i] <= u < qs[i + 1]; u < 1 so i <= len - 2
        q0, q1 = self._qs[i], self._qs[i + 1]
        m0, m1 = self._ms[i], self._ms[i + 1]
        return m0 + (m1 - m0) * (u - q0) / (q1 - q0)
