"""DUIS user classes against the embedded emulator (a subprocess): journeys, the critical round trip, ack codes."""

from __future__ import annotations

import gevent
import pytest
from locust.env import Environment
from locust.event import Events

from _load_helpers import free_port
from dcc_capacity.emulator import start_emulator
from dcc_capacity.load.records import load_records
from dcc_capacity.load.runcontext import MeasureConfig, install
from dcc_capacity.load.users.base import classify_duis_ack
from dcc_capacity.load.users.classes import S2IcCredit, Secmp0192Schedules
from dcc_capacity.load.users.kit import POOL_CAP_FACTOR, fleet_pools, get_kit, write_device_registry
from dcc_capacity.model.volume import DEFAULT_JOURNEYS

pytestmark = pytest.mark.quiet  # its figures depend on the CPU it gets (tests/_lanes.py)


def test_ack_codes_are_classified_from_the_duis_response_code():
    ack = b"<sr:Response><sr:Header><sr:ResponseCode>%s</sr:ResponseCode></sr:Header></sr:Response>"
    assert classify_duis_ack(200, ack % b"I99") == ("ok", "")
    assert classify_duis_ack(200, ack % b"I0") == ("ok", "")
    assert classify_duis_ack(200, ack % b"E42") == ("error", "E42")
    assert classify_duis_ack(429, ack % b"E47")[0] == "throttled"
    assert classify_duis_ack(200, ack % b"E47")[0] == "throttled"
    assert classify_duis_ack(503, ack % b"E48") == ("error", "E48")
    assert classify_duis_ack(0, b"") == ("error", "HTTP 0")


class OneInstall(S2IcCredit):
    rate = 24.0  # 12 SRVs a journey: 2 journeys/s


class Schedules(Secmp0192Schedules):
    rate = 10.0


def _run(user_classes, tmp_path, seconds: float, wait: float, **emulator):  # noqa: ANN001, ANN003, ANN202
    kit = get_kit(None)
    registry = write_device_registry(kit.fleet, kit.pools, tmp_path / "devices.csv")
    port = free_port()
    cfg = {"port": 0, "callback_url": f"http://127.0.0.1:{port}/", "devices": {"registry": str(registry)},
           **emulator}
    with start_emulator(cfg, mode="subprocess") as emu:
        env = Environment(user_classes=user_classes, events=Events(), host=emu.url)
        runner = env.create_local_runner()
        ctx = install(env, MeasureConfig(run_dir=tmp_path / "records", callback_port=port, drain_s=wait))
        env.events.test_start.fire(environment=env)
        runner.start(len(user_classes), spawn_rate=100)
        gevent.sleep(seconds)
        for user in list(runner.user_greenlets):
            user.kill(block=False)  # stop scheduling; journeys already started run to the end (drain)
        env.events.test_stop.fire(environment=env)
        runner.quit()
        ctx.close()
    return env, load_records(tmp_path / "records")


@pytest.mark.slow
def test_install_journey_runs_in_order_with_the_critical_round_trip(tmp_path):
    env, df = _run([OneInstall], tmp_path, 0.8, 15.0)
    journey = DEFAULT_JOURNEYS["s2_ic_credit"]
    arrivals = df.groupby("arrival")
    assert 1 <= arrivals.ngroups <= 3
    for _arrival, steps in arrivals:
        steps = steps.sort_values("step")
        assert (steps["outcome"] == "ok").all(), steps[["label", "outcome", "error"]].to_string()
        variants = list(dict.fromkeys(steps["srv_variant"]))
        assert variants == list(journey)  # every SRV, in Table A2 order, for one installation
        # each step starts after the previous one is done (its async response where it waits for one)
        done = steps["callback_ts"].fillna(steps["ack_ts"]).to_numpy()
        assert (steps["intended_ts"].to_numpy()[1:] >= done[:-1] - 1e-3).all()
        for variant in ("6.4.1", "8.1.1", "6.15.1"):  # critical: CV 4 then CV 5 with the same RequestID
            pair = steps[steps["srv_variant"] == variant]
            assert list(pair["label"]) == [f"{variant} CV4", f"{variant} CV5"]
            assert pair["request_id"].nunique() == 1
            cv4, cv5 = pair.iloc[0], pair.iloc[1]
            assert cv4["ack_code"] == 200 and cv4["ack_ms"] > 0
            assert cv5["trt_ms"] > cv5["ack_ms"] > 0  # I99, then the I0 at the callback
        device = steps[steps["label"] == "8.11"].iloc[0]
        assert device["trt_ms"] > device["ack_ms"] > 0
        prenotify = steps[steps["label"] == "12.2"].iloc[0]  # non-device: answered synchronously, no TRT
        assert prenotify["ack_ms"] > 0 and prenotify["trt_ms"] != prenotify["trt_ms"]
    assert env.stats.get("6.15.1 CV5 TRT", "TRT").num_requests >= 1


@pytest.mark.slow
def test_secmp0192_schedules_go_to_smets1_devices_and_are_accepted(tmp_path):
    # The emulator executes them in a 22:00-22:10 window on a clock from 22:00 at 600x: the window is this
    # test's 1 s of sending, so a schedule made at 22:0x runs later in it, answered within seconds of its clock.
    execution = {"enabled": True, "window": ["22:00", "22:10"], "clock_start": "22:00", "time_scale": 600}
    latency = {"smets1": {"scheduled": {"p50_ms": 1000, "p99_ms": 3000}}}
    _env, df = _run([Schedules], tmp_path, 1.0, 3.0, secmp0192={"execution": execution},
                    capacity={"device_latency": latency})
    created = df[df["label"] == "5.1"]
    assert len(created) >= 8
    assert set(created["srv_variant"]) == {"5.1"}
    assert (df["outcome"] == "ok").all(), df[["outcome", "error"]].value_counts()  # E050110 if judged SMETS2
    # Each execution's response reached the creating user's listener, correlated to the 5.1 that made it.
    ran = df[df["label"].str.endswith(" scheduled")]
    assert len(ran) >= 1 and set(ran["user_class"]) == {"Schedules"} and set(ran["kind"]) == {"scheduled"}
    assert set(ran["request_id"]) <= set(created["request_id"])
    assert (ran["trt_ms"] > 0).all()  # from the due time the emulator stamped, on its clock


class RetryOnce(S2IcCredit):
    rate = 12.0  # one journey a second
    retries = 1


@pytest.mark.slow
def test_a_failed_step_is_retried_as_configured_then_ends_the_journey(tmp_path):
    burst = {"enabled": True, "every_s": 1000, "duration_s": 1000, "share": 1.0, "code": "E20"}
    _env, df = _run([RetryOnce], tmp_path, 0.5, 5.0, faults={"error_bursts": burst})
    assert df["arrival"].nunique() == 1
    steps = df.sort_values("step")
    assert list(steps["label"]) == ["12.2", "8.11", "8.11"]  # non-device ok; device SRV fails (E20), retried once
    assert list(steps["outcome"]) == ["ok", "error", "error"]
    assert list(steps["response_code"])[1:] == ["E20", "E20"] and steps["request_id"].nunique() == 3


def test_fleet_pools_match_the_registry_the_emulator_reads(tmp_path):
    kit = get_kit(None)
    pools = fleet_pools(kit.fleet, 16)
    path = write_device_registry(kit.fleet, pools, tmp_path / "d.csv")
    rows = dict(line.split(",") for line in path.read_text().splitlines()[1:])
    for (smets, _prepay), indices in pools.by_kind.items():
        assert 16 <= len(indices) <= 16 * POOL_CAP_FACTOR  # the rarest kind has 16, the others what the scan passed
        for i in indices:
            inst = kit.fleet[i]
            assert inst.smets == smets and rows[inst.esme.eui] == f"SMETS{smets}"
