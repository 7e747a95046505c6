"""The callback listener: where the SUT POSTs async DUIS responses and alerts, and TRT is measured.

Each Locust process that runs users runs one listener (gevent's WSGI server,
on 127.0.0.1 by default, TCP_NODELAY set on every accepted socket so small
responses are not held back by Nagle + delayed ACK). A sender registers the
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

import contextlib
import heapq
import logging
import re
import socket
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gevent
from gevent.event import AsyncResult
from gevent.pywsgi import WSGIServer

from .response_check import BAD_SIGNATURE, BadResponseSignature, check_signature

if TYPE_CHECKING:
    import ssl

    from locust.env import Environment

    from .duis.verify import TrustStore
    from .records import RecordWriter

__all__ = ["CallbackListener", "CallbackResult", "LateResponse", "MissingResponse", "Pending", "UnknownRequestId",
           "censored_ms"]

log = logging.getLogger(__name__)

_RID = re.compile(rb"<(?:[\w.-]+:)?RequestID>\s*([^<\s]+)\s*</")
_CODE = re.compile(rb"<(?:[\w.-]+:)?ResponseCode>\s*([^<\s]+)\s*</")


def censored_ms(timeout_ms: float) -> float:
    """The response time a missing response gets in Locust's stats: the timeout, nudged up until Locust's
    histogram bucket (~2 significant digits) is not below it, so the live percentiles never show it lower."""
    from locust import stats

    value = float(timeout_ms)
    step = 1.0 if value < 100 else 10.0 if value < 1000 else 100.0 if value < 10000 else 1000.0
    for _ in range(10):  # bounded: one or two steps with Locust's own bucketing
        if stats.bucket_response_time(value) >= timeout_ms:
            break
        value += step
    return value


class LateResponse(Exception):
    """The async response came, but after the listener's ``late_after_s``."""


class MissingResponse(Exception):
    """No async response within ``missing_after_s``."""


class UnknownRequestId(Exception):
    """A response for a RequestID this process never sent (or long forgot)."""


@dataclass(slots=True)
class CallbackResult:
    """What a waiter gets back: the response (or its absence) and the timings."""

    outcome: str
    """``ok``, ``error`` (DUIS code E...), ``late`` or ``missing``."""
    body: bytes = b""
    arrival_ts: float = float("nan")
    trt_ms: float = float("nan")
    response_code: str = ""


@dataclass(slots=True)
class Pending:
    """One expected async response: an entry in the correlation map, not a waiting greenlet.

    At DSP peak with real response times tens of thousands are outstanding at once, so an entry is kept small:
    no event object unless somebody calls :meth:`wait`. Whoever needs the answer either waits (a greenlet that
    blocks) or leaves ``on_done``, called once with the result when it arrives or is declared missing (a journey
    parked as a continuation, a single SRV whose books are closed by the listener).
    """

    request_id: str
    label: str
    intended_ts: float
    user_class: str = ""
    srv_variant: str = ""
    step: int = 0
    arrival: int = -1
    deadline: float = 0.0
    on_done: Callable[[CallbackResult], None] | None = None
    outcome: CallbackResult | None = None
    _event: AsyncResult | None = None

    def wait(self, timeout: float | None = None) -> CallbackResult:
        """The result; the listener always resolves it by ``missing_after_s``, so no timeout is needed."""
        if self.outcome is not None:
            return self.outcome
        if self._event is None:
            self._event = AsyncResult()
        return self._event.get(timeout=timeout)

    def settle(self, result: CallbackResult) -> None:
        """Hand the result to whoever waits or left ``on_done`` (an error there is logged, never the listener's)."""
        self.outcome = result
        if self._event is not None:
            self._event.set(result)
        if self.on_done is not None:
            try:
                self.on_done(result)
            except Exception:
                log.exception("handling the response to %s failed", self.request_id)


class _NoDelayServer(WSGIServer):
    def handle(self, sock: socket.socket, address: Any) -> None:
        with contextlib.suppress(OSError):  # non-TCP socket
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().handle(sock, address)


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
        self._pending: dict[str, Pending] = {}
        self._deadlines: list[tuple[float, str]] = []
        self._expired: OrderedDict[str, Pending] = OrderedDict()
        self.counts = {"received": 0, "ok": 0, "error": 0, "late": 0, "missing": 0, "unknown": 0, "alerts": 0,
                       "after_missing": 0, "bad_signature": 0}
        tls = {"ssl_context": ssl_context} if ssl_context is not None else {}
        self._server = _NoDelayServer((host, port), self._app, log=None, error_log=log, **tls)
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
               srv_variant: str = "", step: int = 0, arrival: int = -1) -> Pending:
        """Register a RequestID before sending it (so a fast response can never beat the registration)."""
        p = Pending(request_id, label, intended_ts, user_class, srv_variant, step, arrival,
                    deadline=time.time() + self.missing_after_s)
        self._pending[request_id] = p
        heapq.heappush(self._deadlines, (p.deadline, request_id))
        return p

    def cancel(self, request_id: str) -> None:
        """Forget an expectation whose request never reached the SUT (send failed): nothing to wait for."""
        self._pending.pop(request_id, None)

    # -- the SUT's side ---------------------------------------------------
    def _app(self, environ: dict, start_response: Any) -> list[bytes]:
        arrival = time.time()
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(min(length, self.max_body)) if length else environ["wsgi.input"].read()
        self.on_body(body, arrival)
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "0")])
        return [b""]

    def on_body(self, body: bytes, arrival_ts: float | None = None) -> None:
        """Handle one async message (public so other transports, e.g. a queue, can feed the listener)."""
        arrival = time.time() if arrival_ts is None else arrival_ts
        self.counts["received"] += 1
        bad = check_signature(body, self.trust) if self.trust is not None else ""
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
                self._record(late, arrival, (arrival - late.intended_ts) * 1000, code, "late",
                             f"arrived after {self.missing_after_s:g} s (already counted missing)")
                return
            self.counts["unknown"] += 1
            self._fire("CALLBACK", "unknown RequestID", 0.0, len(body), UnknownRequestId(rid))
            return
        trt_ms = (arrival - p.intended_ts) * 1000
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
        self._fire("TRT", f"{p.label} TRT", trt_ms, len(body), exc)
        self._record(p, arrival, trt_ms, code, outcome, str(exc) if exc else "")
        p.settle(CallbackResult(outcome, body, arrival, trt_ms, code))

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
            if p is None or p.deadline != deadline:
                continue  # resolved, or superseded by a later expect() of the same id
            del self._pending[rid]
            self._declare_missing(p)
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
        left = list(self._pending.values())
        self._pending.clear()
        self._deadlines.clear()
        for p in left:
            self._declare_missing(p, reason)
        return len(left)

    def _declare_missing(self, p: Pending, reason: str = "") -> None:
        """A response that never came counts in TRT percentiles as the timeout (censored: its TRT is longer).

        Without that, percentiles of the answered requests alone would improve as a SUT loses more responses.
        """
        self.counts["missing"] += 1
        ms = self.missing_after_s * 1000
        exc = MissingResponse(reason or f"no async response within {self.missing_after_s:g} s")
        self._fire("TRT", f"{p.label} TRT", censored_ms(ms), 0, exc)
        self._record(p, float("nan"), ms, "", "missing", str(exc))
        self._expired[p.request_id] = p
        if len(self._expired) > 100_000:
            self._expired.popitem(last=False)
        p.settle(CallbackResult("missing"))

    # -- outputs ----------------------------------------------------------
    def _fire(self, rtype: str, name: str, ms: float, length: int, exc: BaseException | None) -> None:
        if self.environment is not None:
            self.environment.events.request.fire(request_type=rtype, name=name, response_time=ms,
                                                 response_length=length, exception=exc, context={})

    def _record(self, p: Pending, arrival: float, trt_ms: float, code: str, outcome: str, error: str) -> None:
        if self.records is not None:
            self.records.write_callback(p.request_id, p.user_class, p.srv_variant, p.label, p.arrival, p.step,
                                        p.intended_ts, arrival, trt_ms, code, outcome, error)
