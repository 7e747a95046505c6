"""Load shapes as pure functions of elapsed time: tick() and rate_for() with the run time faked."""

from __future__ import annotations

import argparse
import json
import math

import pytest
from locust import User, constant, task
from locust.env import Environment

from dcc_capacity.load.shapes import CatchupShape, LoadShape, SoakShape, SpikeShape, StressShape


class Reads(User):
    wait_time = constant(1)

    @task
    def t(self) -> None:
        pass


class Bau(Reads):
    pass


class Alerts(Reads):
    pass


def at(shape, t: float):
    """Bind the shape to a real local runner and pretend ``t`` s have passed."""
    if shape.runner is None:
        Environment(user_classes=[Reads, Bau, Alerts], shape_class=shape).create_local_runner()
    shape.get_run_time = lambda: t
    return shape.tick()


def integral(shape, name: str, end: float, dt: float = 0.01) -> float:
    return sum(shape.rate_for(name, i * dt) * dt for i in range(int(end / dt)))


def test_load_shape_is_steady_then_stops():
    shape = LoadShape(rates={"Reads": 120.0, "Bau": 30.0, "Alerts": 0.0}, duration_s=60)
    users, spawn_rate, classes = at(shape, 0.0)
    assert users == 2 and {c.__name__ for c in classes} == {"Reads", "Bau"}  # no scheduler for a 0 rate
    assert spawn_rate >= 10
    assert shape.rate_for("Reads", 59.9) == 120.0
    assert shape.total_rate(30) == 150.0
    assert at(shape, 60.0) is None
    assert shape.rate_for("Reads", 60.0) == 0.0


def test_normal_load_is_peak_divided_by_peak_to_average():
    shape = LoadShape(rates={"Reads": 120.0}, duration_s=10, scale=1 / 1.5)
    assert shape.rate_for("Reads", 1) == pytest.approx(80.0)


def test_unknown_setting_is_rejected():
    with pytest.raises(TypeError, match="no setting 'rate'"):
        LoadShape(rate={"Reads": 1.0})


def test_soak_slots_follow_table_a1_proportions_and_change_the_mix():
    rates = {"night": {"Reads": 10.0, "Alerts": 1.0}, "day": {"Reads": 5.0, "Bau": 8.0}, "evening": {"Bau": 2.0}}
    shape = SoakShape(slot_rates=rates, duration_s=240)
    bounds = shape.slot_bounds()
    assert bounds["night"] == pytest.approx((0, 70))  # 7 h of 24 -> 70 s of 240
    assert bounds["day"] == pytest.approx((70, 190))  # 12 h -> 120 s
    assert bounds["evening"] == pytest.approx((190, 240))  # 5 h -> 50 s
    assert {c.__name__ for c in at(shape, 10)[2]} == {"Reads", "Alerts"}
    assert {c.__name__ for c in at(shape, 100)[2]} == {"Reads", "Bau"}
    assert {c.__name__ for c in at(shape, 200)[2]} == {"Bau"}
    assert shape.rate_for("Reads", 69.9) == 10.0 and shape.rate_for("Reads", 70.1) == 5.0
    assert at(shape, 240) is None


def test_spike_multiplies_inside_its_window_only():
    shape = SpikeShape(rates={"Reads": 10.0}, duration_s=60, spike_at_s=20, spike_s=10, spike_factor=4)
    assert [shape.rate_for("Reads", t) for t in (19.9, 20, 29.9, 30)] == [10, 40, 40, 10]


def test_catchup_holds_traffic_then_sends_exactly_the_backlog():
    shape = CatchupShape(rates={"Reads": 10.0}, duration_s=60, outage_at_s=10, outage_s=10, catchup_factor=3)
    assert shape.rate_for("Reads", 15) == 0.0  # Service Users hold traffic in the outage
    assert shape.catchup_s == pytest.approx(5.0)  # 100 held SRVs at +20/s
    assert shape.rate_for("Reads", 22) == 30.0 and shape.rate_for("Reads", 25.5) == 10.0
    # Nothing is lost or invented: the day's total equals the steady total.
    assert integral(shape, "Reads", 60) == pytest.approx(600, rel=0.01)
    assert at(shape, 15) == (0, shape.spawn_rate, [])


def test_stress_steps_until_the_criterion_fails_and_reports_the_knee():
    # Fake stats: every step sends 1000 requests; the error rate climbs with the factor.
    cumulative = {"req": 0, "fail": 0}
    error_rate_at = {1.0: 0.0, 1.25: 0.001, 1.5: 0.005, 1.75: 0.05, 2.0: 0.5}

    def health():
        return cumulative["req"], cumulative["fail"], {10: cumulative["req"]}

    shape = StressShape(rates={"Reads": 100.0}, step_s=10, step_fraction=0.25, max_factor=2.0,
                        max_error_rate=0.01, health_source=health)
    assert shape.n_steps == 5
    for t in range(0, 60):
        f = shape.factor_for_step(t // 10) if t // 10 < 5 else None
        result = at(shape, t)
        if result is None:
            break
        assert shape.rate_for("Reads", t) == pytest.approx(100 * f)
        cumulative["req"] += 100
        cumulative["fail"] += round(100 * error_rate_at[f])
    assert t == 40  # judged at the start of step 4: step 3 (1.75x) failed, the test stops
    assert [s.passed for s in shape.steps] == [True, True, True, False]
    assert shape.knee is not None and shape.knee.factor == 1.5 and shape.knee.total_rate == pytest.approx(150)
    res = shape.result()
    assert res["knee"]["factor"] == 1.5 and not res["ceiling_reached"] and res["knee_rate"] == pytest.approx(150)
    assert res["shape"] == "StressShape" and len(res["steps"]) == 4


def test_shape_writes_its_result_to_the_run_dir_when_it_ends(tmp_path):
    shape = LoadShape(rates={"Reads": 1.0}, duration_s=5)
    at(shape, 1)
    shape.runner.environment.parsed_options = argparse.Namespace(run_dir=str(tmp_path))
    assert at(shape, 5) is None
    assert json.loads((tmp_path / "shape.json").read_text()) == {"shape": "LoadShape", "duration_s": 5}


def test_stress_latency_criterion_and_ceiling():
    state = {"req": 0, "hist": {}}

    def health():
        return state["req"], 0, dict(state["hist"])

    shape = StressShape(rates={"Reads": 10.0}, step_s=5, step_fraction=0.5, max_factor=2.0, max_p95_ms=500,
                        health_source=health)
    for t in range(0, 30):
        if at(shape, t) is None:
            break
        state["req"] += 10
        state["hist"][100] = state["hist"].get(100, 0) + 10  # always fast
    assert t == 15 and shape.stopped  # 3 steps (1, 1.5, 2), all healthy: stops at the ceiling
    assert shape.knee.factor == 2.0 and shape.result()["ceiling_reached"]
    assert all(s.p95_ms == 100 for s in shape.steps)
    assert not math.isinf(shape.steps[0].total_rate)
