"""Builders for volume-profile tests: in-memory profiles and hypothesis strategies."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from dcc_capacity.config.yamlsource import YamlSource
from dcc_capacity.model.profiles import Profile, parse_profile

DATA = Path(__file__).resolve().parent / "data"
SLOTS = ("night", "day", "evening")
SPS = ("DSP", "S1SP", "DCO", "CP")


def profile_from(data: dict[str, Any], name: str = "<memory>") -> Profile:
    """Validate a profile given as a dict (no file needed; no line numbers)."""
    return parse_profile(YamlSource(Path(name), copy.deepcopy(data)))


def minimal_profile() -> dict[str, Any]:
    """Smallest valid profile: every required key, nothing optional."""
    return {
        "schema_version": 1,
        "name": "minimal",
        "capability": "IOC",
        "current": {
            "enrolled": {"smets1": 100, "smets2": 900},
            "srvs_per_day": {
                "meter_reads": {"night": 7000, "day": 1200, "evening": 500},
                "bau": {"night": 70, "day": 240, "evening": 50},
            },
        },
        "predicted": {"enrolled": {"smets1": 200, "smets2": 1800}, "per_day": {"s2_installs": 10, "s1_migrations": 5}},
        "prepay_share": {"smets1": 0.2, "smets2": 0.1},
        "alerts_per_device_per_day": 1,
    }


# Zero or a realistic magnitude: subnormal floats (5e-324) would test IEEE underflow, not the model.
def _or_zero(low: float, high: float) -> st.SearchStrategy[float]:
    return st.one_of(st.just(0.0), st.floats(min_value=low, max_value=high))


_volume = _or_zero(1e-3, 1e8)
_positive = st.floats(min_value=1, max_value=1e8)
_share = st.one_of(st.just(1.0), _or_zero(1e-6, 1))
_ratio = st.floats(min_value=0.01, max_value=50)


def _slots(values: st.SearchStrategy[float]) -> st.SearchStrategy[dict[str, float]]:
    return st.fixed_dictionaries({s: values for s in SLOTS})


@st.composite
def profiles(draw: st.DrawFn) -> dict[str, Any]:
    """Random valid profile dicts covering every optional section."""
    split = draw(st.lists(_or_zero(1e-3, 1), min_size=3, max_size=3).filter(lambda xs: sum(xs) > 0))
    total = sum(split)
    night, day, evening = (x / total for x in split)
    data = {
        "schema_version": 1,
        "name": "generated",
        "capability": draw(st.sampled_from(["IOC", "MOC", "FOC"])),
        "current": {
            "enrolled": {"smets1": draw(_positive), "smets2": draw(_volume)},
            "srvs_per_day": {"meter_reads": draw(_slots(_volume)), "bau": draw(_slots(_volume))},
        },
        "predicted": {
            "enrolled": {"smets1": draw(_volume), "smets2": draw(_volume)},
            "per_day": {"s2_installs": draw(_volume), "s1_migrations": draw(_volume)},
        },
        "prepay_share": {"smets1": draw(_share), "smets2": draw(_share)},
        "alerts_per_device_per_day": draw(_or_zero(1e-3, 20)),
        "peak_to_average": {sp: draw(_slots(_ratio)) for sp in SPS},
        "test_scale": {sp: draw(_ratio) for sp in SPS},
        "slot_split": {"s1_migration": {"night": night, "day": day, "evening": evening}},
    }
    if draw(st.booleans()):
        data["journeys"] = {"s1_migration_credit": draw(st.lists(st.sampled_from(["12.2", "8.11", "4.6.1"]),
                                                                 min_size=1, max_size=20))}
    return data
