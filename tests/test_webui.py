"""Capacity tab without a browser: the steerable shape, NFR/plan views, live counters, and a distributed run.

The shape is exercised against a fake runner whose Locust-like stats the test
writes (the knee must come from the step's own requests, not the totals); the
distributed test runs a real master + 2 workers and steers them over HTTP.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from _load_helpers import PY, ROOT, free_port, stall_server
from dcc_capacity.load.controlled_shape import ACTIONS_FILE, ControlledShape, load_operator_actions
from dcc_capacity.model.nfr import load_nfrs
from dcc_capacity.testtypes.stress import stress_section
from dcc_capacity.webui.live import error_code
from dcc_capacity.webui.views import judge_nfrs, normalise_nfrs, plan_view

pytestmark = pytest.mark.quiet  # its figures depend on the CPU it gets (tests/_lanes.py)


class Shape(ControlledShape):
    rates = {"A": 60.0, "B": 40.0}
    start_factor = 0.5
    step_fraction = 0.25
    hold_s = 10.0
    max_factor = 1.5


class FakeStats:
    """Locust-like stats: ACK entries with counts and a {ms: count} histogram."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str, str], SimpleNamespace] = {}

    def add(self, n: int, failures: int, ms: int) -> None:
        e = self.entries.setdefault(("x ack", "ACK"), SimpleNamespace(num_requests=0, num_failures=0,
                                                                       response_times={}))
        e.num_requests += n
        e.num_failures += failures
        e.response_times[ms] = e.response_times.get(ms, 0) + n


def make_shape(tmp_path: Path | None = None, **config) -> tuple[Shape, FakeStats, list[float]]:
    stats = FakeStats()
    clock = [0.0]
    shape = Shape(**config)
    shape.runner = SimpleNamespace(stats=stats, user_classes=[],
                                   environment=SimpleNamespace(parsed_options=SimpleNamespace(
                                       run_dir=str(tmp_path) if tmp_path else "")))
    shape.get_run_time = lambda: clock[0]
    return shape, stats, clock


def test_steps_change_the_rates_and_are_recorded(tmp_path):
    shape, _, clock = make_shape(tmp_path)
    shape.tick()
    assert shape.rate_for("A", 0) == 30.0 and shape.total() == 50.0
    clock[0] = 3.0
    shape.step_up("alice")
    clock[0] = 5.0
    shape.step_up("alice")
    assert shape.rates_at(99) == {"A": 60.0, "B": 40.0}
    shape.step_down("bob")
    assert shape.rate_for("B", 0) == 30.0
    shape.set_factor(9.0, "carol")  # clamped to the ceiling
    assert shape.factor == 1.5 and shape.total() == 150.0
    shape.stop("carol")
    assert shape.rates_at(6.0) is None and shape.rate_for("A", 6.0) == 0.0
    with pytest.raises(ValueError, match="stopped"):
        shape.step_up("late")
    rows = [json.loads(line) for line in (tmp_path / ACTIONS_FILE).read_text().splitlines()]
    assert [(r["action"], r["who"], r["from_rate"], r["to_rate"]) for r in rows] == [
        ("start", "shape", 0.0, 50.0), ("step_up", "alice", 50.0, 75.0), ("step_up", "alice", 75.0, 100.0),
        ("step_down", "bob", 100.0, 75.0), ("set", "carol", 75.0, 150.0), ("stop", "carol", 150.0, 0.0)]
    assert [r["t"] for r in rows[:3]] == [0.0, 3.0, 5.0]
    assert shape.result()["operator_actions"] == rows
    with (tmp_path / ACTIONS_FILE).open("a") as f:
        f.write('{"time": 1, "who": "x", "act')  # a killed process's last, partial line
    assert load_operator_actions(tmp_path) == rows
    stress = stress_section(shape.result())
    assert [(s["target_rate"], s["start_s"], s["end_s"]) for s in stress["steps"]] == [
        (50.0, 0.0, 3.0), (75.0, 3.0, 5.0)]  # the levels left at once (same clock) measured nothing: not steps


def test_auto_ramp_stops_at_the_error_criterion_and_holds_at_the_knee():
    shape, stats, clock = make_shape(max_error_rate=0.01)
    shape.tick()
    shape.start_auto("op")
    for t, failures in ((10, 0), (20, 0), (30, 20)):  # steps at 0.5, 0.75, 1.0 x peak; the third fails
        stats.add(n=500, failures=failures, ms=40)
        clock[0] = float(t)
        shape.tick()
    assert shape.mode == "manual"
    assert shape.knee is not None and shape.knee.factor == 0.75 and shape.knee.total_rate == 75.0
    assert shape.factor == 0.75, "back to the knee after the failed step"
    last = shape.actions[-1]
    assert last["action"] == "auto_stop" and last["detail"] == {"reason": "error_rate", "knee_rate": 75.0}
    assert [s.passed for s in shape.steps] == [True, True, False]
    assert shape.steps[2].failures == 20 and shape.steps[2].requests == 500  # the step's own, not cumulative


def test_auto_ramp_p95_criterion_and_ceiling():
    shape, stats, clock = make_shape(max_p95_ms=100.0)
    shape.tick()
    shape.start_auto("op", "p95")
    stats.add(n=100, failures=0, ms=50)
    clock[0] = 10.0
    shape.tick()
    stats.add(n=100, failures=0, ms=300)  # slow step: p95 300 ms > 100 ms
    clock[0] = 20.0
    shape.tick()
    assert shape.knee.factor == 0.5 and shape.actions[-1]["detail"]["reason"] == "p95"

    shape, stats, clock = make_shape()
    shape.tick()
    shape.set_factor(1.25)
    shape.start_auto("op", "ceiling")
    for t in (10, 20):
        stats.add(n=100, failures=0, ms=5)
        clock[0] = float(t)
        shape.tick()
    assert shape.factor == 1.5 and shape.mode == "manual"
    assert shape.actions[-1]["detail"] == {"reason": "ceiling", "knee_rate": 150.0}


def test_bad_controls_are_refused():
    shape, _, _ = make_shape()
    with pytest.raises(ValueError, match="stop criterion"):
        shape.start_auto("op", "vibes")
    with pytest.raises(ValueError, match="max_p95_ms"):
        shape.start_auto("op", "p95")
    with pytest.raises(ValueError, match="unknown setting"):
        shape.configure("op", colour="red")
    with pytest.raises(ValueError, match=">= 0"):
        shape.configure("op", hold_s=-1)
    assert shape.configure("op", hold_s="5", stop_criterion="ceiling") == {"hold_s": 5.0, "stop_criterion": "ceiling"}


def test_worker_copy_answers_from_the_masters_message():
    from locust.runners import WorkerRunner

    class Worker(WorkerRunner):  # only the type matters: the shape asks "am I on a worker?"
        greenlet = None

        def __init__(self) -> None:
            pass

    shape = Shape()
    shape.runner = Worker()
    assert shape.rate_for("A", 1.0) == 0.0, "no rate before the master has spoken"
    shape.on_rates_message(SimpleNamespace(data={"A": 12.5}))
    assert shape.rate_for("A", 1.0) == 12.5 and shape.rate_for("B", 1.0) == 0.0


def test_nfrs_from_models_and_dicts_judged_live():
    nfrs = normalise_nfrs([*load_nfrs(None), {"id": "X-ACK", "metric": "ack_ms", "stat": "p95", "threshold": 10},
                           {"id": "broken"}, {"id": "Y", "metric": "ack_ms", "threshold": "n/a"}])
    ids = [n["id"] for n in nfrs]
    assert "NFR-ACK-P95" in ids and "X-ACK" in ids and "broken" not in ids and "Y" not in ids
    live = {"latency": {"ACK": {"p95": 25.0, "p99": 40.0, "error_rate": 0.04}, "TRT": {"p95": 900.0}},
            "srv": {"error_rate": 0.02},  # per SRV attempt (a CV 4 + CV 5 is one), not per exchange as ACK's
            "classes": {"A": {"offered_rate": 100.0, "achieved_rate": 99.0}}}
    judged = {n["id"]: n for n in judge_nfrs(nfrs, live)}
    assert judged["X-ACK"]["ok"] is False and judged["X-ACK"]["value"] == 25.0
    assert judged["NFR-ACK-P95"]["ok"] is True
    assert judged["NFR-ERR"]["ok"] is False and judged["NFR-ERR"]["value"] == 0.02
    assert judged["NFR-RATE"]["ok"] is True and judged["NFR-RATE"]["value"] == pytest.approx(0.99)


def test_plan_view_shows_a7_and_the_targets():
    view = plan_view(ROOT / "volume_profiles" / "moc.yaml", "DSP", None, {"meter_reads": "MeterReads"})
    assert view["slot"] == "night" and view["a7_rate"] == pytest.approx(83.475, abs=0.01)
    assert sum(t["rate"] for t in view["targets"]) == pytest.approx(view["a7_rate"])
    assert {"row": "meter_reads", "user_class": "MeterReads"}.items() <= view["targets"][0].items()
    assert plan_view(None) is None


def test_error_codes_are_read_from_failure_messages():
    assert error_code("Exception('HTTP 429')") == "HTTP 429"
    assert error_code("DUIS E55 unknown device") == "E55"
    assert error_code("missing") == "missing"


@contextlib.contextmanager
def distributed(host: str, run_dir: Path, workers: int = 2):
    web, mport = free_port(), free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")])}
    base = [PY, "-m", "locust", "-f", str(ROOT / "locustfiles" / "stress_web.py"), "--loglevel", "WARNING"]
    procs = [subprocess.Popen([*base, "--worker", "--master-host", "127.0.0.1", "--master-port", str(mport)], env=env,
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(workers)]
    master = subprocess.Popen([*base, "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(mport),
                               "--expect-workers", str(workers), "--host", host, "--web-host", "127.0.0.1",
                               "--web-port", str(web), "--autostart", "--autoquit", "1", "--run-dir", str(run_dir),
                               "--stress-peak", "100", "--stress-step", "0.25", "--stress-no-callback", "--drain", "1"],
                              env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    procs.append(master)
    try:
        deadline = time.time() + 20
        while time.time() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", web), timeout=0.2):
                break
            time.sleep(0.1)
        yield f"http://127.0.0.1:{web}", master
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_distributed_master_steers_its_workers(tmp_path):
    """Master + 2 workers: two step-ups through the HTTP API reach both workers; records show 100/s after."""
    from dcc_capacity.load.records import load_records

    run_dir = tmp_path / "run"
    with stall_server() as host, distributed(host, run_dir) as (base, master), httpx.Client(base_url=base) as http:
        deadline = time.time() + 20
        while time.time() < deadline:
            state = http.get("/capacity/api/state").json()
            if state["runner"]["state"] == "running" and state["runner"]["workers"] == 2:
                break
            time.sleep(0.2)
        assert state["shape"]["total_rate"] == 50.0
        time.sleep(1.5)
        for _ in range(2):
            assert http.post("/capacity/api/control", json={"action": "step_up", "who": "ci"}).json()["ok"]
        stepped = time.time()
        time.sleep(4.5)
        gen = http.get("/capacity/api/state").json()["live"]["generator"]  # from both workers' reports
        assert gen["send_lag_p99_ms"] is not None and 0 <= gen["send_lag_p99_ms"] < 50 and gen["dropped"] == 0
        assert http.post("/capacity/api/control", json={"action": "stop", "who": "ci"}).json()["ok"]
        stopped = time.time()
        master.wait(timeout=20)
    df = load_records(run_dir)
    assert df["process"].nunique() == 2, "both workers sent"
    window = df[(df["sent_ts"] >= stepped + 0.5) & (df["sent_ts"] < stopped - 0.5)]  # sent, not planned
    rate = len(window) / (stopped - stepped - 1.0)
    assert rate == pytest.approx(100.0, rel=0.05), rate
    per_worker = window.groupby("process").size()
    assert per_worker.min() == pytest.approx(per_worker.max(), rel=0.1), per_worker.to_dict()
    actions = [json.loads(line)["action"] for line in (run_dir / ACTIONS_FILE).read_text().splitlines()]
    assert actions == ["start", "step_up", "step_up", "stop"]


def test_sut_resources_from_the_emulators_metrics():
    """The resources panel reads the embedded emulator's /metrics JSON, and says so when the SUT is gone."""
    from locust.env import Environment

    from dcc_capacity.emulator import start_emulator
    from dcc_capacity.webui import CapacityUI

    env = Environment(user_classes=[])
    env.create_local_runner()
    with start_emulator({"port": 0}, mode="subprocess") as emu:
        ui = CapacityUI(env, metrics_url=f"{emu.url}/metrics.json")
        res = ui.resources()
        assert res["ok"] is True, res
        assert res["gauges"]["rss_bytes"] > 1_000_000 and "cpu_percent" in res["gauges"]
        assert isinstance(res["by_code"], dict) and "totals" in res
    ui._metrics = (0.0, None)
    gone = ui.resources()
    assert gone["ok"] is False and "Error" in gone["error"]
    state = ui.state()
    assert state["shape"] is None and state["live"]["classes"] == {} and state["resources"]["ok"] is False
    with pytest.raises(ValueError, match="not a ControlledShape"):
        ui.control({"action": "step_up"})


def test_a_new_test_after_the_end_starts_a_fresh_ramp():
    shape, _, clock = make_shape()
    shape.tick()
    shape.step_up("op")
    shape.reset_time()  # Locust resets the clock at the start of a shape test: the running ramp is kept
    assert shape.factor == 0.75
    shape.on_test_stop()
    shape.reset_time()
    shape.tick()
    assert shape.factor == 0.5 and [a["action"] for a in shape.actions] == ["start"]


@pytest.mark.parametrize(("args", "message"), [
    (["--ui-profile", "nope.yaml"], "error: nope.yaml: no such file"),
    (["--ui-profile", "volume_profiles/moc.yaml", "--ui-sp", "XYZ"],
     "error: --ui-sp/--ui-slot: unknown Service Provider 'XYZ' (one of DSP, S1SP, DCO, CP)"),
])
def test_bad_tab_options_are_one_line_and_exit_2(args, message):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([PY, "-m", "locust", "-f", str(ROOT / "locustfiles" / "stress_web.py"), "--headless",
                           "--host", "http://127.0.0.1:9", "--loglevel", "ERROR", *args],
                          capture_output=True, text=True, timeout=60, env=env, cwd=ROOT)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == message and "Traceback" not in proc.stderr


def test_interactive_stress_spec_builds_a_controlled_shape_the_web_ui_can_steer():
    """`run --test stress --web` (``--dcc-interactive``): the DccShape wraps a ControlledShape with the run's knobs."""
    from dcc_capacity.load.controlled_shape import controlled_of
    from dcc_capacity.load.shape import DccShape, build_shape
    from dcc_capacity.spec.options import spec_from_options
    from dcc_capacity.spec.resolve import TestSpec

    profile = str(ROOT / "volume_profiles" / "foc.yaml")
    opts = SimpleNamespace(dcc_test="stress", dcc_profile=profile, dcc_sp="DSP", dcc_slot="night", dcc_rate=40.0,
                           dcc_duration="90s", dcc_start_factor=0.5, dcc_step=0.25, dcc_step_duration="10s",
                           dcc_max_factor=2.0, dcc_max_error_rate=0.02, dcc_max_p95_ms=0, dcc_interactive=True)
    spec = spec_from_options(opts)
    assert spec.interactive and spec.max_p95_ms is None
    shape = build_shape(spec).shape
    assert isinstance(shape, ControlledShape)
    assert shape.total() == pytest.approx(20.0) and sum(shape.rates.values()) == pytest.approx(40.0)
    assert (shape.step_fraction, shape.hold_s, shape.max_factor, shape.max_error_rate) == (0.25, 10.0, 2.0, 0.02)
    assert shape.stop_criterion == "error_rate" and shape.duration_s == 90.0
    assert shape.set_factor(5.0) == 2.0  # the ceiling holds for the operator too

    wrapper = DccShape()
    wrapper.options = opts
    assert controlled_of(wrapper, build=False) is None  # never built at Locust's init before options are set
    steered = controlled_of(wrapper)
    assert isinstance(steered, ControlledShape) and steered is wrapper.inner
    assert wrapper.rate_for("MeterReads", 1.0) == pytest.approx(steered.current_rates()["MeterReads"])

    fixed = build_shape(TestSpec(test="stress", profile=profile, rate=40.0)).shape
    assert not isinstance(fixed, ControlledShape)  # headless stress keeps the fixed step ramp
