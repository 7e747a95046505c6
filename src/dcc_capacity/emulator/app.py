"""The emulator as a raw ASGI application: routes, request flow, async responses.

Raw ASGI rather than a framework because this is the request path the whole
suite measures against: every microsecond here is one the load generator
cannot spend, and the three routes plus ``/metrics`` need no more.

Request flow: read the body (bounded) -> gateway checks (each failure its
own DUIS error) -> capacity model (queue + workers; queue full is E48) ->
synchronous answer by Command Variant (CV 4: PreCommand; CV 8: final I0;
CV 2/6: LocalCommand; CV 1/5: I99) -> for CV 1/5, the I0 (or the failure a
fault mode picks) POSTed to the user's callback after the device delay.
Alerts are in :mod:`.alerts`, the ASGI protocol glue in :mod:`.asgi`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import ssl
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.serialization import Encoding

from dcc_capacity.duis import NS_SR
from dcc_capacity.duis.pki import DEFAULT_USERS, TestPKI, load_certificate
from dcc_capacity.duis.responses import (
    ResponseSigner,
    build_response,
    payload_local_command,
    payload_pre_command,
)
from dcc_capacity.duis.verify import TrustStore, cert_eui
from dcc_capacity.emulator import codes as C
from dcc_capacity.emulator._http import Reply
from dcc_capacity.emulator.alerts import Alerts
from dcc_capacity.emulator.asgi import AsgiMixin
from dcc_capacity.emulator.capacity import FairShare, QueueFull, ServiceSampler, WorkerPool, delay_samplers
from dcc_capacity.emulator.config import SRV_CLASSES, EmulatorConfig
from dcc_capacity.emulator.delivery import CallbackSender, Delivery
from dcc_capacity.emulator.faults import Faults, tamper
from dcc_capacity.emulator.gateway import SECMP0192_VARIANTS, Accepted, Gateway, Rejected
from dcc_capacity.emulator.metrics import Metrics
from dcc_capacity.emulator.payloads import NON_DEVICE_PAYLOADS, device_payload, non_device_payload
from dcc_capacity.emulator.scheduled_responses import ScheduledResponses
from dcc_capacity.emulator.schedules import Schedule, ScheduleExecutor, TpsCounter

if TYPE_CHECKING:  # imported when the SP is a CP: asyncssh is loaded only then
    from dcc_capacity.emulator.cp import CPServer

__all__ = ["EmulatorApp", "build_trust", "callback_tls"]

log = logging.getLogger("dcc_capacity.emulator")
_SR = "{" + NS_SR + "}"
_CT_XML = b"application/xml"


def callback_tls(cfg: EmulatorConfig) -> ssl.SSLContext | None:
    """The client ``ssl.SSLContext`` for https callbacks (its client certificate, the CA it trusts), or None."""
    tls = cfg.callback_tls.client_tls()
    return tls.context() if tls is not None else None


def build_trust(cfg: EmulatorConfig, pki: TestPKI) -> TrustStore:
    """The default test PKI, every ``--trust-cert`` and every users-file certificate (roles: the gateway's model)."""
    from dcc_capacity.duis.userroles import role_model

    trust = TrustStore.from_pki(pki)
    model = role_model(cfg.user_roles.preset, cfg.user_roles.file)
    default_roles = {u.eui: u.roles for u in DEFAULT_USERS}
    certs = [(cert_eui(c), c) for c in map(load_certificate, cfg.trust_certs)]
    certs += [(eui, load_certificate(path)) for eui, path in model.certificates()]
    for eui, cert in certs:
        user = cfg.users.get(eui or "")
        roles = user.roles if user and user.roles is not None else model.roles(eui or "")
        trust.add(cert, eui=eui, roles=default_roles.get(eui or "", frozenset()) if roles is None else roles)
    return trust


class EmulatorApp(AsgiMixin):
    """ASGI callable; one instance per emulator (per event loop)."""

    def __init__(self, cfg: EmulatorConfig, pki: TestPKI | None = None) -> None:
        self.cfg = cfg
        self.pki = pki or TestPKI.load_or_create(cfg.pki_dir)
        self.gateway = Gateway(cfg, build_trust(cfg, self.pki))
        self.signer = ResponseSigner.from_credential(self.pki.dcc)
        self._dcc_der = self.pki.dcc.cert.public_bytes(Encoding.DER)  # 8.6's DSPOptIn carries a DCC certificate
        self.rng = random.Random(cfg.seed)
        self.faults = Faults(cfg.faults, self.rng)
        t = cfg.throttle
        weights = {eui: u.weight for eui, u in cfg.users.items()}
        self.fair = FairShare(t.total_tps or cfg.capacity.tps * 1.25, burst_s=t.burst_s, window_s=t.window_s,
                              weights=weights) if t.enabled else None
        cap = cfg.capacity
        self.pool = WorkerPool(workers=cap.workers, queue_limit=cap.queue_limit, tps=cap.tps)
        self.service = {c: ServiceSampler(cap.service_time[c], self.rng) for c in cap.service_time}
        self.delay = delay_samplers(cap, self.rng)  # [smets1][srv_class]: per SMETS generation
        self.sender = CallbackSender(concurrency=cfg.callback_concurrency, timeout_s=cfg.callback_timeout_s,
                                     on_result=self._delivered, gate=self._gate, ssl_context=callback_tls(cfg))
        self.metrics = Metrics()
        self.tps = TpsCounter(self.elapsed)  # MP192-SA5: (request + response + alert) / s, everything the SUT carries
        ex = cfg.secmp0192.execution
        self.schedules = ScheduleExecutor(ex, self.rng, self.tps, self.delay[True]["scheduled"], self.elapsed,
            ScheduledResponses(signer=self.signer, sender=self.sender, callback_for=cfg.callback_for, rng=self.rng,
                               metrics=self.metrics, faults=self.faults, time_scale=ex.time_scale).send) \
            if cfg.secmp0192.enabled and ex.enabled else None
        self.in_flight = 0
        self._routes = {path: svc for svc, path in cfg.paths.items()}
        self._schedule_id = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._t0 = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self.cp: CPServer | None = None
        self.alerts = Alerts(self)
        self._recent = self.alerts.recent  # the request path appends to it (device alerts pick from it)
        for cls in SRV_CLASSES:
            self.metrics.by_class[cls]  # noqa: B018 - materialise the classes so /metrics always lists them

    # -- lifecycle -------------------------------------------------------------------------
    async def startup(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._t0 = self._loop.time()
        self.pool.start()
        self.sender.start()
        if self.cfg.faults.outage.enabled:
            self._tasks.append(asyncio.create_task(self._outage_ticker()))
        if self.cfg.alerts.enabled:
            self._tasks.append(asyncio.create_task(self.alerts.loop()))
        if self.schedules is not None:
            self._tasks.append(asyncio.create_task(self.schedules.run()))
        if self.cfg.sp == "CP":
            from dcc_capacity.emulator.cp import CPServer

            self.cp = CPServer(self.cfg.cp, self.faults)
            await self.cp.start(self.cfg.host)

    async def shutdown(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.cp is not None:
            await self.cp.stop()
        await self.pool.stop()
        await self.sender.stop()

    @property
    def max_body_bytes(self) -> int:
        return self.cfg.max_body_bytes

    def elapsed(self) -> float:
        return (self._loop.time() - self._t0) if self._loop else 0.0

    def _gate(self) -> asyncio.Future | None:
        if self.pool.in_outage:
            return asyncio.ensure_future(self.pool.wait_up())
        return None

    async def _outage_ticker(self) -> None:
        while True:
            self.pool.set_outage(self.faults.in_outage(self.elapsed()))
            await asyncio.sleep(0.02)

    # -- HTTP --------------------------------------------------------------------------------
    def route(self, method: bytes, path: str, query: bytes, accept: bytes,
              body: bytes | None) -> Reply | Awaitable[Reply]:
        """One HTTP request -> (status, body, content type), or an awaitable of it when it must wait.

        ``body`` is None when it exceeded ``max_body_bytes``. Called by the lean
        server (``_http.py``) straight from the parser callback, so the common
        case - checks pass, a worker is free - completes without a task.
        """
        service = self._routes.get(path)
        if service is not None and method == b"POST":
            if body is None:
                self.metrics.inc("unknown", "rejected")
                return 413, self._error(Rejected(C.E_TOO_LARGE, "request body too large")), _CT_XML
            out = self.handle_now(service, body)
            if isinstance(out, tuple):
                return out[0], out[1], _CT_XML
            return self._later_reply(out)
        if path in ("/metrics", "/metrics.json", "/metrics/prometheus") and method == b"GET":
            return self._metrics(path, query, accept)
        if path == "/health" and method == b"GET":
            return 200, b'{"status": "ok"}', b"application/json"
        if service is not None or path.startswith("/metrics"):
            return 405, b"method not allowed\n", b"text/plain"
        return 404, b"not found\n", b"text/plain"

    @staticmethod
    async def _later_reply(out: Awaitable[tuple[int, bytes]]) -> Reply:
        status, body = await out
        return status, body, _CT_XML

    def _metrics(self, path: str, query: bytes, accept: bytes) -> Reply:
        snap = self.snapshot()
        if path == "/metrics/prometheus" or b"format=prometheus" in query or (
                b"text/plain" in accept and b"json" not in accept and path != "/metrics.json"):
            return 200, Metrics.prometheus(snap).encode(), b"text/plain; version=0.0.4"
        return 200, json.dumps(snap).encode(), b"application/json"

    def snapshot(self) -> dict[str, Any]:
        extra = {"tps": self.tps.snapshot()}
        if self.schedules is not None:
            extra["secmp0192"] = self.schedules.snapshot()
        return self.metrics.snapshot(**extra,
            sp=self.cfg.sp, queue_depth=self.pool.depth, in_flight=self.in_flight, workers_busy=self.pool.busy,
            callback_backlog=self.sender.backlog, callbacks_dropped=self.sender.dropped,
            outage=int(self.pool.in_outage), capacity_tps=self.cfg.capacity.tps, workers=self.pool.workers,
            queue_limit=self.pool.queue_limit, throttle_shares=self.fair.shares() if self.fair else {},
            sftp_port=self.cp.port if self.cp else None, **({"cp": dict(self.cp.counts)} if self.cp else {}))

    # -- the request path ------------------------------------------------------------------
    def _error(self, r: Rejected) -> bytes:
        self.metrics.code(r.code)
        self.tps.add("response")
        return build_response(signer=self.signer, response_code=r.code, srv=r.srv or "unknown",
                              srv_variant=r.srv_variant or r.srv or "unknown", request_id=r.request_id,
                              schema_version=r.schema_version)

    async def handle(self, service: str, body: bytes) -> tuple[int, bytes]:
        """One request to service ``S``, ``T`` or ``D``: (HTTP status, response bytes)."""
        out = self.handle_now(service, body)
        return out if isinstance(out, tuple) else await out

    def handle_now(self, service: str, body: bytes) -> tuple[int, bytes] | Awaitable[tuple[int, bytes]]:
        """The answer now when no wait is needed (the usual case), else an awaitable of it (queued for a worker)."""
        res = self.gateway.check(service, body, self.fair.allow if self.fair else None)
        self.tps.add("request")
        if isinstance(res, Rejected):
            self.metrics.inc(res.srv_class, "received")
            self.metrics.inc(res.srv_class, "throttled" if res.code == C.E_THROTTLED else "rejected")
            if res.code not in (C.E_THROTTLED, C.E_MALFORMED):
                log.debug("rejected %s: %s %s", res.request_id, res.code, res.reason)
            return res.http, self._error(res)
        cls = res.srv_class
        self.metrics.inc(cls, "received")
        self.in_flight += 1  # queued, in service, or awaiting its async response
        service_s = self.service[cls].sample()
        if self.pool.start_now(service_s):
            return 200, self._answer(res)
        try:
            fut = self.pool.submit(service_s, res.originator)
        except QueueFull:
            return self._queue_full(res)
        if fut.done() and not fut.cancelled() and fut.exception() is None:
            return 200, self._answer(res)
        return self._after_queue(res, fut)

    async def _after_queue(self, res: Accepted, fut: asyncio.Future[float]) -> tuple[int, bytes]:
        try:
            await fut
        except (QueueFull, asyncio.CancelledError) as exc:
            if isinstance(exc, asyncio.CancelledError):
                self.in_flight -= 1
                raise
            return self._queue_full(res)
        return 200, self._answer(res)

    def _queue_full(self, res: Accepted) -> tuple[int, bytes]:
        self.in_flight -= 1
        self.metrics.inc(res.srv_class, "queue_full")
        r = Rejected(C.E_QUEUE_FULL, "queue full", res.request_id, res.srv.reference, res.srv.variant, res.srv_class,
                     schema_version=res.schema_version)
        return r.http, self._error(r)

    def _answer(self, req: Accepted) -> bytes:
        srv, cls = req.srv, req.srv_class
        if req.cv == 4:
            payload = payload_pre_command(self.gateway.precommand_for(req.request_id, srv.variant))
            return self._final(req, C.I0, payload)
        if req.cv == 8:
            if srv.variant == "5.1":
                self._schedule_id += 1
                if not self.alerts.maybe_s1ve12(req, self._schedule_id) and self.schedules is not None \
                        and req.extras.get("scheduled_variant") in SECMP0192_VARIANTS:
                    self.schedules.add(Schedule(self._schedule_id, req.extras["scheduled_variant"], req.request_id,
                                                req.originator, req.extras.get("device") or "", req.schema_version))
            payload = non_device_payload(srv.variant, req.body, self._schedule_id, self._dcc_der) \
                if srv.variant in NON_DEVICE_PAYLOADS else ""
            return self._final(req, C.I0, payload)
        if req.cv in (2, 6):
            return self._final(req, C.I0, payload_local_command(self._gbcs(req)))
        # CV 1 / 5: acknowledge now, answer at the callback later.
        self._recent.append((req.target, req.originator))
        self.metrics.inc(cls, "acked")
        self.metrics.code(C.I99)
        code = self._device_outcome(req)
        if code != C.I0:
            self.metrics.inc(cls, "async_errors")
        delay = self.delay[req.smets1][cls].sample()
        url = self.cfg.callback_for(req.originator)
        if url is None:
            self.in_flight -= 1
            self.metrics.inc(cls, "callbacks_failed")
        else:
            self.later(delay, Delivery(url, lambda: self._async_response(req, code), cls))
        return build_response(signer=self.signer, response_code=C.I99, srv=srv.reference, srv_variant=srv.variant,
                              request_id=req.request_id, schema_version=req.schema_version)

    def _final(self, req: Accepted, code: str, payload: str) -> bytes:
        self.in_flight -= 1
        self.tps.add("response")
        self.metrics.inc(req.srv_class, "responded")
        self.metrics.inc(req.srv_class, "completed")
        self.metrics.code(code)
        return self.tamper(build_response(signer=self.signer, response_code=code, srv=req.srv.reference,
                                           srv_variant=req.srv.variant, request_id=req.request_id, payload=payload,
                                           schema_version=req.schema_version), req.srv_class)

    def _gbcs(self, req: Accepted) -> bytes:
        return b"\xdd\x00" + (req.counter & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big") + self.rng.randbytes(22)

    def _device_outcome(self, req: Accepted) -> str:
        if req.srv.variant == "8.11":
            text = req.body.findtext(f"{_SR}AddDeviceToCHFWhitelist/{_SR}JoinTimePeriod")
            join = int(text) if text and text.strip().isdigit() else None
            if self.faults.ppmid_join_rejected(join, req.smets1):
                return C.E_PPMID_JOIN
        return self.faults.burst_code(self.elapsed()) or C.I0

    def _async_response(self, req: Accepted, code: str) -> bytes:
        final = None if self.faults.drop_response_code(req.srv.variant) else code
        self.metrics.code(final)
        payload = device_payload(req.srv.variant, self._gbcs(req), req.counter) if code == C.I0 else ""
        return self.tamper(build_response(signer=self.signer, response_code=final, srv=req.srv.reference,
                                           srv_variant=req.srv.variant, request_id=req.request_id, payload=payload,
                                           schema_version=req.schema_version), req.srv_class)

    def tamper(self, signed: bytes, srv_class: str) -> bytes:
        """The tamper_responses fault: change a share of signed answers after signing (counted as ``tampered``)."""
        if not self.faults.tamper():
            return signed
        self.metrics.inc(srv_class, "tampered")
        return tamper(signed)

    def later(self, delay: float, item: Delivery) -> None:
        assert self._loop is not None
        if delay <= 0:
            self.sender.put(item)
        else:
            self._loop.call_later(delay, self.sender.put, item)

    def _delivered(self, item: Delivery, ok: bool) -> None:
        if ok:
            self.tps.add("alert" if item.kind == "alert" else "response")
        if item.kind == "response":
            self.in_flight -= 1
            self.metrics.inc(item.srv_class, "responded")
            self.metrics.inc(item.srv_class, "completed")
        self.metrics.inc(item.srv_class, "callbacks_ok" if ok else "callbacks_failed")
