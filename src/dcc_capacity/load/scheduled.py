"""The listener's book of DCC-scheduled executions (SECMP0192): which schedules this process created, and
what each execution's response measured.

Why a book apart from the RequestID map: a schedule is not one request awaiting one response. Its 5.1 is
answered at once (DSPScheduleID), then the DCC executes it daily, each execution answered at the creator's
callback. So its responses are correlated to the schedule (DSPScheduleID, and the 5.1's RequestID they echo:
:mod:`dcc_capacity.duis.scheduled`), never time out here (the 24 h bound is the report's NFR-0192-TRT), and
their TRT runs from the execution's due time, not from a send: (arrival - due) x the emulator's time scale,
so a compressed midnight reads on the schedule's clock. A response without a due stamp (a SUT that does not
give one) is correlated and counted, its TRT unmeasured (NaN).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dcc_capacity.duis.scheduled import (
    SCHEDULED_LABEL,
    read_due_stamp,
    read_request_id,
    read_schedule_id,
    read_variant,
)

__all__ = ["SCHEDULED_TYPE", "UNKNOWN_SCHEDULE", "ScheduleBook", "ScheduledResult"]

SCHEDULED_TYPE = "SCHEDULED"
"""The Locust request type of a scheduled response (name ``"<variant> scheduled"``, response time its TRT): not
``TRT``, which the live progress line, live NFRs and the web UI count as the user's SRVs' responses."""
UNKNOWN_SCHEDULE = "unknown DSPScheduleID"
"""How the error of a response not correlated to a schedule of this process begins (the report counts them)."""

_CODE = re.compile(rb"<(?:[\w.-]+:)?ResponseCode>\s*([^<\s]+)\s*</")
_NAN = float("nan")


@dataclass(slots=True)
class ScheduledResult:
    """One execution's response as the records keep it: a complete row of kind ``scheduled`` (no request row
    precedes it, and it is no request of the run: readers of the user's SRVs leave it out)."""

    request_id: str
    user_class: str
    srv_variant: str
    due_ts: float
    """Epoch s the execution was due (NaN: not stamped)."""
    trt_ms: float
    """(arrival - due) x time scale, ms on the schedule's clock (NaN: not stamped)."""
    response_code: str
    error: str
    """'' when correlated and answered with an I code; else why it is a failure."""
    known: bool
    """Correlated to a schedule this process created."""

    @property
    def label(self) -> str:
        return f"{self.srv_variant}{SCHEDULED_LABEL}"


class ScheduleBook:
    """DSPScheduleID -> (the 5.1's RequestID, user class) of the schedules this process created."""

    def __init__(self) -> None:
        self._schedules: dict[int, tuple[str, str]] = {}

    def __len__(self) -> int:
        return len(self._schedules)

    def expect(self, schedule_id: int, request_id: str, user_class: str = "") -> None:
        self._schedules[int(schedule_id)] = (request_id, user_class)

    def resolve(self, body: bytes, arrival: float, bad_signature: str = "") -> ScheduledResult:
        """The result of one scheduled response arriving at ``arrival`` (epoch s)."""
        rid, c = read_request_id(body), _CODE.search(body)
        code = c.group(1).decode("ascii", "replace") if c else ""
        sid = read_schedule_id(body)
        known = self._schedules.get(sid) if sid is not None else None
        stamp = read_due_stamp(body)
        due, trt_ms = (stamp[0], (arrival - stamp[0]) * stamp[1] * 1000) if stamp else (_NAN, _NAN)
        if bad_signature:
            error = bad_signature
        elif known is None or (rid and rid != known[0]):
            error = f"{UNKNOWN_SCHEDULE} {sid} (RequestID {rid or 'none'})"
        elif not code:
            error = "no ResponseCode in the response"
        elif not code.startswith("I"):
            error = f"response code {code}"
        else:
            error = ""
        return ScheduledResult(rid, known[1] if known else "", read_variant(body) or "scheduled", due, trt_ms,
                               code, error, known is not None and not (rid and rid != known[0]))
