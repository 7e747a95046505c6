"""The Appendix A model against the contract: two worked examples and its algebraic properties."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings

from _volume_helpers import DATA, SLOTS, SPS, minimal_profile, profile_from, profiles
from dcc_capacity.errors import InputError
from dcc_capacity.model.volume import (
    DEFAULT_JOURNEYS,
    ROWS,
    SLOT_HOURS_LABEL,
    SLOT_SECONDS,
    compute_plan,
    load_plan,
)

REL = 1e-9
_settings = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_close(actual: float, expected: float, rel: float = REL) -> None:
    assert actual == pytest.approx(expected, rel=rel, abs=1e-9 if expected == 0 else 0), (actual, expected)


def assert_tables(got: dict, expected: dict) -> None:
    for table in ("A5", "A6", "A7"):
        assert list(got[table]) == list(expected[table]), table
        for row, cells in expected[table].items():
            assert list(got[table][row]) == list(SLOTS)
            for slot, value in cells.items():
                assert_close(got[table][row][slot], value)


def test_constants_follow_the_contract():
    assert SLOT_SECONDS == {"night": 7 * 3600, "day": 12 * 3600, "evening": 5 * 3600}
    assert sum(SLOT_SECONDS.values()) == 86400
    assert SLOT_HOURS_LABEL["day"] == "07:00-19:00"
    assert [len(DEFAULT_JOURNEYS[r]) for r in ROWS[1:5]] == [12, 17, 9, 13]


def test_worked_example_of_the_contract():
    plan = load_plan(DATA / "worked-example.yaml")
    expected = json.loads((DATA / "worked-example.expected.json").read_text())
    got = plan.to_dict()
    assert got["profile"] == "worked example for the volume model contract"
    assert got["capability"] == "FOC"
    assert_tables(got, expected)


def test_hand_worked_second_example():
    """Every cell worked on paper from docs/volume-model.md; see tests/data/hand-example.yaml."""
    plan = load_plan(DATA / "hand-example.yaml")
    # g = 8M / 4M = 2; f1 = 2M / 8M = 0.25; prepay devices = 0.5*2M + 0.25*6M = 2.5M; alerts 0.5 * 8M = 4M/day.
    assert plan.growth == 2 and plan.smets1_fraction == 0.25
    a5 = {
        "meter_reads": (16_000_000, 800_000, 400_000),
        "s2_ic_credit": (0, 24_000 * 0.75 * 12, 0),  # 216,000, all in the day (default split)
        "s2_ic_prepay": (0, 24_000 * 0.25 * 4, 0),  # overridden journey of 4 SRVs: 24,000
        "s1_migration_credit": (7_650, 7_650, 0),  # 3,400 * 0.5 * 9 = 15,300, split half night, half day
        "s1_migration_prepay": (11_050, 11_050, 0),  # 3,400 * 0.5 * 13 = 22,100
        "bau": (200_000 + 2_500_000 * 7 / 24, 2_400_000 + 1_250_000, 1_000_000 + 2_500_000 * 5 / 24),
        "alerts": (4_000_000 * 7 / 24, 2_000_000, 4_000_000 * 5 / 24),
    }
    dsp = [sum(a5[r][i] for r in a5) for i in range(3)]
    migrations = [a5["s1_migration_credit"][i] + a5["s1_migration_prepay"][i] for i in range(3)]  # 18,700 / 18,700 / 0
    s1sp = [0.25 * (a5["meter_reads"][i] + a5["bau"][i] + a5["alerts"][i]) + migrations[i] for i in range(3)]
    assert_close(dsp[1], 6_708_700)
    assert_close(s1sp[1], 1_631_200)
    seconds = (25_200, 43_200, 18_000)
    a7 = {
        "DSP": (dsp[0] / seconds[0] * 1.5 * 0.01, dsp[1] / seconds[1] * 0.01, dsp[2] / seconds[2] * 0.01),
        "S1SP": (s1sp[0] / seconds[0], s1sp[1] / seconds[1] * 2.0, s1sp[2] / seconds[2]),
        "DCO": tuple(s1sp[i] / seconds[i] for i in range(3)),
        "CP": (18_700 / 25_200 * 2, 18_700 / 43_200 * 2, 0.0),
    }
    expected = {
        "A5": {row: dict(zip(SLOTS, values, strict=True)) for row, values in a5.items()},
        "A6": {"DSP": dict(zip(SLOTS, dsp, strict=True)), "S1SP": dict(zip(SLOTS, s1sp, strict=True)),
               "DCO": dict(zip(SLOTS, s1sp, strict=True)), "CP": dict(zip(SLOTS, migrations, strict=True))},
        "A7": {sp: dict(zip(SLOTS, values, strict=True)) for sp, values in a7.items()},
    }
    assert_tables(plan.to_dict(), expected)
    assert_close(plan.a7.loc["CP", "night"], 1.4841269841269842)
    assert plan.journeys["s2_ic_prepay"] == ("12.2", "8.11", "8.1.1", "1.6")
    assert plan.journeys["s2_ic_credit"] == DEFAULT_JOURNEYS["s2_ic_credit"]


def test_frames_have_the_documented_shape():
    plan = load_plan(DATA / "hand-example.yaml")
    assert list(plan.a5.index) == list(ROWS) and list(plan.a5.columns) == list(SLOTS)
    for frame in (plan.a6, plan.a7):
        assert list(frame.index) == list(SPS) and list(frame.columns) == list(SLOTS)
        assert all(pd.api.types.is_float_dtype(t) for t in frame.dtypes)


def test_row_rates_for_each_provider():
    plan = load_plan(DATA / "hand-example.yaml")
    dsp = plan.row_rates("DSP", "night")
    assert list(dsp) == list(ROWS)
    assert_close(dsp["meter_reads"], 16_000_000 / 25_200 * 1.5 * 0.01)
    s1sp = plan.row_rates("S1SP", "day")
    assert s1sp["s2_ic_credit"] == 0 and s1sp["s2_ic_prepay"] == 0
    assert_close(s1sp["alerts"], 0.25 * 2_000_000 / 43_200 * 2.0)
    assert_close(s1sp["s1_migration_prepay"], 11_050 / 43_200 * 2.0)
    cp = plan.row_rates("CP", "night")
    assert {r for r, v in cp.items() if v} == {"s1_migration_credit", "s1_migration_prepay"}
    assert plan.busiest_slot("DSP") == "night"
    with pytest.raises(InputError, match="unknown Service Provider"):
        plan.row_rates("XSP", "day")
    with pytest.raises(InputError, match="unknown slot"):
        plan.row_rates("DSP", "noon")


def test_zero_predicted_enrolment_gives_zero_supplier_rows():
    data = minimal_profile()
    data["predicted"]["enrolled"] = {"smets1": 0, "smets2": 0}
    plan = compute_plan(profile_from(data))
    assert plan.smets1_fraction == 0
    for row in ("meter_reads", "bau", "alerts"):
        assert plan.a5.loc[row].sum() == 0
    assert plan.a6.loc["S1SP"].equals(plan.a6.loc["CP"])


def test_defaults_apply_where_absent():
    plan = compute_plan(profile_from(minimal_profile()))
    assert (plan.a7.values * [[s for s in SLOT_SECONDS.values()]] == pytest.approx(plan.a6.values))
    assert plan.a5.loc["s2_ic_credit", "night"] == 0 and plan.a5.loc["s2_ic_credit", "evening"] == 0
    assert_close(plan.a5.loc["s1_migration_credit", "day"] / plan.a5.loc["s1_migration_credit", "evening"], 12 / 5)


@_settings
@given(profiles())
def test_a6_dsp_is_the_sum_of_a5(data):
    plan = compute_plan(profile_from(data))
    for slot in SLOTS:
        assert_close(plan.a6.loc["DSP", slot], sum(plan.a5.loc[row, slot] for row in ROWS), rel=1e-12)
    assert plan.a6.loc["DCO"].equals(plan.a6.loc["S1SP"])


@_settings
@given(profiles())
def test_a7_is_linear_in_test_scale_and_peak_ratio(data):
    base = compute_plan(profile_from(data))
    scaled = dict(data, test_scale={sp: v * 3 for sp, v in data["test_scale"].items()})
    peaked = dict(data, peak_to_average={sp: {s: v * 0.5 for s, v in per.items()}
                                         for sp, per in data["peak_to_average"].items()})
    tripled, halved = compute_plan(profile_from(scaled)), compute_plan(profile_from(peaked))
    for sp in SPS:
        for slot in SLOTS:
            assert_close(tripled.a7.loc[sp, slot], 3 * base.a7.loc[sp, slot], rel=1e-12)
            assert_close(halved.a7.loc[sp, slot], 0.5 * base.a7.loc[sp, slot], rel=1e-12)
    assert tripled.a6.equals(base.a6) and halved.a5.equals(base.a5)


@_settings
@given(profiles())
def test_doubling_every_volume_doubles_every_table(data):
    base = compute_plan(profile_from(data))
    doubled = profile_from(data).model.model_dump()
    for section in ("current", "predicted"):
        for group in doubled[section].values():
            for key, value in group.items():
                group[key] = {s: v * 2 for s, v in value.items()} if isinstance(value, dict) else value * 2
    twice = compute_plan(profile_from(doubled))
    for name in ("a5", "a6", "a7"):
        ours, theirs = getattr(base, name), getattr(twice, name)
        for row in ours.index:
            for slot in SLOTS:
                assert_close(theirs.loc[row, slot], 2 * ours.loc[row, slot], rel=1e-12)


@_settings
@given(profiles())
def test_row_rates_sum_to_a7(data):
    plan = compute_plan(profile_from(data))
    for sp in SPS:
        for slot in SLOTS:
            rates = plan.row_rates(sp, slot)
            assert min(rates.values()) >= 0
            assert_close(sum(rates.values()), plan.a7.loc[sp, slot], rel=1e-12)


def test_the_contract_template_loads_and_gives_zero_installs():
    plan = load_plan(DATA / "contract-template.yaml")
    assert plan.profile.name == "FOC example"
    assert plan.a6.loc["CP"].sum() == 0 and plan.a5.loc["s2_ic_credit"].sum() == 0
    # Nothing enrolled on the measurement day: growth 0, so only zeros, and f1 taken as 0.
    assert plan.growth == 0 and plan.smets1_fraction == 0 and plan.a7.values.sum() == 0


def test_name_defaults_to_the_file_stem():
    data = minimal_profile()
    del data["name"]
    assert profile_from(data, name="volume_profiles/custom.yaml").name == "custom"
