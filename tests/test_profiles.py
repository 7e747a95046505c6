"""Profile validation: every broken input is one line naming file, key and line; exit 2; no traceback."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from _volume_helpers import DATA, minimal_profile, profile_from
from dcc_capacity.config.yamlsource import load_yaml
from dcc_capacity.errors import InputError
from dcc_capacity.model.profiles import load_profile

GOOD = (DATA / "worked-example.yaml").read_text()

# (id, text replaced in the worked example, replacement, key named, line, words the message must contain)
BROKEN = [
    ("typo", "alerts_per_device_per_day: 1", "alert_per_device_per_day: 1", "alert_per_device_per_day", 15,
     "did you mean 'alerts_per_device_per_day'"),
    ("negative", "s2_installs: 30000", "s2_installs: -5", "predicted.per_day.s2_installs", 13, ">= 0"),
    ("share_above_1", "smets1: 0.25", "smets1: 1.25", "prepay_share.smets1", 14, "between 0 and 1"),
    ("split_sum", "evening: 0.1}", "evening: 0.2}", "slot_split.s2_ic", 23, "sum to 1"),
    ("unknown_variant", '"4.6.1"]', '"4.66.1"]', "journeys.s2_ic_credit[12]", 21, "unknown SRV variant '4.66.1'"),
    ("unknown_journey_row", "  s2_ic_credit: [", "  meter_reads: [", "journeys.meter_reads", 21, "unknown key"),
    ("missing_top", "prepay_share: {smets1: 0.25, smets2: 0.12}\n", "", "prepay_share", None, "missing required"),
    ("missing_nested", "enrolled: {smets1: 10000000, smets2", "enrolled: {smets2", "predicted.enrolled.smets1", 12,
     "missing required"),
    ("wrong_type", "s1_migrations: 40000", "s1_migrations: lots", "predicted.per_day.s1_migrations", 13,
     "expected a number, got 'lots'"),
    ("quoted_number", "s1_migrations: 40000", 's1_migrations: "40000"', "predicted.per_day.s1_migrations", 13,
     "expected a number"),
    ("unknown_sp", "  CP: {day: 1.4}", "  XP: {day: 1.4}", "peak_to_average.XP", 18, "DSP, S1SP, DCO, CP"),
    ("unknown_slot", "  CP: {day: 1.4}", "  CP: {noon: 1.4}", "peak_to_average.CP.noon", 18,
     "night, day, evening"),
    ("unknown_sp_scale", "S1SP: 0.5", "S2SP: 0.5", "test_scale.S2SP", 19, "unknown key"),
    ("bad_capability", "capability: FOC", "capability: XOC", "capability", 3, "'IOC', 'MOC' or 'FOC'"),
    ("zero_enrolment", "enrolled: {smets1: 500000, smets2: 12000000}", "enrolled: {smets1: 0, smets2: 0}",
     "current.enrolled", 7, "must be > 0"),
    ("schema_version", "schema_version: 1", "schema_version: 2", "schema_version", 1, "unsupported schema version 2"),
    ("duplicate_key", "alerts_per_device_per_day: 1", "alerts_per_device_per_day: 1\nalerts_per_device_per_day: 2",
     "alerts_per_device_per_day", 16, "duplicate key"),
    ("bad_date", "2021-06-29", "2021-13-29", "measurement_day", 4, "invalid date"),
    ("not_finite", "alerts_per_device_per_day: 1", "alerts_per_device_per_day: .inf", "alerts_per_device_per_day",
     15, "finite"),
    ("empty_journey", '  s2_ic_credit: ["12.2"', '  s2_ic_credit: []\n  x: ["12.2"', "journeys.s2_ic_credit", 21,
     "at least one"),
    ("negative_peak", "night: 3.0", "night: -3.0", "peak_to_average.DSP.night", 17, ">= 0"),
    ("yaml_syntax", "current:\n", "current: [\n", None, 8, "YAML syntax error"),
]


def _broken(tmp_path: Path, case: str, old: str, new: str) -> Path:
    assert old in GOOD, f"{case}: the test edit no longer applies"
    path = tmp_path / f"{case}.yaml"
    path.write_text(GOOD.replace(old, new, 1))
    return path


@pytest.mark.parametrize(("case", "old", "new", "key", "line", "words"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_profile_through_the_cli(run_cli, tmp_path, case, old, new, key, line, words):
    path = _broken(tmp_path, case, old, new)
    result = run_cli("plan", str(path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    where = f"{path}:{line}: " if line else f"{path}: "
    assert where in message, message
    if key:
        assert f": {key}: " in message, message
    assert words in message, message
    assert result.stdout == ""


@pytest.mark.parametrize(("content", "words"), [
    (None, "no such file"),
    ("", "empty profile"),
    ("- 1\n- 2\n", "a profile is a YAML mapping"),
    (b"\xff\xfe\x00", "not UTF-8"),
])
def test_unreadable_files(run_cli, tmp_path, content, words):
    path = tmp_path / "profile.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    result = run_cli("plan", str(path))
    assert result.returncode == 2
    assert f"{path}: " in result.stderr and words in result.stderr
    assert "Traceback" not in result.stderr


def test_directory_is_not_a_profile(tmp_path):
    with pytest.raises(InputError, match="is a directory"):
        load_profile(tmp_path)


def test_more_problems_are_counted(tmp_path):
    path = _broken(tmp_path, "two", "s2_installs: 30000, s1_migrations: 40000", "s2_installs: -1, s1_migrations: x")
    with pytest.raises(InputError) as info:
        load_profile(path)
    assert info.value.key == "predicted.per_day.s2_installs" and info.value.line == 13
    assert str(info.value).endswith("(and 1 more problem)")


def test_version_is_checked_before_the_rest():
    data = minimal_profile() | {"schema_version": 2, "new_section": {}}
    with pytest.raises(InputError, match="unsupported schema version 2"):
        profile_from(data)
    with pytest.raises(InputError, match="unsupported schema version True"):
        profile_from(minimal_profile() | {"schema_version": True})


def test_sources_mapping_must_name_real_keys():
    data = minimal_profile() | {"sources": {"predicted.per_day.s1_migrations": "seed X", "current.enroled": "typo"}}
    with pytest.raises(InputError) as info:
        profile_from(data)
    assert info.value.key == "sources.current.enroled"


def test_split_tolerance_is_1e_9():
    ok = minimal_profile() | {"slot_split": {"s2_ic": {"night": 0.5, "day": 0.5 + 5e-10}}}
    assert profile_from(ok).slot_split("s2_ic")["evening"] == 0.0
    bad = minimal_profile() | {"slot_split": {"s2_ic": {"night": 0.5, "day": 0.5 + 5e-9}}}
    with pytest.raises(InputError, match="sum to 1"):
        profile_from(bad)


def test_accessors_and_defaults():
    profile = load_profile(DATA / "worked-example.yaml")
    assert profile.path == DATA / "worked-example.yaml"
    assert profile.name.startswith("worked example") and profile.capability == "FOC"
    assert profile.measurement_day == dt.date(2021, 6, 29)
    assert profile.sources == ("illustrative numbers chosen to exercise every formula; not a forecast",)
    assert profile.test_scale("DSP") == 0.2 and profile.test_scale("DCO") == 1.0
    assert profile.peak_to_average("CP", "day") == 1.4 and profile.peak_to_average("CP", "night") == 1.0
    assert profile.peak_to_average("S1SP", "evening") == 1.0
    assert profile.prepay_share == {"smets1": 0.25, "smets2": 0.12}
    assert profile.alerts_per_device_per_day == 1
    assert profile.slot_split("s1_migration") == {"night": 0.0, "day": 12 / 17, "evening": 5 / 17}
    assert profile.journey_override("s2_ic_prepay") is None
    assert len(profile.journey_override("s2_ic_credit")) == 13
    with pytest.raises(InputError, match="unknown Service Provider 'XSP'"):
        profile.test_scale("XSP")


def test_inputs_carry_sources_and_lines():
    profile = load_profile(DATA / "hand-example.yaml")
    inputs = {i.key: i for i in profile.inputs()}
    migrations = inputs["predicted.per_day.s1_migrations"]
    assert migrations.value == 3400 and migrations.line == 18 and "assumption" in migrations.source
    assert inputs["current.enrolled.smets1"].source == "illustrative round numbers; assumption"  # from its ancestor
    assert inputs["alerts_per_device_per_day"].source is None
    assert "name" not in inputs and not any(k.startswith("sources") for k in inputs)


def test_yaml_reads_exponents_and_underscores(tmp_path):
    path = tmp_path / "n.yaml"
    path.write_text("a: 1e6\nb: 1_000\nc: 2.5e-3\nd: [x, 12]\n")
    src = load_yaml(path)
    assert src.data == {"a": 1e6, "b": 1000, "c": 0.0025, "d": ["x", 12]}
    assert isinstance(src.data["b"], int)
    assert src.lines["d[1]"] == 4 and src.line_of("d[1].deeper") == 4


@pytest.mark.parametrize("capability", ["IOC", "MOC", "FOC"])
def test_shipped_profiles_load_cite_sources_and_suit_a_demo(capability):
    from dcc_capacity.model.volume import compute_plan
    from dcc_capacity.paths import data_dir

    path = data_dir("volume_profiles") / f"{capability.lower()}.yaml"
    profile = load_profile(path)
    assert profile.capability == capability
    assert "Capability Transaction Forecasts" in path.read_text()  # says it is an example to replace
    unsourced = [i.key for i in profile.inputs() if profile.source_of(i.key) is None and i.key != "capability"]
    assert unsourced == []
    plan = compute_plan(profile)
    assert 20 < plan.a7.loc["DSP"].max() < 300  # a 2-core box can drive it in a demo
    assert plan.busiest_slot("DSP") == "night"  # most traffic is carried between midnight and 6am
    assert profile.s1_migrations_per_day == {"IOC": 2_000, "MOC": 20_000, "FOC": 50_000}[capability]


def test_the_minimal_profile_in_the_docs_is_valid(tmp_path):
    text = (Path(__file__).resolve().parents[1] / "docs" / "volume-model.md").read_text()
    block = text.split("A minimal profile:\n\n```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "minimal.yaml"
    path.write_text(block)
    profile = load_profile(path)
    assert profile.capability == "IOC" and profile.test_scale("DSP") == 1.0
