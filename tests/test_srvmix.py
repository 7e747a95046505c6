"""The SRV mix follows the profile: fleet shares, top-ups (Table A5), journeys; runs send what the plan says."""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from pathlib import Path

import gevent
import pyarrow as pa
import pytest
from locust.env import Environment
from locust.event import Events

from _duis_helpers import without_template
from _load_helpers import free_port
from dcc_capacity.duis.mix import BauMix
from dcc_capacity.emulator import start_emulator
from dcc_capacity.errors import InputError
from dcc_capacity.load.records import load_records
from dcc_capacity.load.runcontext import MeasureConfig, install
from dcc_capacity.load.users.classes import S1MigrationCredit
from dcc_capacity.load.users.kit import fleet_pools, get_kit, reset_kit, write_device_registry
from dcc_capacity.model.srvmix import TOPUP_VARIANT
from dcc_capacity.model.volume import SLOT_HOURS, load_plan
from dcc_capacity.orchestrate.finish import compare_mix, mix_from_records
from dcc_capacity.spec.resolve import TestSpec as Spec
from dcc_capacity.spec.resolve import mix_for, resolve

ROOT = Path(__file__).resolve().parents[1]
IOC, FOC = str(ROOT / "volume_profiles" / "ioc.yaml"), str(ROOT / "volume_profiles" / "foc.yaml")


def _override(tmp_path: Path, journey: list[str], row: str = "s1_migration_credit") -> str:
    """The IOC profile with one journey replaced (a profile's ``journeys`` key)."""
    text = Path(IOC).read_text() + f"journeys:\n  {row}: [{', '.join(repr(v) for v in journey)}]\n"
    path = tmp_path / "ioc-override.yaml"
    path.write_text(text)
    return str(path)


# -- the derivation (fast) -----------------------------------------------------------------------

def test_the_fleet_takes_the_profiles_shares_with_their_sources():
    ioc, foc = mix_for(Spec(profile=IOC)), mix_for(Spec(profile=FOC))
    assert ioc.fleet.smets1.value == pytest.approx(74_000 / 12_074_000)  # f1 = E1p / (E1p + E2p), about 0.6 %
    assert foc.fleet.smets1.value == pytest.approx(13 / 30)  # about 43 %
    assert (ioc.fleet.prepay_smets1.value, ioc.fleet.prepay_smets2.value) == (0.0, 0.094)
    assert ioc.fleet.smets1.source.startswith("profile predicted.enrolled")
    assert ioc.fleet.prepay_smets2.source == "profile prepay_share.smets2"
    assert "project default" in ioc.fleet.dual_fuel.source
    fleet = foc.fleet.fleet(7, 20_000)
    insts = [fleet[i] for i in range(20_000)]
    s1 = [i for i in insts if i.smets == 1]
    assert abs(len(s1) / 20_000 - 13 / 30) < 0.01
    assert abs(sum(i.prepay for i in s1) / len(s1) - 0.094) < 0.01
    assert all(fleet.kind(i.index) == (i.smets, i.prepay) for i in insts[:3000])  # the cheap classifier agrees


def test_topups_follow_table_a5_for_each_sp_and_slot():
    plan = load_plan(FOC)
    p = plan.profile
    e1, e2 = p.predicted_enrolled["smets1"], p.predicted_enrolled["smets2"]
    p1, p2 = p.prepay_share["smets1"], p.prepay_share["smets2"]
    for slot in ("night", "day", "evening"):
        mix = mix_for(Spec(profile=FOC, slot=slot), plan)
        expected = (p1 * e1 + p2 * e2) * SLOT_HOURS[slot] / 24 / plan.a5.loc["bau", slot]
        assert mix.topup_share.value == pytest.approx(expected, rel=1e-12)
        assert mix.bau_topup_share() == pytest.approx(expected, rel=1e-12)  # Bau + SECMP0192 together
        assert 0.29 < expected < 0.31  # the "about 30 %" (bau_mix.csv alone: about 11 %)
        assert "Table A5 bau" in mix.topup_share.source
    s1sp = mix_for(Spec(profile=FOC, sp="S1SP", slot="night"), plan)
    assert s1sp.topup_share.value == pytest.approx(p1 * e1 * 7 / 24 / (plan.smets1_fraction * plan.a5.loc["bau",
                                                                                                          "night"]))
    assert s1sp.smets1_share() == pytest.approx(1.0) and s1sp.only_smets == 1
    assert mix_for(Spec(profile=IOC, sp="S1SP")).topup_share.value == 0.0  # IOC's SMETS1 are all credit
    csv_share = BauMix.load().shares()[TOPUP_VARIANT]
    assert 0.10 < csv_share < 0.13


def test_class_shares_are_the_plans_row_shares_and_smets1_adds_up():
    plan = load_plan(FOC)
    mix = mix_for(Spec(profile=FOC, slot="day"), plan)
    rates = plan.row_rates("DSP", "day")
    total = sum(v for k, v in rates.items() if k != "alerts")
    for row, share in mix.row_shares().items():
        assert share == pytest.approx(rates[row] / total, rel=1e-9)
    assert sum(mix.srv_shares().values()) == pytest.approx(1.0)
    for c in mix.classes.values():
        assert sum(c.variants.values()) == pytest.approx(1.0)
    shares = mix.class_shares()
    f1 = plan.smets1_fraction
    expected = (shares["S1MigrationCredit"] + shares["S1MigrationPrepay"] + shares["Secmp0192Schedules"]
                + shares["Bau"] * mix.classes["Bau"].smets1)
    assert mix.smets1_share() == pytest.approx(expected)
    assert mix.classes["Bau"].smets1 == pytest.approx(f1)  # FOC: p1 = p2, so top-ups are SMETS1 at f1 too
    doc = json.loads(json.dumps(mix.to_dict()))
    assert doc["smets1_share"] == pytest.approx(mix.smets1_share())
    assert all(v["source"] for v in doc["srvs"].values()) and all(f["source"] for f in doc["fleet"].values())


def test_a_journey_override_changes_the_mix_and_the_kit(tmp_path):
    path = _override(tmp_path, ["12.2", "4.6.1", "4.8.1"])
    mix = mix_for(Spec(profile=path, slot="day"))
    assert mix.journeys["s1_migration_credit"] == ("12.2", "4.6.1", "4.8.1")
    assert mix.journey_sources["s1_migration_credit"] == "profile journeys.s1_migration_credit"
    assert set(mix.classes["S1MigrationCredit"].variants) == {"12.2", "4.6.1", "4.8.1"}
    reset_kit()
    try:
        kit = get_kit(argparse.Namespace(dcc_test="load", dcc_profile=path, dcc_sp="DSP", dcc_slot="day",
                                         dcc_fleet_size=50_000, dcc_pool_size=64))
        assert kit.journeys["s1_migration_credit"] == ("12.2", "4.6.1", "4.8.1")
        assert kit.fleet.smets1_share == pytest.approx(74_000 / 12_074_000)
    finally:
        reset_kit()


def test_a_journey_srv_without_a_template_is_refused_before_the_run(monkeypatch, tmp_path):
    without_template(monkeypatch, tmp_path, "7.16")  # a user deleted its template from srv_templates/
    path = _override(tmp_path, ["12.2", "7.16"])  # 7.16 is in the catalogue (the profile takes it), untemplated
    assert mix_for(Spec(profile=path)).journeys["s1_migration_credit"] == ("12.2", "7.16")  # plan shows it
    with pytest.raises(InputError, match=r"journeys.s1_migration_credit\[1\].*'7.16' has no DUIS template"):
        resolve(Spec(profile=path))


def test_picks_keep_the_fleets_shares_in_any_stretch():
    fleet = mix_for(Spec(profile=FOC)).fleet.fleet(3, 200_000)
    pools = fleet_pools(fleet, 256)
    rng = random.Random(5)
    for n in (300, 3000):
        picks = [fleet[pools.pick(rng)] for _ in range(n)]
        assert abs(sum(i.smets == 1 for i in picks) / n - 13 / 30) < 0.01
    s1 = [fleet[pools.pick(rng, smets=1)] for _ in range(2000)]  # the S1SP's picks: prepay at p1, not half
    assert all(i.smets == 1 for i in s1) and abs(sum(i.prepay for i in s1) / 2000 - 0.094) < 0.005
    ioc = fleet_pools(mix_for(Spec(profile=IOC)).fleet.fleet(3, 1_000_000), 64)
    assert (1, True) not in ioc.by_kind and ioc.scanned < 100_000  # an impossible kind is not waited for
    pick = BauMix(("a", "b", "c"), (0.7, 0.2, 0.1), ("", "", "")).picker(random.Random(1), spread=True)
    drawn = [pick() for _ in range(500)]
    assert abs(drawn.count("a") - 350) <= 2 and abs(drawn.count("c") - 50) <= 2


def test_records_without_the_new_columns_still_load(tmp_path):
    from dcc_capacity.load.records import SCHEMA

    old = pa.schema([f for f in SCHEMA if f.name not in ("smets", "prepay")])
    (tmp_path / "records").mkdir()
    row = {f.name: [None] for f in old} | {"process": ["p"], "kind": ["request"], "request_id": ["r"],
                                          "srv_variant": ["4.6.1"], "label": ["4.6.1"], "outcome": ["ok"]}
    with pa.ipc.new_stream(str(tmp_path / "records" / "records-old-1.arrows"), old) as w:
        w.write_batch(pa.RecordBatch.from_pydict(row, schema=old))
    df = load_records(tmp_path)
    assert list(df["smets"]) == [0] and list(df["prepay"]) == [False]


def _plan(capsys, *args: str) -> str:
    """``dcc-capacity plan ARGS`` in this process (the CLI's subprocess tests are in test_cli_plan.py)."""
    from dcc_capacity.cli import main

    assert main(["plan", *args]) == 0
    return capsys.readouterr().out


def test_plan_shows_the_mix_and_keeps_the_contract(capsys):
    doc = json.loads(_plan(capsys, FOC, "--mix", "--format", "json", "--slot", "day"))
    assert doc["sp"] == "DSP" and doc["slot"] == "day" and 0.29 < doc["topup_share"]["value"] < 0.31
    assert doc["srvs"][TOPUP_VARIANT]["share"] > 0.2
    csv = _plan(capsys, IOC, "--mix", "--format", "csv")
    assert csv.startswith("sp,slot,section,key,share,srv_per_s,smets1_share,source")
    assert "DSP,night,fleet,smets1_share,0.0061" in csv
    assert list(json.loads(_plan(capsys, IOC, "--format", "json"))) == ["profile", "capability", "A5", "A6", "A7"]
    table = _plan(capsys, IOC)
    assert "Table A7" in table and "SRV mix a run sends for DSP" in table and "top-ups (2.2) in BAU" in table


# -- runs (slow): what the records say against the plan -------------------------------------------

RUNS = {"ioc": (IOC, "night"), "foc": (FOC, "evening")}
"""IOC at its busiest slot (meter reads and BAU); FOC in the evening (BAU with migration journeys)."""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Both runs at once (they share the 2 cores for 8 s; most of a run's wall time is start-up and report)."""
    base = tmp_path_factory.mktemp("mixruns")
    procs = {}
    for name, (profile, slot) in RUNS.items():
        procs[name] = subprocess.Popen(
            [sys.executable, "-m", "dcc_capacity", "run", "--test", "load", "--profile", profile, "--slot", slot,
             "--rate", "200", "--duration", "8s", "--out", str(base / name)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for proc in procs.values():
        out, _ = proc.communicate(timeout=240)
        assert proc.returncode in (0, 1), out[-3000:]
    return base


@pytest.mark.slow
@pytest.mark.parametrize("name", list(RUNS))
def test_a_run_sends_the_plans_mix(runs, name):
    run = runs / name
    plan = json.loads((run / "plan.json").read_text())["mix"]
    measured = mix_from_records(run)
    got = compare_mix(plan, measured)
    assert got["srvs"] >= 1000
    assert measured["smets_recorded"] == 1.0  # every SRV record says which installation kind it went to
    assert got["max_row_pp"] < 2.0, got["rows_pp"]
    assert abs(got["smets1_pp"]) < 2.0, got
    assert abs(got["topup_pp"]) < 2.0, got
    assert abs(got["prepay_pp"]) < 2.0, got
    bau = load_records(run)
    topups = bau[(bau["user_class"] == "Bau") & (bau["srv_variant"] == TOPUP_VARIANT)]
    assert len(topups) and topups["prepay"].all()  # a top-up goes to a prepayment meter


@pytest.mark.slow
def test_a_journey_override_changes_what_is_sent(tmp_path):
    """The profile's journey, not Table A2's, goes out (in-process Locust against the embedded emulator)."""
    journey = ["12.2", "4.6.1", "4.8.1"]
    path = _override(tmp_path, journey)

    class Override(S1MigrationCredit):
        rate = 9.0  # 3 SRVs a journey: 3 journeys/s

    reset_kit()
    try:
        opts = argparse.Namespace(dcc_test="load", dcc_profile=path, dcc_sp="DSP", dcc_slot="day",
                                  dcc_fleet_size=50_000, dcc_pool_size=32)
        kit = get_kit(opts)
        registry = write_device_registry(kit.fleet, kit.pools, tmp_path / "devices.csv")
        port = free_port()
        cfg = {"port": 0, "callback_url": f"http://127.0.0.1:{port}/", "devices": {"registry": str(registry)}}
        with start_emulator(cfg, mode="subprocess") as emu:
            env = Environment(user_classes=[Override], events=Events(), host=emu.url, parsed_options=opts)
            runner = env.create_local_runner()
            ctx = install(env, MeasureConfig(run_dir=tmp_path / "records", callback_port=port, drain_s=3.0))
            env.events.test_start.fire(environment=env)
            runner.start(1, spawn_rate=100)
            gevent.sleep(1.0)
            for user in list(runner.user_greenlets):
                user.kill(block=False)
            env.events.test_stop.fire(environment=env)
            runner.quit()
            ctx.close()
    finally:
        reset_kit()
    df = load_records(tmp_path / "records")
    assert df["arrival"].nunique() >= 2
    for _arrival, steps in df.groupby("arrival"):
        assert list(steps.sort_values("step")["srv_variant"]) == journey, steps[["label", "outcome", "error"]]
    assert set(df["smets"]) == {1} and not df["prepay"].any()  # a credit SMETS1 migration
