"""The response of each SECMP0192 scheduled execution, POSTed to the user who created the schedule.

Why: the 24 h TRT of scheduled SRVs (MP192-SA3) is a promise to the Service User, so it is measured where
the user receives the response: the suite's callback listener. Each execution's answer is built like the
emulator's other async responses (``ResponseMessage``, signed by the DCC key, open to the ``tamper_responses``
fault) with the ``DSPScheduledMessage`` payload {GBCSPayload, DSPScheduleID}, the 5.1's RequestID echoed,
and the execution's due time stamped after the signed root (:mod:`dcc_capacity.duis.scheduled`). It goes
through the emulator's :class:`~.delivery.CallbackSender` as kind ``scheduled`` (SRV class ``scheduled``
in ``/metrics``), so TPS counts it as a response when the callback takes it.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from dcc_capacity.duis.responses import ResponseSigner, build_response, payload_dsp_scheduled_message
from dcc_capacity.duis.scheduled import due_stamp
from dcc_capacity.emulator import codes as C
from dcc_capacity.emulator.delivery import CallbackSender, Delivery
from dcc_capacity.emulator.faults import Faults, tamper
from dcc_capacity.emulator.metrics import Metrics
from dcc_capacity.emulator.schedules import Schedule
from dcc_capacity.model.catalogue import get_srv

__all__ = ["ScheduledResponses"]

SRV_CLASS = "scheduled"


class ScheduledResponses:
    """``send(schedule, due_epoch)``: queue one execution's signed response for its creator's callback."""

    def __init__(self, *, signer: ResponseSigner, sender: CallbackSender, callback_for: Callable[[str], str | None],
                 metrics: Metrics, faults: Faults, rng: random.Random, time_scale: float) -> None:
        self.signer = signer
        self.sender = sender
        self.callback_for = callback_for
        self.metrics = metrics
        self.faults = faults
        self.rng = rng
        self.time_scale = time_scale

    def send(self, schedule: Schedule, due_epoch: float) -> bool:
        """False when the creator has no callback URL (counted ``callbacks_failed``: nowhere to send it)."""
        url = self.callback_for(schedule.originator) if schedule.originator else None
        if url is None:
            self.metrics.inc(SRV_CLASS, "callbacks_failed")
            return False
        gbcs = b"\xdd\x00" + self.rng.randbytes(30)  # the device's answer: opaque here, as for every device SRV
        stamp = due_stamp(due_epoch, self.time_scale)

        def build() -> bytes:
            srv = get_srv(schedule.variant)
            ref = srv.reference if srv is not None else schedule.variant
            signed = build_response(signer=self.signer, response_code=C.I0, srv=ref, srv_variant=schedule.variant,
                                    request_id=schedule.request_id or None,
                                    payload=payload_dsp_scheduled_message(gbcs, schedule.schedule_id),
                                    schema_version=schedule.schema_version)
            if self.faults.tamper():  # the tamper_responses fault, as for every signed answer
                self.metrics.inc(SRV_CLASS, "tampered")
                signed = tamper(signed)
            return signed + stamp

        self.metrics.code(C.I0)
        self.sender.put(Delivery(url, build, SRV_CLASS, kind=SRV_CLASS))
        return True
