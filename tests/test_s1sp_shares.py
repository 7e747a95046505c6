"""Three S1SPs (SCTAD 8.5): profile shares, one A6/A7 row per S1SP, and a run's rates for one of them."""

from __future__ import annotations

import json

import pytest

from _volume_helpers import DATA, SLOTS, SPS, minimal_profile, profile_from
from dcc_capacity.errors import InputError
from dcc_capacity.model.volume import compute_plan, load_plan
from dcc_capacity.spec.rates import class_rates
from dcc_capacity.spec.resolve import TestSpec as Spec
from dcc_capacity.spec.resolve import resolve

SHARES = {"CGI": {"fleet": 0.5, "migrations": 0.0}, "SEC": {"fleet": 0.3, "migrations": 0.8}, "THIRD": 0.2}


def _with_shares(shares=SHARES) -> dict:
    import yaml

    data = yaml.safe_load((DATA / "worked-example.yaml").read_text())
    data["s1sp_shares"] = shares
    return data


def test_a_profile_without_shares_gives_the_contract_tables_exactly():
    expected = json.loads((DATA / "worked-example.expected.json").read_text())
    got = load_plan(DATA / "worked-example.yaml").to_dict()
    assert set(got) == {"profile", "capability", "A5", "A6", "A7"}
    for table in ("A5", "A6", "A7"):
        assert list(got[table]) == list(expected[table])
        for row, cells in expected[table].items():
            assert got[table][row] == pytest.approx(cells, rel=1e-12)


def test_shares_add_one_row_per_s1sp_and_leave_the_rest_unchanged():
    base = load_plan(DATA / "worked-example.yaml")
    plan = compute_plan(profile_from(_with_shares()))
    assert list(plan.a6.index) == ["DSP", "S1SP", "S1SP/CGI", "S1SP/SEC", "S1SP/THIRD", "DCO", "CP"]
    assert plan.a5.equals(base.a5)
    assert plan.a6.loc[list(SPS)].equals(base.a6) and plan.a7.loc[list(SPS)].equals(base.a7)
    f1 = plan.smets1_fraction
    for slot in SLOTS:
        fleet = f1 * sum(float(plan.a5.loc[r, slot]) for r in ("meter_reads", "bau", "alerts"))
        mig = sum(float(plan.a5.loc[r, slot]) for r in ("s1_migration_credit", "s1_migration_prepay"))
        assert plan.a6.loc["S1SP/CGI", slot] == pytest.approx(0.5 * fleet)
        assert plan.a6.loc["S1SP/SEC", slot] == pytest.approx(0.3 * fleet + 0.8 * mig)
        assert plan.a6.loc["S1SP/THIRD", slot] == pytest.approx(0.2 * fleet + 0.2 * mig)  # a bare number: both
        for name in ("CGI", "SEC", "THIRD"):  # a named S1SP's per-row rates add up to its A7 cell
            assert sum(plan.row_rates("S1SP", slot, name).values()) == pytest.approx(plan.a7.loc[f"S1SP/{name}", slot])


def test_named_rows_add_up_to_the_s1sp_row():
    shares = {"A": {"fleet": 0.5, "migrations": 0.25}, "B": {"fleet": 0.3, "migrations": 0.25}, "C": 0.2,
              "D": {"fleet": 0.0, "migrations": 0.3}}
    plan = compute_plan(profile_from(_with_shares(shares)))
    for slot in SLOTS:
        assert plan.a6.loc[[f"S1SP/{n}" for n in shares], slot].sum() == pytest.approx(plan.a6.loc["S1SP", slot])
        assert plan.a7.loc[[f"S1SP/{n}" for n in shares], slot].sum() == pytest.approx(plan.a7.loc["S1SP", slot])


@pytest.mark.parametrize(("shares", "message"), [
    ({"A": 0.5, "B": 0.4}, "fleet shares must sum to 1"),
    ({"A": {"fleet": 0.5, "migrations": 0.5}, "B": {"fleet": 0.5, "migrations": 0.6}}, "migrations shares"),
    ({"A": 1.5}, "between 0 and 1"),
    ({"bad name": 1.0}, "s1sp_shares"),
    ({}, "at least one S1SP"),
])
def test_bad_shares_are_input_errors_naming_the_key(shares, message):
    with pytest.raises(InputError) as err:
        profile_from(_with_shares(shares))
    assert "s1sp_shares" in str(err.value) and message in str(err.value)


def test_a_run_against_one_s1sp_sends_its_share(tmp_path):
    import yaml

    path = tmp_path / "three.yaml"
    path.write_text(yaml.safe_dump(_with_shares()))
    plan = load_plan(path)
    whole = sum(class_rates(plan, "S1SP", "day").values())
    one = sum(class_rates(plan, "S1SP", "day", s1sp="SEC").values())
    alerts = plan.row_rates("S1SP", "day", "SEC")["alerts"]
    assert one == pytest.approx(plan.a7.loc["S1SP/SEC", "day"] - alerts) and 0 < one < whole
    spec = Spec(profile=str(path), sp="S1SP", s1sp="2", slot="day")  # a number names the 2nd S1SP
    r = resolve(spec)
    assert spec.s1sp == "SEC" and sum(r.rates.values()) == pytest.approx(one)
    assert r.alerts_per_s == pytest.approx(alerts)
    with pytest.raises(InputError, match="unknown S1SP 'NOPE'"):
        resolve(Spec(profile=str(path), sp="S1SP", s1sp="NOPE"))
    with pytest.raises(InputError, match="goes with --sp S1SP"):
        resolve(Spec(profile=str(path), sp="DSP", s1sp="SEC"))


def test_s1sp_without_shares_is_refused():
    plan = compute_plan(profile_from(minimal_profile()))
    with pytest.raises(InputError, match="no s1sp_shares"):
        plan.row_rates("S1SP", "day", "1")


def test_plan_shows_each_s1sp(run_cli):
    out = run_cli("plan", "volume_profiles/foc-secmp0192.yaml", "--format", "json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert [k for k in doc["A7"] if k.startswith("S1SP")] == ["S1SP", "S1SP/S1SP-A", "S1SP/S1SP-B", "S1SP/S1SP-C"]
    table = run_cli("plan", "foc-secmp0192", "--sp", "S1SP", "--s1sp", "3")
    assert table.returncode == 0, table.stderr
    assert "  S1SP/S1SP-C" in table.stdout and "Target rates per SRV type for S1SP/S1SP-C" in table.stdout
    bad = run_cli("plan", "foc", "--sp", "S1SP", "--s1sp", "1")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "s1sp_shares" in bad.stderr


def test_a_report_holds_an_s1sp_run_to_its_own_a7_row():
    from dcc_capacity.report.required import plan_sp, required_vs_tested

    run = {"sp": "S1SP", "spec": {"s1sp": "SEC"}}
    assert plan_sp(run) == "S1SP/SEC" and plan_sp({"sp": "S1SP", "spec": {"s1sp": None}}) == "S1SP"
    plan = {"A7": {"S1SP": {"day": 10.0}, "S1SP/SEC": {"day": 3.0}}}
    assert required_vs_tested(plan, plan_sp(run), "day", 3.0)["met"] is True


def test_secmp0192_executions_are_required_beside_table_a7():
    from dcc_capacity.model.provenance import plan_provenance
    from dcc_capacity.report.required import required_vs_tested

    plan = load_plan("volume_profiles/foc-secmp0192.yaml")
    doc = {**plan.to_dict(), **plan_provenance(plan, "volume_profiles/foc-secmp0192.yaml")}
    extra = doc["secmp0192_rates"]["S1SP/S1SP-B"]["evening"]
    assert extra == pytest.approx(1_350_000 / 18_000 * 0.35 * 1.5 * 0.25)  # slot's executions x fleet share
    assert extra == pytest.approx(class_rates(plan, "S1SP", "evening", s1sp="S1SP-B")["Secmp0192Schedules"])
    row = required_vs_tested(doc, "S1SP/S1SP-B", "evening", 10.0)
    a7, alerts = doc["A7"]["S1SP/S1SP-B"]["evening"], doc["A7_rows"]["S1SP/S1SP-B"]["evening"]["alerts"]
    assert row["suite_part"] == pytest.approx(a7 - alerts + extra) and row["met"] is False
    assert "SECMP0192 executions" in row["note"]
