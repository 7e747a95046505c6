"""The open model inside real Locust: offered rate holds whatever the SUT does, stalls show in the percentiles."""

from __future__ import annotations

import json
import time

import gevent
import pytest
from locust.env import Environment
from locust.event import Events

from _load_helpers import ROOT, run_locust, stall_server
from dcc_capacity.load.openmodel import OpenModelUser, Step
from dcc_capacity.load.records import load_records
from dcc_capacity.load.runcontext import MeasureConfig, install

pytestmark = pytest.mark.quiet  # its figures depend on the CPU it gets (tests/_lanes.py)

LOCUSTFILE = ROOT / "tests" / "_om_locustfile.py"


def sent_rate(df) -> float:
    """Requests/s from when they actually went out (send timestamps), never from the planned times."""
    st = df["sent_ts"].dropna()
    return (len(st) - 1) / (st.max() - st.min())


class Saturating(OpenModelUser):
    """50 SRV/s into a server that stalls 2 s of every 4 s, with room for only 5 arrivals in flight."""

    abstract = True
    rate = 50.0
    max_in_flight = 5

    def arrival(self):
        yield Step("sat", "/x", srv_variant="4.6.1")


class PoissonUser(OpenModelUser):
    abstract = True
    rate = 200.0
    arrival_process = "poisson"
    seed = 7

    def arrival(self):
        return [Step("poisson", "/x")]


def run_in_process(user_classes, host, run_dir, seconds: float) -> Environment:
    env = Environment(user_classes=user_classes, events=Events(), host=host)
    runner = env.create_local_runner()
    ctx = install(env, MeasureConfig(run_dir=run_dir, listen=False, drain_s=3))
    runner.start(len(user_classes), spawn_rate=100)
    gevent.sleep(seconds)
    runner.stop()
    runner.quit()
    ctx.close()
    return env


@pytest.mark.slow
def test_saturated_client_drops_and_counts_arrivals_instead_of_queueing(tmp_path):
    with stall_server(period=4, stall=2) as url:
        env = run_in_process([Saturating], url, tmp_path, seconds=3)
    df = load_records(tmp_path)
    dropped = df[df["outcome"] == "dropped"]
    sent = df[df["outcome"] != "dropped"]
    assert len(dropped) > 20 and len(sent) >= 5  # at least 1 s of stall at 50/s, minus the 5 in flight
    assert {e.split(" (")[0] for e in dropped["error"]} == {"dropped: client saturated"}
    assert "5 HTTP exchanges in flight" in dropped["error"].iloc[0]
    assert dropped["sent_ts"].isna().all() and sent["sent_ts"].notna().all()  # dropped ones never went out
    assert len(dropped) + len(sent) >= 0.9 * 50 * 3  # arrivals were counted through the stall, not skipped
    entry = env.stats.get("Saturating dropped", "DROPPED")
    assert entry.num_failures == len(dropped)


@pytest.mark.slow
def test_poisson_arrivals_average_the_target_rate(tmp_path):
    with stall_server() as url:
        run_in_process([PoissonUser], url, tmp_path, seconds=3)
    df = load_records(tmp_path)
    assert sent_rate(df) == pytest.approx(200, rel=0.15)
    gaps = df["sent_ts"].sort_values().diff().dropna()
    assert gaps.std() / gaps.mean() > 0.7  # exponential gaps (coefficient of variation ~1), not a metronome


class Plain(OpenModelUser):
    abstract = True
    rate = 50.0

    def arrival(self):
        return [Step("plain", "/x")]


@pytest.mark.slow
def test_environment_without_install_still_sends_on_schedule():
    """An in-process Environment nobody called install() on: the first user starts the clock itself."""
    with stall_server() as url:
        env = Environment(user_classes=[Plain], events=Events(), host=url)
        runner = env.create_local_runner()
        t0 = time.monotonic()
        runner.start(1, spawn_rate=10)
        gevent.sleep(2)
        runner.quit()
        elapsed = time.monotonic() - t0  # a loaded machine oversleeps: the schedule follows the real clock
    entry = env.stats.get("plain ack", "ACK")
    expected = Plain.rate * elapsed
    assert 0.9 * expected - 2 <= entry.num_requests <= expected + 2 and entry.num_failures == 0


@pytest.mark.slow
def test_stress_finds_the_knee_of_a_server_with_finite_capacity(tmp_path):
    """A FIFO server of 110 req/s (503 past 0.2 s of queue); steps of 80, 100, 120 SRV/s."""
    with stall_server(capacity=110) as url:
        r = run_locust(LOCUSTFILE, url, tmp_path, seconds=30, env={"OM_CLASSES": "Steady", "OM_STRESS_RATE": "100"})
    assert r.returncode in (0, 1), r.stderr[-3000:]
    result = json.loads((tmp_path / "shape.json").read_text())
    assert [s["factor"] for s in result["steps"]] == pytest.approx([0.8, 1.0, 1.2])
    assert [s["passed"] for s in result["steps"]] == [True, True, False]
    assert result["knee_rate"] == pytest.approx(110, rel=0.15)
    assert result["steps"][2]["failures"] > 0.01 * result["steps"][2]["requests"]
