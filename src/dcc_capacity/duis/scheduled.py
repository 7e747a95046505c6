"""A DCC-scheduled execution's response on the wire: how the listener knows it, its schedule, and when it was due.

Why: SECMP0192 makes 4.3 / 4.4.3 DCC-scheduled (5.1 Create Schedule); each execution's answer reaches the
Service User who created the schedule as a ``ResponseMessage`` carrying a ``DSPScheduledMessage``
{GBCSPayload, DSPScheduleID} (duis-request-shape.md 6.1). Its target response time (24 h, MP192-SA3) runs
from when the execution was due, which the DUIS response does not carry. The embedded emulator therefore
appends the due time as an XML comment after the signed root (outside the signature, which covers the root
element only, so the DCC signature is unchanged and still verifies): ``<!--dcc-capacity scheduled
due="<epoch s>" time_scale="<emulator s per real s>"-->``. ``time_scale`` is the emulator's compressed clock
(a midnight window crossed in seconds), so TRT = (arrival - due) x time_scale is on the schedule's clock.
A response without the stamp (a real SUT) is still recognised and correlated; its TRT is not measured.

Assumption (not in the seeds): the execution's response echoes the RequestID of the 5.1 that created the
schedule. That correlates it to its schedule beside the DSPScheduleID, and lets the callback relay route it
to the load process that created the schedule (orchestrate/relay.py routes on the RequestID's counter).
"""

from __future__ import annotations

import re

__all__ = ["MARKER", "SCHEDULED_LABEL", "due_stamp", "read_due_stamp", "read_request_id", "read_schedule_id",
           "read_variant"]

MARKER = b"DSPScheduledMessage"
"""In the body of, and only of, a DCC-scheduled execution's response."""

SCHEDULED_LABEL = " scheduled"
"""The suffix of a scheduled response's label in the records (``"4.3 scheduled"``): the report's SRV class
``scheduled`` (NFR-0192-TRT) is the rows with it."""

_STAMP = re.compile(rb'<!--dcc-capacity scheduled due="([0-9.]+)" time_scale="([0-9.e+-]+)"-->\s*$')
_SCHEDULE_ID = re.compile(rb"<(?:[\w.-]+:)?DSPScheduleID>\s*(\d+)\s*</")
_RID = re.compile(rb"<(?:[\w.-]+:)?RequestID>\s*([^<\s]+)\s*</")
_VARIANT = re.compile(rb"<(?:[\w.-]+:)?ServiceReferenceVariant>\s*([^<\s]+)\s*</")


def due_stamp(due_epoch: float, time_scale: float) -> bytes:
    """The comment the emulator appends to a signed scheduled response (see the module docstring)."""
    return b'<!--dcc-capacity scheduled due="%.6f" time_scale="%s"-->' % (due_epoch, repr(float(time_scale)).encode())


def read_due_stamp(body: bytes) -> tuple[float, float] | None:
    """(due epoch s, time scale) from a stamped response, or None (a real SUT's response carries none)."""
    m = _STAMP.search(body, max(0, len(body) - 200))
    if m is None:
        return None
    try:
        due, scale = float(m.group(1)), float(m.group(2))
    except ValueError:
        return None
    return (due, scale) if scale > 0 else None


def read_schedule_id(body: bytes) -> int | None:
    """The ``DSPScheduleID`` a scheduled response carries, or None."""
    m = _SCHEDULE_ID.search(body)
    return int(m.group(1)) if m else None


def read_variant(body: bytes) -> str:
    """The response's ``ServiceReferenceVariant`` (the scheduled SRV), or ''."""
    m = _VARIANT.search(body)
    return m.group(1).decode("ascii", "replace") if m else ""


def read_request_id(body: bytes) -> str:
    """The response's ``RequestID`` (a 5.1's, or the one a scheduled response echoes), or ''."""
    m = _RID.search(body)
    return m.group(1).decode("ascii", "replace") if m else ""
