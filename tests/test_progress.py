"""The headless progress line: one line, rates over the last interval, NFR status from Locust's stats."""

from __future__ import annotations

import io

from locust import User, constant, task
from locust.env import Environment
from locust.event import Events

from dcc_capacity.load.progress import Progress
from dcc_capacity.load.shapes import LoadShape
from dcc_capacity.model.nfr import Nfr


class Idle(User):
    wait_time = constant(1)

    @task
    def t(self) -> None:
        pass


NFRS = [Nfr(id="NFR-ACK-P95", metric="ack_ms", stat="p95", max=500),
        Nfr(id="NFR-TRT-P95", metric="trt_ms", stat="p95", max=1000),
        Nfr(id="NFR-ERR", metric="failure_rate", max=0.01),
        Nfr(id="NFR-RATE", metric="achieved_ratio", min=0.98),
        Nfr(id="NFR-SRV", metric="ack_ms", stat="p95", max=1, per="srv")]


def test_progress_line_reports_time_rates_and_nfr_status():
    shape = LoadShape(rates={"Idle": 100.0}, duration_s=600)
    env = Environment(user_classes=[Idle], events=Events(), shape_class=shape)
    env.create_local_runner()
    out = io.StringIO()
    p = Progress(env, NFRS, interval=10, stream=out)
    p._start()
    t0 = p._t0
    for i in range(1000):  # 1000 acks in the first 10 s, 5% of them failed; TRTs all fast
        env.stats.log_request("ACK", "4.6.1 ack", 100 if i < 960 else 900, 10)
        env.stats.log_request("TRT", "4.6.1 TRT", 300, 10)
        if i % 20 == 0:
            env.stats.log_error("ACK", "4.6.1 ack", "HTTP 500")
    for _ in range(10):
        env.stats.log_request("DROPPED", "Idle dropped", 0, 0)
        env.stats.log_error("DROPPED", "Idle dropped", "saturated")
    line = p.line(now=t0 + 10)
    p._stop()
    assert "\n" not in line
    assert line.startswith("[dcc-capacity] 00:00:10/00:10:00 (00:09:50 left)")
    assert "target 100.0/s" in line
    assert "offered 101.0/s" in line  # 1000 acks + 10 dropped in 10 s
    assert "achieved 95.0/s" in line  # 1000 - 50 failed acks
    assert "dropped 10" in line
    assert "NFR 2 ok, 2 FAIL (NFR-ERR, NFR-RATE), 1 at end" in line  # ack p95 100 ms, TRT p95 300 ms are fine


def test_rates_are_per_interval_not_cumulative():
    env = Environment(user_classes=[Idle], events=Events())
    env.create_local_runner()
    p = Progress(env, [], interval=10, duration_s=100, stream=io.StringIO())
    p._start()
    t0 = p._t0
    for _ in range(200):
        env.stats.log_request("ACK", "a ack", 1, 1)
    p.line(now=t0 + 10)
    for _ in range(50):
        env.stats.log_request("ACK", "a ack", 1, 1)
    assert "offered 5.0/s achieved 5.0/s" in p.line(now=t0 + 20)
