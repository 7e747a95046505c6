"""The capacity model: fair shares, the worker pool, and an emulator driven to twice its capacity."""

from __future__ import annotations

import asyncio
import random
import statistics
import time

import httpx
import pytest

from _emulator_helpers import PKI_DIR, CallbackListener, blast, pki, signed_request
from dcc_capacity.emulator import start_emulator
from dcc_capacity.emulator.capacity import FairShare, QueueFull, ServiceSampler, WorkerPool
from dcc_capacity.emulator.config import ServiceTime

pytestmark = pytest.mark.quiet  # its figures depend on the CPU it gets (tests/_lanes.py)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _drive(fs: FairShare, clock: Clock, rates: dict[str, float], seconds: float) -> dict[str, tuple[int, int]]:
    """Offer each user its rate (evenly spaced) for ``seconds``; returns (offered, admitted) per user."""
    events = sorted((i / r, u) for u, r in rates.items() for i in range(int(r * seconds)))
    start = clock.t
    out = {u: [0, 0] for u in rates}
    for t, u in events:
        clock.t = start + t
        out[u][0] += 1
        out[u][1] += fs.allow(u)
    return {u: (a, b) for u, (a, b) in out.items()}


def test_a_lone_user_may_use_the_whole_capacity():
    clock = Clock()
    fs = FairShare(100, clock=clock)
    offered, admitted = _drive(fs, clock, {"A": 90}, 10)["A"]
    assert admitted == offered


def test_a_bursting_user_cannot_starve_a_light_one():
    clock = Clock()
    fs = FairShare(100, clock=clock)
    res = _drive(fs, clock, {"A": 1000, "B": 20}, 10)
    assert res["B"][1] == res["B"][0]                  # the light user keeps everything it asks for
    assert 0.6 * 100 * 10 < res["A"][1] < 100 * 10     # the burster gets the rest of the capacity, no more
    assert fs.shares()["A"] < 100


def test_two_heavy_users_split_by_weight():
    clock = Clock()
    fs = FairShare(100, clock=clock, weights={"A": 3, "B": 1})
    res = _drive(fs, clock, {"A": 500, "B": 500}, 20)
    ratio = res["A"][1] / res["B"][1]
    assert 2.4 < ratio < 3.6


def test_lognormal_service_time_has_the_configured_mean():
    s = ServiceSampler(ServiceTime(dist="lognormal", mean_ms=10, sigma=0.8), random.Random(1))
    assert statistics.fmean(s.sample() for _ in range(20000)) == pytest.approx(0.010, rel=0.05)
    assert ServiceSampler(ServiceTime(dist="fixed", mean_ms=7), random.Random(1)).sample() == 0.007


def test_worker_pool_throughput_is_capped_by_tps_and_serves_users_round_robin():
    async def main() -> tuple[float, list[str]]:
        pool = WorkerPool(workers=4, queue_limit=1000, tps=200)
        pool.start()
        order: list[str] = []

        async def job(u: str) -> None:
            await pool.submit(0.0, u)
            order.append(u)

        t0 = time.monotonic()
        await asyncio.gather(*[job("A") for _ in range(60)], *[job("B") for _ in range(10)])
        took = time.monotonic() - t0
        await pool.stop()
        return took, order

    took, order = asyncio.run(main())
    assert 0.25 < took < 0.7          # 70 jobs at 200/s (50 ms banked) ~ 0.3 s
    # after the ~10 banked starts, A and B alternate: B is not stuck behind all of A's 60
    assert order.index("B") < 15 and order[:32].count("B") >= 8


def test_full_queue_refuses_the_longest_users_newest_job():
    async def main() -> tuple[int, int, bool]:
        pool = WorkerPool(workers=1, queue_limit=10, tps=1000)
        pool.set_outage(True)  # nothing is served: the queue only fills
        pool.start()
        a = [pool.submit(0.0, "A") for _ in range(10)]
        with pytest.raises(QueueFull):
            pool.submit(0.0, "A")
        b = pool.submit(0.0, "B")  # B gets in; A's newest job is refused instead
        await asyncio.sleep(0)
        refused = sum(1 for f in a if f.done() and isinstance(f.exception(), QueueFull))
        pool.set_outage(False)
        await asyncio.wait_for(b, 2)
        await pool.stop()
        return refused, pool.depth, b.done()

    refused, depth, served = asyncio.run(main())
    assert refused == 1 and served


@pytest.mark.slow
def test_twice_capacity_raises_latency_then_throttles_and_refuses_but_stays_up():
    """1 s at half capacity, then 2 s at twice capacity (300/s against 150 TPS).

    Latency climbs, SECMP0067 throttles the excess over 1.25 x capacity, the full queue refuses (E48).
    """
    due = [i / 75 for i in range(75)] + [1.0 + i / 300 for i in range(600)]
    seconds = 3.0
    p = pki()
    bodies = [signed_request("4.1.1", p=p) for _ in due]
    cb = CallbackListener()
    cfg = {"port": 0, "pki_dir": str(PKI_DIR), "callback_url": cb.url,
           "throttle": {"burst_s": 0.2},
           "capacity": {"tps": 150, "workers": 8, "queue_limit": 40,
                        "service_time": {"device": {"dist": "fixed", "mean_ms": 5}},
                        "device_delay": {"device": {"dist": "fixed", "mean_ms": 5}}}}
    with start_emulator(cfg, mode="subprocess") as emu:
        results = blast(emu.path("S"), bodies, due=due, connections=400)
        statuses = [s for _, s, _ in results]
        early = [lat for t, s, lat in results if t < 1.0 and s == 200]
        late = [lat for t, s, lat in results if t > seconds - 1.0 and s == 200]
        assert all(s == 200 for t, s, _ in results if t < 1.0)   # below capacity: all served
        # admitted 1.25 x 150 = 187.5/s (+ a 0.2 s burst) of 300/s for 2 s: ~190 throttled (E47)
        assert 120 < statuses.count(429) < 260
        assert statuses.count(503) > 0                            # queue full (E48) past the knee
        assert statistics.median(early) < 0.05
        assert statistics.median(late) > 5 * statistics.median(early)
        m = emu.metrics()
        assert m["by_class"]["device"]["throttled"] == statuses.count(429)
        assert m["by_class"]["device"]["queue_full"] == statuses.count(503)
        assert httpx.get(emu.url + "/health").status_code == 200   # still up
        assert emu.returncode is None
    assert emu.returncode == 0                                     # SIGTERM -> clean exit
    cb.close()


@pytest.mark.slow
def test_noisy_neighbour_does_not_starve_a_quiet_user():
    """Supplier A bursts at 400/s against 150 TPS; supplier B's 25/s is all served, promptly."""
    from _emulator_helpers import SUPPLIER

    b_user = "90-B3-D5-1F-30-04-00-00"
    p = pki()
    due_a = [i / 400 for i in range(800)]
    due_b = [i / 25 + 0.0013 for i in range(50)]  # never at the same instant as an A request
    merged = sorted([(t, "A") for t in due_a] + [(t, "B") for t in due_b])
    bodies = [signed_request("4.1.1", p=p, originator=SUPPLIER if u == "A" else b_user) for _, u in merged]
    cfg = {"port": 0, "pki_dir": str(PKI_DIR), "log_level": "error",
           "capacity": {"tps": 150, "workers": 8, "queue_limit": 40,
                        "service_time": {"device": {"dist": "fixed", "mean_ms": 5}}}}
    with start_emulator(cfg, mode="subprocess") as emu:
        results = blast(emu.path("S"), bodies, due=[t for t, _ in merged], connections=400)
        shares = emu.metrics()["throttle_shares"]
    by_due = {round(t, 6): u for t, u in merged}
    a = [(s, lat) for t, s, lat in results if by_due[round(t, 6)] == "A"]
    b = [(s, lat) for t, s, lat in results if by_due[round(t, 6)] == "B"]
    assert len(b) == 50 and all(s == 200 for s, _ in b)                 # the quiet user keeps its share
    assert statistics.median(lat for _, lat in b) < 0.25
    assert sum(1 for s, _ in a if s in (429, 503)) > 200                  # the burster is held back
    assert shares[SUPPLIER] > shares[b_user]
