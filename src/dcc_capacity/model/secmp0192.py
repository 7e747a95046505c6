"""SECMP0192: DCC-scheduled SRV 4.3 / 4.4.3 for SMETS1, executed around midnight (profile inputs and the model).

Why a model of its own: SECMP0192 (PIA 3.1) expects "up to ~2.7 million" scheduled SRVs "around midnight every
night", each "between five and eleven" DLMS commands (PIA 4.3: 13.5 to 29.7 million), against an S1SP that
supports 450 TPS where TPS = (Request + Response + Alert) / second (MP192-SA5), with a 24 h Target Response Time
(MP192-SA3). Tables A5-A7 spread a day's SRVs over whole timeslots, which hides a load concentrated in a window
around midnight, so the scheduled executions get their own figures: per slot (for the rates a run sends), at the
window's own rate (the peak), in DLMS commands and in MP192-SA5 TPS. A profile without ``secmp0192`` keeps the
run's 2 %-of-BAU default and Tables A5-A7 exactly as they were.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

__all__ = ["DlmsPerSrv", "ExecutionWindow", "MP192_SA5_TPS", "ScheduledLoad", "Secmp0192Inputs", "TPS_FORMULA",
           "TRT_S", "check_clock", "plan_section", "scheduled_load", "seconds_of_day"]

MP192_SA5_TPS = 450.0
"""MP192-SA5: "Secure will continue to support the existing 450 TPS"."""

TRT_S = 24 * 3600
"""MP192-SA3: "The TRT of these scheduled SRVs will be 24 hours"."""
TPS_FORMULA = "TPS = (request + response + alert) / s (SECMP0192 PIA, MP192-SA5)"
_SLOT_BOUNDS = {"night": (0, 25200), "day": (25200, 68400), "evening": (68400, 86400)}
"""Table A1, seconds after midnight (the same slots as dcc_capacity.model.volume)."""
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def check_clock(text: str) -> str:
    if not _HHMM.match(text):
        raise ValueError(f"a time of day as HH:MM, 00:00 to 23:59 (got {text!r})")
    return text


Clock = Annotated[str, AfterValidator(check_clock)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


class DlmsPerSrv(_Strict):
    """DLMS commands one scheduled SRV costs at the S1SP: PIA 4.3 says "between five and eleven"."""

    min: Annotated[int, Field(ge=1, le=1000)]
    max: Annotated[int, Field(ge=1, le=1000)]

    @model_validator(mode="after")
    def _ordered(self) -> DlmsPerSrv:
        if self.max < self.min:
            raise ValueError(f"max must be >= min (got min {self.min}, max {self.max})")
        return self


class ExecutionWindow(_Strict):
    """When the schedules execute, as clock times; ``end`` before ``start`` wraps past midnight."""

    start: Clock
    end: Clock

    @model_validator(mode="after")
    def _not_empty(self) -> ExecutionWindow:
        if self.start == self.end:
            raise ValueError("start and end must differ (the window would be empty)")
        return self


class Secmp0192Inputs(_Strict):
    """The profile's ``secmp0192`` section (docs/volume-model.md)."""

    scheduled_srvs_per_day: Annotated[float, Field(ge=0)]
    dlms_commands_per_srv: DlmsPerSrv
    execution_window: ExecutionWindow


def seconds_of_day(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 3600 + int(minutes) * 60


@dataclass(frozen=True)
class ScheduledLoad:
    """A profile's SECMP0192 load, production figures (before peak-to-average and test_scale)."""

    srvs_per_day: float
    dlms_min: int
    dlms_max: int
    start: str
    end: str
    window_s: int
    per_slot: dict[str, float]
    """Executions a day in each Table A1 slot (the window shared by its overlap with the slot)."""

    @property
    def window_srv_per_s(self) -> float:
        """Executions per second inside the window: the load's own peak (spread evenly over the window)."""
        return self.srvs_per_day / self.window_s

    @property
    def dlms_per_day(self) -> tuple[float, float]:
        """(fewest, most) DLMS commands a day: PIA 4.3's 13.5 to 29.7 million for 2.7 million SRVs."""
        return self.srvs_per_day * self.dlms_min, self.srvs_per_day * self.dlms_max

    def slots(self) -> tuple[str, ...]:
        """The slots the window touches."""
        intervals = _intervals(self.start, self.end)
        return tuple(s for s, bounds in _SLOT_BOUNDS.items() if _overlap(intervals, bounds) > 0)

    def tps(self, srv_per_s: float, alerts_per_s: float, share: float = 1.0) -> float:
        """MP192-SA5 TPS in the window: every SRV one request and one response, every alert one transaction.

        ``srv_per_s`` and ``alerts_per_s`` are the S1SP's other traffic at the time (SRVs it handles and alerts
        it raises); ``share`` is the part of the scheduled SRVs this S1SP executes.
        """
        return 2 * (srv_per_s + self.window_srv_per_s * share) + alerts_per_s

    def to_dict(self) -> dict[str, Any]:
        low, high = self.dlms_per_day
        return {"scheduled_srvs_per_day": self.srvs_per_day, "dlms_commands_per_srv": [self.dlms_min, self.dlms_max],
                "dlms_commands_per_day": [low, high], "window": {"start": self.start, "end": self.end,
                                                                 "seconds": self.window_s},
                "window_srv_per_s": self.window_srv_per_s, "per_slot": dict(self.per_slot),
                "trt_s": TRT_S, "tps_formula": TPS_FORMULA}


def _intervals(start: str, end: str) -> list[tuple[int, int]]:
    a, b = seconds_of_day(start), seconds_of_day(end)
    return [(a, b)] if a < b else [(a, 86400), (0, b)]


def _overlap(intervals: list[tuple[int, int]], bounds: tuple[int, int]) -> int:
    return sum(max(0, min(b, bounds[1]) - max(a, bounds[0])) for a, b in intervals)


def scheduled_load(inputs: Secmp0192Inputs) -> ScheduledLoad:
    """The executions per slot and per second of ``inputs`` (the window shared evenly over its seconds)."""
    w = inputs.execution_window
    intervals = _intervals(w.start, w.end)
    window_s = sum(b - a for a, b in intervals)
    n = inputs.scheduled_srvs_per_day
    per_slot = {slot: n * _overlap(intervals, bounds) / window_s for slot, bounds in _SLOT_BOUNDS.items()}
    return ScheduledLoad(n, inputs.dlms_commands_per_srv.min, inputs.dlms_commands_per_srv.max, w.start, w.end,
                         window_s, per_slot)


def plan_section(plan: Any) -> dict[str, Any]:
    """``plan``'s SECMP0192 figures (a :class:`~dcc_capacity.model.volume.VolumePlan` with ``secmp0192``).

    Per S1SP row (the total, and each named S1SP with its fleet share of the scheduled SRVs): the production
    TPS in the window's busiest slot, MP192-SA5's way, beside the 450 TPS; and the window's rate in the test
    environment (times the SP's test_scale) for the DSP, which creates the executions, and the S1SP rows.
    """
    load: ScheduledLoad = plan.secmp0192
    profile = plan.profile
    rows: list[tuple[str, str | None, float]] = [("S1SP", None, 1.0)]
    rows += [(f"S1SP/{name}", name, fleet) for name, (fleet, _) in plan.s1sp_shares.items()]
    tps: dict[str, Any] = {}
    for row, name, share in rows:
        best: dict[str, Any] | None = None
        for slot in load.slots():
            lo, hi = _SLOT_BOUNDS[slot]
            factor = profile.peak_to_average("S1SP", slot) / (hi - lo)  # production: no test_scale
            rates = {r: float(plan.a5.loc[r, slot]) * w * factor for r, w in plan.row_weights("S1SP", name).items()}
            alerts = rates.pop("alerts")
            other = sum(rates.values())
            value = load.tps(other, alerts, share)
            if best is None or value > best["tps"]:
                best = {"slot": slot, "srv_per_s": other, "alerts_per_s": alerts,
                        "scheduled_srv_per_s": load.window_srv_per_s * share, "tps": value}
        assert best is not None
        best.update(limit=MP192_SA5_TPS, within=best["tps"] <= MP192_SA5_TPS)
        tps[row] = best
    out = load.to_dict()
    out["test_env_window_srv_per_s"] = {sp: load.window_srv_per_s * profile.test_scale(sp) for sp in ("DSP", "S1SP")}
    out["tps"] = tps
    out["sources"] = {
        "scheduled_srvs_per_day": profile.source_of("secmp0192.scheduled_srvs_per_day") or "profile secmp0192",
        "dlms_commands_per_srv": profile.source_of("secmp0192.dlms_commands_per_srv") or "profile secmp0192",
        "execution_window": profile.source_of("secmp0192.execution_window") or "profile secmp0192",
        "tps": f"{TPS_FORMULA}; the S1SP's other traffic at its slot's peak (Table A7 before test_scale)",
        "limit": "SECMP0192 PIA MP192-SA5: Secure will continue to support the existing 450 TPS",
        "trt_s": "SECMP0192 PIA MP192-SA3: the TRT of these scheduled SRVs will be 24 hours",
    }
    return out
