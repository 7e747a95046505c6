"""SECMP0192 in the embedded emulator: accepted schedules executed at their times, DLMS commands and TPS counted.

Why: SECMP0192 moves SMETS1 4.3 / 4.4.3 into DCC-scheduled services (5.1). The load that matters is not
the 5.1 that creates a schedule but the executions the DCC then runs "around midnight every night" (PIA
3.1), each "between five and eleven" DLMS commands (PIA 4.3), at an S1SP that supports 450 TPS where
TPS = (Request + Response + Alert) / second (MP192-SA5), with responses due within 24 h (MP192-SA3). So
the emulator, playing the DCC side, keeps every schedule it accepts, gives it a time of day in the
execution window (the DSP spreads scheduled executions over the time available, SCTAD 8.5), executes it
daily at that time on its own clock, counts the DLMS commands, answers it after a ``scheduled`` device
latency, and counts every transaction per second the MP192-SA5 way. The answer is a signed DUIS response
POSTed to the callback of the user who created the schedule (:mod:`.scheduled_responses`), so the suite
times it where a Service User would; without a sender (or a callback) it is counted where it is executed.

Time compression: ``clock_start`` is the emulator's time of day at start and ``time_scale`` how many of its
seconds pass per real second (a soak compresses its slots the same way), so a test can cross midnight in a
few seconds. TPS is counted per real second: it is the rate the system under test actually carried.
"""

from __future__ import annotations

import asyncio
import heapq
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dcc_capacity.model.secmp0192 import TRT_S, check_clock, seconds_of_day

__all__ = ["Schedule", "ScheduleExecutor", "ScheduledExecutionConfig", "TpsCounter", "execution_from_plan"]

_DAY = 86400


@dataclass(frozen=True, slots=True)
class Schedule:
    """One accepted 5.1 Create Schedule: what each execution runs and whom its response goes to."""

    schedule_id: int
    variant: str
    """The scheduled SRV variant (4.3 or 4.4.3)."""
    request_id: str = ""
    """The 5.1's RequestID, echoed by each execution's response (duis/scheduled.py says why)."""
    originator: str = ""
    """The Service User who created the schedule: its callback receives the responses."""
    device: str = ""
    schema_version: str | None = None


class ScheduledExecutionConfig(BaseModel):
    """``secmp0192.execution``: execute accepted 4.3 / 4.4.3 schedules (off by default)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    window: tuple[str, str] = ("23:00", "01:00")
    """Execution window (start, end) as HH:MM; the end before the start wraps past midnight. Default: the
    example profile's assumption (volume_profiles/foc-secmp0192.yaml); a run passes its profile's window."""
    clock_start: str = "23:00"
    """The emulator's time of day when it starts."""
    time_scale: float = Field(default=1.0, gt=0, le=86400)
    """Emulator seconds per real second (60: a minute a second)."""
    dlms_commands_per_srv: tuple[int, int] = (5, 11)
    """(min, max) DLMS commands per execution, drawn evenly: SECMP0192 PIA 4.3 "between five and eleven"."""
    trt_s: float = Field(default=TRT_S, gt=0)
    """Target response time of a scheduled response, emulator seconds: MP192-SA3, 24 h."""

    @field_validator("window")
    @classmethod
    def _window(cls, v: tuple[str, str]) -> tuple[str, str]:
        for clock in v:
            check_clock(clock)
        if v[0] == v[1]:
            raise ValueError("start and end must differ")
        return v

    @field_validator("clock_start")
    @classmethod
    def _clock(cls, v: str) -> str:
        return check_clock(v)

    @field_validator("dlms_commands_per_srv")
    @classmethod
    def _dlms(cls, v: tuple[int, int]) -> tuple[int, int]:
        if not 1 <= v[0] <= v[1]:
            raise ValueError("(min, max) with 1 <= min <= max")
        return v


class TpsCounter:
    """Transactions per real second by kind (request, response, alert): MP192-SA5's TPS."""

    KINDS = ("request", "response", "alert")

    def __init__(self, clock: Any) -> None:
        self._clock = clock
        self.per_second: Counter[int] = Counter()
        self.totals: Counter[str] = Counter()

    def add(self, kind: str, n: int = 1) -> None:
        self.per_second[int(self._clock())] += n
        self.totals[kind] += n

    def snapshot(self) -> dict[str, Any]:
        """Totals, the busiest second and the mean over the seconds from the first to the last transaction."""
        if not self.per_second:
            return {**{k: 0 for k in self.KINDS}, "seconds": 0, "max": 0.0, "mean": 0.0}
        first, last = min(self.per_second), max(self.per_second)
        seconds = last - first + 1
        total = sum(self.per_second.values())
        return {**{k: self.totals[k] for k in self.KINDS}, "seconds": seconds,
                "max": float(max(self.per_second.values())), "mean": total / seconds,
                "formula": "TPS = (request + response + alert) / s (SECMP0192 PIA, MP192-SA5)"}


class ScheduleExecutor:
    """The schedules one emulator accepted, executed daily at their time of day on the emulator's clock."""

    def __init__(self, cfg: ScheduledExecutionConfig, rng: random.Random, tps: TpsCounter,
                 latency: Any, real_clock: Any, send: Callable[[Schedule, float], bool] | None = None) -> None:
        self.cfg = cfg
        self.rng = rng
        self.tps = tps
        self.latency = latency
        """A sampler of the ``scheduled`` device latency (emulator seconds): its sample() is the response time."""
        self._real = real_clock
        self._send = send
        """Posts an execution's response (schedule, due epoch s) to its user; False when it has no callback."""
        self._start = seconds_of_day(cfg.clock_start)
        self._due: list[tuple[float, int, Schedule]] = []
        self.schedules = 0
        self.executed: Counter[str] = Counter()
        self.dlms_commands = 0
        self.responded = 0
        self.sent = 0
        """Responses handed to the callback sender (delivered ones count in TPS when the callback answers)."""
        self.late = 0
        self.trt_max_s = 0.0
        self.trt_sum_s = 0.0
        self.first_execution: float | None = None
        """Emulator time (seconds since the start day's midnight) of the first execution."""

    def now(self) -> float:
        """Emulator seconds since midnight of the start day."""
        return self._start + self._real() * self.cfg.time_scale

    def add(self, schedule: Schedule) -> None:
        """Keep an accepted schedule: a time of day in the window, first due at its next occurrence."""
        start, end = (seconds_of_day(c) for c in self.cfg.window)
        length = (end - start) % _DAY
        tod = (start + self.rng.random() * length) % _DAY
        now = self.now()
        due = now - now % _DAY + tod
        if due < now:
            due += _DAY
        heapq.heappush(self._due, (due, schedule.schedule_id, schedule))
        self.schedules += 1

    async def run(self) -> None:
        """Execute what is due, every 20 ms of real time, until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            now = self.now()
            while self._due and self._due[0][0] <= now:
                due, sid, schedule = heapq.heappop(self._due)
                self._execute(loop, due, schedule)
                heapq.heappush(self._due, (due + _DAY, sid, schedule))  # daily (5.1 ScheduleFrequency Daily)
            await asyncio.sleep(0.02)

    def _execute(self, loop: asyncio.AbstractEventLoop, due: float, schedule: Schedule) -> None:
        low, high = self.cfg.dlms_commands_per_srv
        self.executed[schedule.variant] += 1
        self.dlms_commands += self.rng.randint(low, high)
        self.tps.add("request")
        if self.first_execution is None:
            self.first_execution = due
        trt = float(self.latency.sample())
        # The due time on the wall clock (the tick may run up to 20 ms real after it): what the suite's TRT is from.
        due_epoch = time.time() - (self.now() - due) / self.cfg.time_scale
        loop.call_later(trt / self.cfg.time_scale, self._respond, trt, schedule, due_epoch)

    def _respond(self, trt_s: float, schedule: Schedule, due_epoch: float) -> None:
        if self._send is not None and self._send(schedule, due_epoch):
            self.sent += 1  # counted in TPS by the sender when the callback takes it, like every async response
        else:
            self.tps.add("response")
        self.responded += 1
        self.trt_max_s = max(self.trt_max_s, trt_s)
        self.trt_sum_s += trt_s
        if trt_s > self.cfg.trt_s:
            self.late += 1

    def snapshot(self) -> dict[str, Any]:
        return {"schedules": self.schedules, "executed": dict(self.executed),
                "executions": sum(self.executed.values()), "dlms_commands": self.dlms_commands,
                "responded": self.responded, "sent": self.sent, "late": self.late, "trt_max_s": self.trt_max_s,
                "trt_mean_s": self.trt_sum_s / self.responded if self.responded else None,
                "trt_limit_s": self.cfg.trt_s, "clock_s": self.now(), "first_execution_s": self.first_execution}


def execution_from_plan(load: Any, *, clock_start: str, time_scale: float) -> dict[str, Any]:
    """``secmp0192.execution`` for a profile's :class:`~dcc_capacity.model.secmp0192.ScheduledLoad`: its window
    and DLMS commands per SRV, on a clock starting at ``clock_start`` that runs ``time_scale`` times real time."""
    return {"enabled": True, "window": (load.start, load.end), "clock_start": clock_start, "time_scale": time_scale,
            "dlms_commands_per_srv": (load.dlms_min, load.dlms_max)}
