"""DuisUser: an open-model user that sends signed DUIS SRVs and follows the DUIS flow of each one.

One SRV becomes the steps the real process needs (see docs/running.md):

- a device SRV (CV 1) goes to serviceS, is acknowledged ``I99`` and is done
  when the async response reaches this process's callback listener (TRT);
- a critical SRV goes as CV 4 to serviceT, whose synchronous answer carries
  the Pre-Command; it is parsed, signed and sent back as CV 5 to serviceS with
  the same RequestID, then waits for the async response;
- a non-device SRV (CV 8) goes to serviceD and is answered synchronously.

Ack bodies are classified by their DUIS ResponseCode with one regex (no XML
parse on the hot path): ``I0``/``I99`` ok, ``E47`` (SECMP0067) or HTTP 429
throttled, any other ``E…`` an error.
"""

from __future__ import annotations

import random
import re
from collections.abc import Generator
from pathlib import Path
from typing import Any, ClassVar

from dcc_capacity.duis.responses import ResponseParseError, parse_response
from dcc_capacity.errors import InputError
from dcc_capacity.load.openmodel import OpenModelUser, Step, StepResult
from dcc_capacity.load.response_check import check_signature
from dcc_capacity.load.users.kit import Kit, get_kit
from dcc_capacity.model.catalogue import get_srv
from dcc_capacity.model.fleet import Installation

__all__ = ["DuisUser", "THROTTLE_CODES", "classify_duis_ack"]

_CODE = re.compile(rb"<(?:[\w.-]+:)?ResponseCode>\s*([^<\s]+)\s*</")
_PRECOMMAND = re.compile(rb"<(?:[\w.-]+:)?PreCommand[\s>]")
THROTTLE_CODES = frozenset({"E47"})
_HEADERS = {"Content-Type": "application/xml"}

Journey = Generator[Step, StepResult, StepResult | None]


def classify_duis_ack(status: int, body: bytes,
                      throttle_statuses: frozenset[int] = frozenset({429})) -> tuple[str, str]:
    """(outcome, error) of a synchronous DUIS answer from its HTTP status and ResponseCode."""
    m = _CODE.search(body) if body else None
    code = m.group(1).decode("ascii", "replace") if m else ""
    if status in throttle_statuses or code in THROTTLE_CODES:
        return "throttled", f"HTTP {status} {code}".strip()
    if code.startswith("E"):
        return "error", code
    if status >= 400 or status == 0:
        return "error", f"HTTP {status}"
    if code and not code.startswith("I"):
        return "error", f"unexpected ResponseCode {code}"
    if not code and body and body.lstrip().removeprefix(b"\xef\xbb\xbf")[:1] != b"<":
        # A 2xx that is not XML (an HTML error page, a proxy's text) is no DUIS ack: an error that says so,
        # not an "ok" that would count towards the achieved rate.
        return "error", f"the answer is not XML (not a DUIS response): {body[:40]!r}"
    return "ok", ""


class DuisUser(OpenModelUser):
    """Abstract: subclasses implement :meth:`journey` (a generator of SRVs via :meth:`srv`)."""

    abstract = True
    retries: ClassVar[int | None] = None
    """Extra attempts of a failed SRV before the journey ends (None: ``--step-retries``, default 0)."""

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.kit: Kit = get_kit(environment.parsed_options)
        self.rng = random.Random(self.seed)
        self._register_listener()

    def _register_listener(self) -> None:
        """With ``--callback-registry DIR`` (a relay in front: orchestrate/relay.py): say where this process listens."""
        folder = getattr(self.environment.parsed_options, "callback_registry", "") or ""
        listener = self.ctx.callbacks
        if not folder or listener is None or self.kit.extra.get("registered"):
            return
        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        tmp = path / f".{self.kit.factory.allocator.slot}.tmp"
        tmp.write_text(listener.url)
        tmp.replace(path / f"{self.kit.factory.allocator.slot}.url")
        self.kit.extra["registered"] = True

    def classify_ack(self, step: Step, status: int, body: bytes) -> tuple[str, str]:
        outcome, why = classify_duis_ack(status, body, self.throttle_codes)
        if outcome == "ok" and step.label.endswith(" CV4") and not _PRECOMMAND.search(body):
            # No CV 5 can follow: the CV 4 step (and with it the SRV attempt) failed, and the record says so.
            return "error", "no PreCommand in the CV 4 answer"
        trust = self.ctx.response_trust
        if trust is not None and outcome == "ok" and step.path != self.kit.paths["S"]:
            # CV 4 (serviceT) and CV 2/6/8 (serviceD) answers carry the outcome itself: the DCC must have signed it.
            bad = check_signature(body, trust)
            if bad:
                return "error", bad
        return outcome, why

    def arrival(self) -> Journey:
        return self.journey()

    def journey(self) -> Journey:
        raise NotImplementedError

    # -- one SRV, with the steps the DUIS flow needs ---------------------------------------------
    def srv(self, variant: str, inst: Installation, *, final: bool = False, **build: Any) -> Journey:
        """Steps of one SRV for ``inst`` (``yield from``); returns the final StepResult, retried as configured.

        ``final``: nothing after this SRV looks at its async response (a single-SRV arrival), so without retries the
        arrival ends at the acknowledgement and the result is ``pending``; the listener completes the record.
        """
        attempts = max(1, 1 + (self.kit.retries if self.retries is None else self.retries))
        needs_response = not final or attempts > 1  # a retry must know whether the response was a failure
        res: StepResult | None = None
        for _ in range(attempts):
            res = yield from self._srv_once(variant, inst, needs_response, **build)
            if res is None or res.ok:
                return res
        return res

    def _srv_once(self, variant: str, inst: Installation, needs_response: bool, **build: Any) -> Journey:
        kit = self.kit
        try:
            req = kit.factory.build(variant, inst, **build)
        except InputError:  # the installation lacks the device this SRV targets (e.g. no GSME): skip it
            return None
        cv = req.command_variant
        if cv == 4:
            res = yield Step(f"{variant} CV4", kit.paths["T"], body=req.body, headers=_HEADERS,
                             request_id=req.request_id, srv_variant=variant, smets=inst.smets, prepay=inst.prepay)
            if not res.ok:
                return res
            try:
                parsed = parse_response(res.ack_body)
            except ResponseParseError as exc:
                res.outcome, res.error = "error", f"unreadable PreCommand: {exc}"
                return res
            if parsed.payload_kind != "PreCommand" or not parsed.gbcs_payload:
                res.outcome, res.error = "error", f"no PreCommand in the CV 4 answer ({parsed.payload_kind})"
                return res
            cv5 = kit.factory.signed_precommand(req.request_id, variant, parsed.gbcs_payload)
            res5 = yield Step(f"{variant} CV5", kit.paths["S"], body=cv5.body, headers=_HEADERS,
                              request_id=req.request_id, expect_callback=True, srv_variant=variant,
                              smets=inst.smets, prepay=inst.prepay, needs_response=needs_response)
            res5.extra["precommand"] = parsed
            return res5
        if cv in (2, 6, 8):
            return (yield Step(variant, kit.paths["D"], body=req.body, headers=_HEADERS, request_id=req.request_id,
                               srv_variant=variant, smets=inst.smets, prepay=inst.prepay))
        return (yield Step(variant, kit.paths["S"], body=req.body, headers=_HEADERS, request_id=req.request_id,
                           expect_callback=True, srv_variant=variant, smets=inst.smets, prepay=inst.prepay,
                           needs_response=needs_response))

    @staticmethod
    def is_critical(variant: str) -> bool:
        srv = get_srv(variant)
        return bool(srv and srv.critical)
