"""The callback listener: where the SUT POSTs async DUIS responses and alerts, and TRT is measured.

Each Locust process that runs users runs one listener (a lean HTTP/1.1
server on httptools, :mod:`dcc_capacity.load.postserver`, on 127.0.0.1 by
default, TCP_NODELAY set on every accepted socket so small responses are not
held back by Nagle + delayed ACK). A sender registers the
RequestID it is about to send with :meth:`CallbackListener.expect`; when a
POST arrives the listener takes the RequestID out of the bytes with one regex
(no XML parse on the hot path), stamps the arrival time, and:

- records TRT = arrival - intended send time, in Locust's stats as
  request_type ``TRT``, name ``"<label> TRT"`` and in the run's records;
- wakes whoever waits for the response (a journey's next step);
- a response after ``late_after_s`` is a failure ``late`` (with its real TRT);
- a response with an ``E`` code, or with no ResponseCode at all, is an ``error``;
- no response after ``missing_after_s``: a failure ``missing`` with
  response_time = the timeout (a floor, not a measurement: it counts in the
  TRT percentiles as "at least the timeout", in Locust's stats and with
  ``trt_ms`` = the timeout in the records), found by a sweeper greenlet, so
  nobody has to be waiting for it;
- a scheduled execution's response (SECMP0192) is correlated to a schedule registered with
  :meth:`CallbackListener.expect_schedule`, timed and recorded as ``"<variant> scheduled"`` (:mod:`.scheduled`),
  apart from the SRVs the user sent: a record row of kind ``scheduled`` and Locust request type ``SCHEDULED``;
- a RequestID nobody expects is counted (``unknown``) and shown as a
  ``CALLBACK`` / ``unknown RequestID`` failure; a body without a RequestID is
  an alert (request_type ``ALERT``);
- with a ``trust`` store (``--response-cert``) every response and alert must
  carry a valid DCC signature: a bad one is an ``error`` whose reason starts
  with ``bad response signature:`` (the TRT is still measured).

With an ``ssl_context`` the listener serves HTTPS (and, when the context
requires them, only to clients with a certificate: mutual TLS). Transports
that are not an HTTP callback (an SFTP outcome file, a queue) hand their
answers in through :meth:`CallbackListener.resolve`.

Nothing is dropped: every expected RequestID ends as ok, error, late or missing.
"""

from __future__ import annotations

import heapq
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gevent
from gevent.event import AsyncResult

from dcc_capacity.duis.scheduled import MARKER
from dcc_capacity.load.callbackresult import (
    CallbackResult,
    LateResponse,
    MissingResponse,
    UnknownRequestId,
    censored_ms,
)
from dcc_capacity.load.postserver import PostServer
from dcc_capacity.load.recordformat import SCHEDULED_KIND
from dcc_capacity.load.response_check import BAD_SIGNATURE, BadResponseSignature, check_signature
from dcc_capacity.load.scheduled import SCHEDULED_TYPE, ScheduleBook

if TYPE_CHECKING:
    import ssl

    from locust.env import Environment

    from dcc_capacity.duis.verify import TrustStore
    from dcc_capacity.load.records import RecordWriter

__all__ = ["CallbackListener", "CallbackResult", "LateResponse", "MissingResponse", "Pending", "UnknownRequestId",
           "censored_ms"]

log = logging.getLogger(__name__)

_RID = re.compile(rb"<(?:[\w.-]+:)?RequestID>\s*([^<\s]+)\s*</")
_CODE = re.compile(rb"<(?:[\w.-]+:)?ResponseCode>\s*([^<\s]+)\s*</")


# One awaited response in the correlation map: a plain tuple of str / float / int / bool. CPython's collector
# untracks such tuples, so tens of thousands outstanding add nothing to a full collection (a slotted object per
# entry did: 60,000 awaited made every full collection ~150 ms, and every request due meanwhile went out late).
_LABEL, _INTENDED, _CLASS, _SRV, _STEP, _ARRIVAL, _DEADLINE, _CLAIM = range(8)
Entry = tuple  # (label, intended_ts, user_class, srv_variant, step, arrival, deadline, claim)


@dataclass(slots=True)
class Pending:
    """A handle on one expected async response (the listener keeps the entry, not this object).

    Whoever needs the answer blocks in :meth:`wait` or leaves a function with :meth:`when_done` (a journey parked
    as a continuation); a single SRV nobody waits for needs neither: the listener closes its books alone.
    """

    listener: CallbackListener
    request_id: str

    def wait(self, timeout: float | None = None) -> CallbackResult:
        """The result; the listener always resolves it by ``missing_after_s``, so no timeout is needed."""
        event: AsyncResult = AsyncResult()
        self.listener.when_done(self.request_id, event.set)
        return event.get(timeout=timeout)

    def when_done(self, fn: Callable[[CallbackResult], None]) -> None:
        self.listener.when_done(self.request_id, fn)


class CallbackListener:
    """Receives async responses for one Locust process; see the module docstring for the rules.

    ``environment`` (optional) is where the TRT/ALERT/CALLBACK request events
    go; ``records`` (optional) receives one ``callback`` row per resolution.
    """

    def __init__(self, environment: Environment | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 late_after_s: float = 30.0, missing_after_s: float = 120.0, records: RecordWriter | None = None,
                 sweep_interval: float = 0.2, max_body: int = 1 << 20, ssl_context: ssl.SSLContext | None = None,
                 trust: TrustStore | None = None) -> None:
        if missing_after_s < late_after_s:
            raise ValueError("missing_after_s must be >= late_after_s")
        self.environment = environment
        self.host = host
        self.late_after_s = late_after_s
        self.missing_after_s = missing_after_s
        self.records = records
        self.sweep_interval = sweep_interval
        self.max_body = max_body
        self.trust = trust
        self.scheme = "https" if ssl_context is not None else "http"
        self._pending: dict[str, Entry] = {}
        self._deadlines: list[tuple[float, str]] = []
        self._expired: OrderedDict[str, Entry] = OrderedDict()
        self._waiters: dict[str, Callable[[CallbackResult], None]] = {}
        """Who goes on when a response comes: parked journeys, blocked waiters (few; single SRVs have none)."""
        self._settled: OrderedDict[str, CallbackResult] = OrderedDict()
        """Claimed results that came before anyone asked (a SUT may answer before the sender read its ack)."""
        self.on_outcome: Callable[[str, str], None] | None = None
        """Called with (user_class, outcome) for every expected response resolved (the run's achieved counts)."""
        self.counts = {"received": 0, "ok": 0, "error": 0, "late": 0, "missing": 0, "unknown": 0, "alerts": 0,
                       "after_missing": 0, "bad_signature": 0, "scheduled": 0, "scheduled_failed": 0,
                       "unknown_schedule": 0}
        """``ok`` ... ``missing``: expected RequestIDs; ``scheduled*``: SECMP0192 executions (``_on_scheduled``)."""
        self.schedules = ScheduleBook()
        """The SECMP0192 schedules this process created (:meth:`expect_schedule`)."""
        self.refused = 0
        """Connections whose TLS handshake failed (mutual TLS: no or an untrusted client certificate)."""
        self._server = PostServer((host, port), self._on_posts, on_refused=self._refused, max_body=max_body,
                                  ssl_context=ssl_context)
        self._sweeper: gevent.Greenlet | None = None

    # -- lifecycle --------------------------------------------------------
    def start(self) -> CallbackListener:
        self._server.start()
        self._sweeper = gevent.spawn(self._sweep_loop)
        return self

    def stop(self) -> None:
        """Stop listening. Still-pending requests stay pending (call :meth:`expire_all` first to close them)."""
        if self._sweeper is not None:
            self._sweeper.kill(block=False)
            self._sweeper = None
        self._server.stop(timeout=1)

    @property
    def port(self) -> int:
        return self._server.server_port

    @property
    def url(self) -> str:
        """The URL the SUT POSTs responses to, e.g. ``http://127.0.0.1:40123/`` (``https`` with TLS)."""
        return f"{self.scheme}://{self.host}:{self.port}/"

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    # -- the sender's side ------------------------------------------------
    def expect(self, request_id: str, *, label: str, intended_ts: float, user_class: str = "",
               srv_variant: str = "", step: int = 0, arrival: int = -1, claim: bool = True) -> Pending:
        """Register a RequestID before sending it (so a fast response can never beat the registration).

        ``claim``: somebody will ask for the result (:meth:`when_done`, :meth:`Pending.wait`), so one that comes
        before they ask is kept for them. False for a request whose response nobody looks at.
        """
        deadline = time.time() + self.missing_after_s
        self._pending[request_id] = (label, intended_ts, user_class, srv_variant, step, arrival, deadline, claim)
        heapq.heappush(self._deadlines, (deadline, request_id))
        return Pending(self, request_id)

    def expect_schedule(self, schedule_id: int, request_id: str, *, user_class: str = "") -> None:
        """A 5.1 this process sent created ``schedule_id``: its executions' responses are correlated to it."""
        self.schedules.expect(schedule_id, request_id, user_class)

    def when_done(self, request_id: str, fn: Callable[[CallbackResult], None]) -> None:
        """Call ``fn(result)`` when the response to ``request_id`` is resolved, or now if it already was."""
        done = self._settled.pop(request_id, None)
        if done is not None:
            self._call(fn, request_id, done)
        elif request_id in self._pending:
            self._waiters[request_id] = fn
        else:  # never expected, cancelled, or resolved unclaimed long ago: nothing will come
            self._call(fn, request_id, CallbackResult("missing"))

    def cancel(self, request_id: str) -> None:
        """Forget an expectation whose request never reached the SUT (send failed): nothing to wait for."""
        self._pending.pop(request_id, None)
        self._waiters.pop(request_id, None)

    # -- the SUT's side ---------------------------------------------------
    def _on_posts(self, bodies: list[bytes | None]) -> list[int]:
        arrival = time.time()  # one stamp for what a client pipelined together: it arrived together
        statuses = []
        for body in bodies:
            if body is None:
                statuses.append(405)
                continue
            self.on_body(body, arrival)
            statuses.append(200)
        return statuses

    def _refused(self, address: Any, exc: BaseException) -> None:
        self.refused += 1
        if self.refused <= 10 or self.refused % 1000 == 0:
            log.warning("refused a callback connection from %s: %s (%d so far)", address, exc, self.refused)

    def on_body(self, body: bytes, arrival_ts: float | None = None) -> None:
        """Handle one async message (public so other transports, e.g. a queue, can feed the listener)."""
        arrival = time.time() if arrival_ts is None else arrival_ts
        self.counts["received"] += 1
        bad = check_signature(body, self.trust) if self.trust is not None else ""
        if MARKER in body:
            self._on_scheduled(body, arrival, bad)
            return
        m = _RID.search(body)
        if m is None:
            self.counts["alerts"] += 1
            if bad:
                self.counts["bad_signature"] += 1
            self._fire("ALERT", "alert", 0.0, len(body), BadResponseSignature(bad) if bad else None)
            if self.records is not None:
                self.records.write(kind="alert", callback_ts=arrival, outcome="error" if bad else "ok", error=bad)
            return
        c = _CODE.search(body)
        code = c.group(1).decode("ascii", "replace") if c else ""
        self.resolve(m.group(1).decode("ascii", "replace"), body, code, arrival_ts=arrival, error=bad)

    def resolve(self, request_id: str, body: bytes = b"", response_code: str = "", *,
                arrival_ts: float | None = None, error: str = "") -> None:
        """The async answer to ``request_id`` arrived (``error``: it is a failure for that reason, e.g. a bad
        signature or a rejected file); the outcome follows the module docstring's rules."""
        arrival = time.time() if arrival_ts is None else arrival_ts
        rid, code = request_id, response_code
        if error.startswith(BAD_SIGNATURE):
            self.counts["bad_signature"] += 1
        p = self._pending.pop(rid, None)
        if p is None:
            late = self._expired.pop(rid, None)
            if late is not None:  # came after we had declared it missing: keep the real TRT in the records
                self.counts["after_missing"] += 1
                self._record(rid, late, arrival, (arrival - late[_INTENDED]) * 1000, code, "late",
                             f"arrived after {self.missing_after_s:g} s (already counted missing)")
                return
            self.counts["unknown"] += 1
            self._fire("CALLBACK", "unknown RequestID", 0.0, len(body), UnknownRequestId(rid))
            return
        trt_ms = (arrival - p[_INTENDED]) * 1000
        exc: Exception | None
        if error:
            outcome, exc = "error", (BadResponseSignature(error) if error.startswith(BAD_SIGNATURE)
                                     else Exception(error))
        elif trt_ms > self.late_after_s * 1000:
            outcome, exc = "late", LateResponse(f"TRT {trt_ms / 1000:.1f} s > {self.late_after_s:g} s")
        elif code.startswith("E"):
            outcome, exc = "error", Exception(f"response code {code}")
        elif not code:  # a response without ResponseCode (a failure the seeds report) is never a success
            outcome, exc = "error", Exception("no ResponseCode in the response")
        else:
            outcome, exc = "ok", None
        self.counts[outcome] += 1
        self._fire("TRT", f"{p[_LABEL]} TRT", trt_ms, len(body), exc)
        self._record(rid, p, arrival, trt_ms, code, outcome, str(exc) if exc else "")
        self._settle(rid, p, CallbackResult(outcome, body, arrival, trt_ms, code))

    def _on_scheduled(self, body: bytes, arrival: float, bad: str) -> None:
        """A DCC-scheduled execution's response: the DCC's work, not an SRV this process sent.

        So it is kept apart from the user's SRVs everywhere they are counted: its own counters (not ``ok`` /
        ``error``), its own Locust request type ``SCHEDULED`` (not ``TRT``: the live progress line, the live NFRs
        and the web UI's rates read ``ACK`` / ``TRT`` / ``DROPPED``), and record rows of kind ``scheduled`` (not
        ``request``: run.json's rates and the report's SRV totals read request rows; the report reads these for
        SRV class ``scheduled``, TPS and its SECMP0192 section).
        """
        r = self.schedules.resolve(body, arrival, bad)
        for key, hit in (("scheduled", True), ("scheduled_failed", bool(r.error)), ("bad_signature", bool(bad)),
                         ("unknown_schedule", not r.known)):
            self.counts[key] += hit
        exc = None if not r.error else BadResponseSignature(bad) if bad else (
            Exception(r.error) if r.known else UnknownRequestId(r.error))
        self._fire(SCHEDULED_TYPE, r.label, 0.0 if r.trt_ms != r.trt_ms else r.trt_ms, len(body), exc)
        if self.records is not None:
            self.records.write(kind=SCHEDULED_KIND, request_id=r.request_id, user_class=r.user_class,
                               srv_variant=r.srv_variant, label=r.label, intended_ts=r.due_ts, callback_ts=arrival,
                               trt_ms=r.trt_ms, response_code=r.response_code, outcome="error" if r.error else "ok",
                               error=r.error)

    def _settle(self, rid: str, entry: Entry, result: CallbackResult) -> None:
        if self.on_outcome is not None:
            self.on_outcome(entry[_CLASS], result.outcome)
        fn = self._waiters.pop(rid, None)
        if fn is not None:
            self._call(fn, rid, result)
        elif entry[_CLAIM]:
            self._settled[rid] = result
            if len(self._settled) > 10_000:  # a claimant gone (its greenlet killed): do not keep its result forever
                self._settled.popitem(last=False)

    @staticmethod
    def _call(fn: Callable[[CallbackResult], None], rid: str, result: CallbackResult) -> None:
        try:
            fn(result)
        except Exception:  # the waiter's bug, never the listener's
            log.exception("handling the response to %s failed", rid)

    # -- timeouts ---------------------------------------------------------
    def _sweep_loop(self) -> None:
        while True:
            gevent.sleep(self.sweep_interval)
            self.expire(time.time())

    def expire(self, now: float) -> int:
        """Declare every expectation whose deadline is before ``now`` missing; returns how many."""
        n = 0
        dl = self._deadlines
        while dl and dl[0][0] <= now:
            deadline, rid = heapq.heappop(dl)
            p = self._pending.get(rid)
            if p is None or p[_DEADLINE] != deadline:
                continue  # resolved, or superseded by a later expect() of the same id
            del self._pending[rid]
            self._declare_missing(rid, p)
            n += 1
        return n

    def expire_all(self) -> int:
        """Declare missing every expectation already past its deadline (the rest stay awaited)."""
        return self.expire(time.time())

    def close_all(self, reason: str) -> int:
        """End of the drain: every response still awaited is ``missing`` (``reason`` says why), none left pending.

        A request that is still pending when the books close would otherwise drop out of the TRT percentiles
        unseen; counted as missing it weighs as the timeout, like every other response that never came.
        """
        left = list(self._pending.items())
        self._pending.clear()
        self._deadlines.clear()
        for rid, p in left:
            self._declare_missing(rid, p, reason)
        return len(left)

    def _declare_missing(self, rid: str, p: Entry, reason: str = "") -> None:
        """A response that never came counts in TRT percentiles as the timeout (censored: its TRT is longer).

        Without that, percentiles of the answered requests alone would improve as a SUT loses more responses.
        """
        self.counts["missing"] += 1
        ms = self.missing_after_s * 1000
        exc = MissingResponse(reason or f"no async response within {self.missing_after_s:g} s")
        self._fire("TRT", f"{p[_LABEL]} TRT", censored_ms(ms), 0, exc)
        self._record(rid, p, float("nan"), ms, "", "missing", str(exc))
        self._expired[rid] = p
        if len(self._expired) > 100_000:
            self._expired.popitem(last=False)
        self._settle(rid, p, CallbackResult("missing"))

    # -- outputs ----------------------------------------------------------
    def _fire(self, rtype: str, name: str, ms: float, length: int, exc: BaseException | None) -> None:
        if self.environment is not None:
            self.environment.events.request.fire(request_type=rtype, name=name, response_time=ms,
                                                 response_length=length, exception=exc, context={})

    def _record(self, rid: str, p: Entry, arrival: float, trt_ms: float, code: str, outcome: str,
                error: str) -> None:
        if self.records is not None:
            self.records.write_callback(rid, p[_CLASS], p[_SRV], p[_LABEL], p[_ARRIVAL], p[_STEP], p[_INTENDED],
                                        arrival, trt_ms, code, outcome, error)
