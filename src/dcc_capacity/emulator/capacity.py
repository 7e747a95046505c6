"""The capacity model: SECMP0067 fair-share admission, then a bounded queue feeding a worker pool.

A loaded real system degrades in a recognisable order: first latency rises
(requests wait for a worker), then it refuses work (the queue is full). The
model reproduces that with three parts a stress test can find:

* ``FairShare`` - SECMP0067 traffic management. Each active Service User gets
  a token bucket whose rate is its max-min fair share of ``total_tps``
  (water-filling over recent demand, weighted): a user below its share keeps
  everything it asks for, the rest is split among the heavy users, so one
  user bursting cannot starve the others and idle capacity is not wasted.
* ``WorkerPool`` - ``workers`` coroutines take jobs from per-user queues
  (round robin, at most ``queue_limit`` in all); each job holds a worker for a
  sampled service time, and job starts are paced to ``tps``. Throughput is
  min(tps, workers / service time).
* Outage gating - while an outage window is open no job starts; the queue
  fills (up to its limit) and drains at full capacity when the window closes.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from dcc_capacity.emulator.config import CapacityConfig, ServiceTime
from dcc_capacity.emulator.latency import LatencySampler, preset_table

__all__ = ["FairShare", "QueueFull", "ServiceSampler", "WorkerPool", "delay_samplers"]


class ServiceSampler:
    """Draws service times (seconds) from a :class:`ServiceTime` distribution."""

    def __init__(self, spec: ServiceTime, rng: random.Random) -> None:
        self.spec = spec
        self._rng = rng
        mean = spec.mean_ms / 1000.0
        self._mean = mean
        # lognormal with the configured arithmetic mean: mu = ln(mean) - sigma^2 / 2
        self._mu = math.log(mean) - spec.sigma ** 2 / 2 if mean > 0 else 0.0

    def sample(self) -> float:
        if self._mean <= 0:
            return 0.0
        if self.spec.dist == "fixed":
            return self._mean
        if self.spec.dist == "exponential":
            return self._rng.expovariate(1.0 / self._mean)
        return self._rng.lognormvariate(self._mu, self.spec.sigma)


def delay_samplers(cap: CapacityConfig, rng: random.Random) -> dict[bool, dict[str, ServiceSampler | LatencySampler]]:
    """Device-latency samplers keyed ``[smets1][srv_class]``, resolved once at start so a request pays one
    dictionary hit on the SMETS1 flag the gateway already set (``Accepted.smets1``) and one on its class.

    Order: the preset, then the old ``device_delay`` form (both generations), then ``device_latency.smetsN``.
    """
    table = preset_table(cap.device_latency)
    out: dict[bool, dict[str, ServiceSampler | LatencySampler]] = {}
    for smets1, gen in ((True, "smets1"), (False, "smets2")):
        samplers: dict[str, ServiceSampler | LatencySampler] = {c: LatencySampler(lat, rng)
                                                                for c, lat in table[gen].items()}
        explicit = getattr(cap.device_latency, gen)
        for cls, old in cap.device_delay.items():
            if cls not in explicit:
                samplers[cls] = ServiceSampler(old, rng)
        out[smets1] = samplers
    return out


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float
    rate: float
    weight: float = 1.0
    seen: float = 0.0
    arrivals: int = 0
    demand: float = 0.0
    depth: float = 1.0


class FairShare:
    """Per-Service-User token buckets whose rates are max-min fair shares of ``total_tps``."""

    def __init__(self, total_tps: float, *, burst_s: float = 1.0, window_s: float = 2.0,
                 weights: dict[str, float] | None = None, clock: Callable[[], float] = time.monotonic,
                 max_users: int = 10_000) -> None:
        self.total = float(total_tps)
        self.burst_s = burst_s
        self.window_s = window_s
        self._weights = {k.upper(): v for k, v in (weights or {}).items()}
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._next_rebalance = 0.0
        self._last_rebalance = clock()
        self._max_users = max_users

    def shares(self) -> dict[str, float]:
        """Current admitted rate (req/s) per active user."""
        return {u: b.rate for u, b in self._buckets.items()}

    def allow(self, user: str) -> bool:
        """Take one token from ``user``'s bucket; False means throttle."""
        now = self._clock()
        b = self._buckets.get(user)
        if b is None:
            if len(self._buckets) >= self._max_users:
                self._evict(now)
            n = len(self._buckets) + 1
            rate = self.total / n
            b = _Bucket(tokens=max(1.0, rate * self.burst_s), stamp=now, rate=rate,
                        weight=self._weights.get(user.upper(), 1.0), seen=now, depth=max(1.0, rate * self.burst_s))
            self._buckets[user] = b
            self._next_rebalance = 0.0  # a newcomer changes everyone's share
        b.seen = now
        b.arrivals += 1
        if now >= self._next_rebalance:
            self._rebalance(now)
        b.tokens = min(b.depth, b.tokens + (now - b.stamp) * b.rate)
        b.stamp = now
        if b.tokens >= 1.0:
            b.tokens -= 1.0
            return True
        return False

    def _evict(self, now: float) -> None:
        stale = [u for u, b in self._buckets.items() if now - b.seen > self.window_s]
        for u in stale or list(self._buckets)[: len(self._buckets) // 10 + 1]:
            del self._buckets[u]

    def _rebalance(self, now: float) -> None:
        """Water-filling: users demanding less than an equal (weighted) share keep their demand."""
        elapsed = max(1e-3, now - self._last_rebalance)
        self._last_rebalance = now
        self._next_rebalance = now + 0.25
        active: dict[str, _Bucket] = {}
        for u, b in list(self._buckets.items()):
            inst = b.arrivals / elapsed
            b.arrivals = 0
            b.demand = inst if b.demand == 0 else 0.5 * b.demand + 0.5 * inst
            if now - b.seen > self.window_s:
                del self._buckets[u]
            else:
                active[u] = b
        remaining = self.total
        pending = dict(active)
        wall = sum(b.weight for b in active.values()) or 1.0
        for b in active.values():
            # depth: a second (burst_s) of the user's equal share, so short bursts always pass
            b.depth = max(1.0, self.total * b.weight / wall * self.burst_s)
        while pending:
            wsum = sum(b.weight for b in pending.values())
            light = {u: b for u, b in pending.items() if b.demand * 1.2 < remaining * b.weight / wsum}
            if not light:
                for b in pending.values():
                    b.rate = remaining * b.weight / wsum
                return
            for u, b in light.items():
                b.rate = b.demand * 1.2  # light users keep their demand plus headroom
                remaining -= b.rate
                del pending[u]
        # Nobody is capped: share what is left among everyone (work-conserving).
        for b in active.values():
            b.rate += max(remaining, 0.0) * b.weight / wall


class QueueFull(Exception):
    """The request queue is at its limit."""


@dataclass(slots=True)
class _Job:
    fut: asyncio.Future[float]
    service_s: float
    enqueued: float


class WorkerPool:
    """``workers`` coroutines serving per-user FIFOs round robin, starts paced to ``tps``, gated by outages.

    Fair queueing finishes what fair-share admission starts: jobs are taken
    from each user's queue in turn, and when the shared queue is full the
    newest job of the *longest* user queue is refused (E48) to make room, so a
    user bursting fills only its own part of the queue and another user's
    latency stays low.
    """

    def __init__(self, *, workers: int, queue_limit: int, tps: float) -> None:
        self.workers = workers
        self.queue_limit = queue_limit
        self.tps = tps
        self._queues: dict[str, deque[_Job]] = {}
        self._rr: deque[str] = deque()
        self._count = 0
        self._ready: asyncio.Semaphore | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._up: asyncio.Event | None = None
        self._outage = False
        self._next_start = 0.0
        self.busy = 0
        self.served = 0

    @property
    def depth(self) -> int:
        return self._count

    @property
    def in_outage(self) -> bool:
        return self._outage

    def set_outage(self, on: bool) -> None:
        self._outage = on
        if self._up is not None:
            if on:
                self._up.clear()
            else:
                self._up.set()

    async def wait_up(self) -> None:
        if self._up is not None:
            await self._up.wait()

    def start(self) -> None:
        self._ready = asyncio.Semaphore(0)
        self._up = asyncio.Event()
        self.set_outage(self._outage)
        self._tasks = [asyncio.create_task(self._worker()) for _ in range(self.workers)]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def submit(self, service_s: float, user: str = "") -> asyncio.Future[float]:
        """Queue a job; the future resolves with its queue wait (s) once served.

        Raises :class:`QueueFull` when the queue is full and ``user`` already has
        the longest queue; otherwise the longest queue's newest job is refused instead.
        """
        assert self._ready is not None, "WorkerPool.start() first"
        if self._count >= self.queue_limit:
            mine = len(self._queues.get(user, ()))
            longest = max(self._queues, key=lambda u: len(self._queues[u]), default=None)
            if longest is None or longest == user or len(self._queues[longest]) <= mine + 1:
                raise QueueFull
            victim = self._queues[longest].pop()
            self._count -= 1
            if not victim.fut.done():
                victim.fut.set_exception(QueueFull())
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[float] = loop.create_future()
        if self.start_now(service_s):
            fut.set_result(0.0)
            return fut
        q = self._queues.get(user)
        if q is None:
            q = self._queues[user] = deque()
            self._rr.append(user)
        q.append(_Job(fut, service_s, time.monotonic()))
        self._count += 1
        self._ready.release()
        return fut

    def start_now(self, service_s: float) -> bool:
        """Serve a job at once when nothing waits: an idle worker, an empty queue, no service time, TPS pacing
        allows a start now. What a zero-latency DCC would do, without a future or three task switches."""
        if service_s > 0 or self._count or self.busy >= self.workers or self._outage:
            return False
        now = asyncio.get_running_loop().time()
        base = max(self._next_start, now - 0.05)
        if base > now:
            return False
        self._next_start = base + 1.0 / self.tps
        self.served += 1
        return True

    def _pop(self) -> _Job | None:
        while self._rr:
            user = self._rr.popleft()
            q = self._queues.get(user)
            if not q:
                self._queues.pop(user, None)
                continue
            job = q.popleft()
            if q:
                self._rr.append(user)
            else:
                del self._queues[user]
            self._count -= 1
            return job
        return None

    async def _worker(self) -> None:
        assert self._ready is not None and self._up is not None
        interval = 1.0 / self.tps
        loop = asyncio.get_running_loop()
        while True:
            await self._ready.acquire()
            if self._outage:
                await self._up.wait()
            job = self._pop()
            if job is None or job.fut.done():
                continue
            # Pace job starts to the TPS ceiling; a short idle period banks at most 50 ms of starts.
            now = loop.time()
            base = max(self._next_start, now - 0.05)
            start = max(now, base)
            self._next_start = base + interval
            delay = (start - now) + job.service_s
            self.busy += 1
            try:
                if delay > 0:
                    await asyncio.sleep(delay)
            finally:
                self.busy -= 1
            self.served += 1
            if not job.fut.done():
                job.fut.set_result(time.monotonic() - job.enqueued)
