"""NegativeCases: the Locust user of ``run --test negative``, sending the DUIS negative cases in turn.

Each arrival is one instance of one case (round robin, so a short run still
sends every case): the request wrong in the case's way (``negbuild``), sent
through the same open-model steps as the load, so its ack and TRT are
measured like any other request and land in the records. The journey then
judges the answer against what DUIS requires (``negcases``) and writes the
verdict line. Records keep the SUT's answer as it came (an E42 is an
``error`` row there); whether that answer was the *required* one is the
verdict's business.
"""

from __future__ import annotations

import math
import time
from collections.abc import Generator
from dataclasses import replace
from typing import Any, ClassVar

from dcc_capacity.duis.factory import SignedRequest
from dcc_capacity.load.openmodel import Step, StepResult
from dcc_capacity.load.users.base import DuisUser, Journey
from dcc_capacity.testtypes.negative import build as nb
from dcc_capacity.testtypes.negative.cases import (
    Verdict,
    VerdictWriter,
    ack_code,
    judge_alert,
    judge_code,
    judge_no_code,
)

__all__ = ["NegativeCases", "DUIS_CASES"]

DUIS_CASES: tuple[str, ...] = ("NEG-811-JOIN", "NEG-NO-CODE", "NEG-S1-COMBO", "NEG-0192-S2", "NEG-ROLE", "NEG-SIG",
                               "NEG-REPLAY")
"""The cases this user sends (NEG-FALLOUT / NEG-REPROCESS go over SFTP: testtypes/negative/migrations.py)."""
_HEADERS = {"Content-Type": "application/xml"}
_SERVICE = {1: "S", 5: "S", 4: "T", 2: "D", 6: "D", 8: "D"}
_Sent = Generator[Step, StepResult, StepResult]
"""One request sent: the open model always sends its result back (a journey may end without one)."""
_writers: dict[str, VerdictWriter] = {}


def _ms(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 3)


class NegativeCases(DuisUser):
    """One case instance per arrival, the cases in turn; its rate is the shape's ``NegativeCases`` rate."""

    abstract = False
    retries: ClassVar[int | None] = 0
    cases: ClassVar[tuple[str, ...]] = DUIS_CASES

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self._turn = 0
        run_dir = self.ctx.config.run_dir
        key = str(run_dir)
        if key not in _writers:
            _writers[key] = VerdictWriter(run_dir)
        self.verdicts = _writers[key]

    def journey(self) -> Journey:
        case = self.cases[self._turn % len(self.cases)]
        self._turn += 1
        handlers = {"NEG-811-JOIN": self._811_join, "NEG-NO-CODE": self._no_code, "NEG-S1-COMBO": self._s1_combo,
                    "NEG-0192-S2": self._0192_s2, "NEG-ROLE": self._role, "NEG-SIG": self._sig,
                    "NEG-REPLAY": self._replay}
        yield from handlers[case]()
        return None

    # -- one exchange --------------------------------------------------------------------
    def _send(self, case: str, req: SignedRequest, expect_callback: bool = True, part: str = "") -> _Sent:
        # Every device request expects its callback, even one that should be refused: a SUT that wrongly
        # accepts it then answers a RequestID the listener knows, instead of an "unknown RequestID".
        label = f"{case}{' ' + part if part else ''} {req.variant}"
        res = yield Step(label, self.kit.paths[_SERVICE[req.command_variant]], body=req.body, headers=_HEADERS,
                         request_id=req.request_id, expect_callback=expect_callback, srv_variant=req.variant)
        return res

    def _sync_case(self, case: str, req: SignedRequest, expected: str) -> Journey:
        self.verdicts.sent(case, req.request_id)
        res = yield from self._send(case, req, expect_callback=req.command_variant in (1, 5))
        ack = ack_code(res.ack_code, res.ack_body)
        self.verdicts.verdict(judge_code(case, expected, ack, ack_ms=_ms(res.ack_ms), request_id=req.request_id))
        return res

    # -- the cases -------------------------------------------------------------------------
    def _811_join(self) -> Journey:
        """Alternately > 255 s (async E081101 required) and = 255 s (async I0 required), on SMETS1 CHFs."""
        high = self._turn // len(self.cases) % 2 == 0
        req = nb.join_time(self.kit.factory, self.kit.installation(self.rng, smets=1), 300 if high else 255)
        self.verdicts.sent("NEG-811-JOIN", req.request_id)
        res = yield from self._send("NEG-811-JOIN", req, part=">255" if high else "<=255")
        ack = ack_code(res.ack_code, res.ack_body)
        async_code = res.response_code if res.callback_body else None
        v = judge_code("NEG-811-JOIN", "I99", ack, expected_async="E081101" if high else "I0", async_code=async_code,
                       ack_ms=_ms(res.ack_ms), trt_ms=_ms(res.trt_ms), request_id=req.request_id)
        self.verdicts.verdict(replace(v, exercised=high))  # the case is about the > 255 s path
        return res

    def _no_code(self) -> Journey:
        req = nb.no_code(self.kit.factory, self.kit.installation(self.rng))
        self.verdicts.sent("NEG-NO-CODE", req.request_id)
        res = yield from self._send("NEG-NO-CODE", req)
        ack = ack_code(res.ack_code, res.ack_body)
        self.verdicts.verdict(judge_no_code(ack, res.response_code, res.outcome, ack_ms=_ms(res.ack_ms),
                                            trt_ms=_ms(res.trt_ms), request_id=req.request_id))
        return res

    def _s1_combo(self) -> Journey:
        req = nb.s1_combo(self.kit.factory, self.kit.installation(self.rng, smets=1, prepay=True))
        self.verdicts.sent("NEG-S1-COMBO", req.request_id)
        res = yield from self._send("NEG-S1-COMBO", req)  # the alert carries this RequestID
        ack = ack_code(res.ack_code, res.ack_body)
        self.verdicts.verdict(judge_alert(ack, res.callback_body, res.outcome, ack_ms=_ms(res.ack_ms),
                                          trt_ms=_ms(res.trt_ms), request_id=req.request_id))
        return res

    def _0192_s2(self) -> Journey:
        req = nb.smets2_0192(self.kit.factory, self.kit.installation(self.rng, smets=2), self.rng)
        return (yield from self._sync_case("NEG-0192-S2", req, "E050110"))

    def _role(self) -> Journey:
        req = nb.ineligible_role(self.kit.factory, self.kit.installation(self.rng))
        return (yield from self._sync_case("NEG-ROLE", req, "E2"))

    def _sig(self) -> Journey:
        req = nb.bad_signature(self.kit.factory, self.kit.installation(self.rng))
        return (yield from self._sync_case("NEG-SIG", req, "E42"))

    def _replay(self) -> Journey:
        """The original must be accepted (I0); the same bytes again must be refused E44 (the error path timed)."""
        req = nb.replay_original(self.kit.factory, self.kit.installation(self.rng))
        self.verdicts.sent("NEG-REPLAY", req.request_id)
        first = yield from self._send("NEG-REPLAY", req, expect_callback=False, part="original")
        first_ack = ack_code(first.ack_code, first.ack_body)
        again = yield from self._send("NEG-REPLAY", req, expect_callback=False, part="replay")
        ack = ack_code(again.ack_code, again.ack_body)
        ms = _ms(again.ack_ms)
        self.verdicts.verdict(Verdict("NEG-REPLAY", "original I0, replay E44", f"original {first_ack}, replay {ack}",
                                      first_ack == "I0" and ack == "E44", req.request_id, ms, ms, ts=time.time()))
        return again
