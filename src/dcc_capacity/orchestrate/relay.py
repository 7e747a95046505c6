"""Callback relay for ``--workers N``: one callback URL for the SUT, forwarded to the worker that sent the request.

A DCC User Gateway posts every async response of a Service User to ONE
callback URL, but each Locust worker correlates (and times) its own requests
in its own listener. The RequestID counter carries the sending process's
slot in its low 10 bits (duis/requestid.py), so the relay reads the
RequestID with one regex, takes ``counter & 1023`` and forwards the bytes
to the listener that worker registered (a file ``<slot>.url`` in the registry
folder, written when the worker starts). Alerts (no RequestID) go round robin
(to the next worker when one does not answer).
The hop adds well under a millisecond on loopback, which TRT includes.

It is the busiest process of a distributed run that receives every
callback, so its HTTP is lean (``httptools``, the parser the emulator uses,
not a WSGI stack, which cost about eight times the CPU per callback): the pipelined requests a client
has sent are read in one go, forwarded to each worker as one pipelined
write on a kept-alive connection, and answered in order in one write.
Measured in docs/performance.md (``benchmarks/bench_relay.py``).

TLS (``--tls-cert``/``--tls-key``, ``--tls-client-ca`` for mutual TLS,
``--tls-key-password-env`` for an encrypted key): the relay is the callback
URL the SUT is given, so it is the relay that terminates the callback TLS,
with the same rules (:class:`dcc_capacity.config.tls.ServerTls`) and the same
settings (``--callback-tls-*`` / ``tls.callback_*``) as a single load
process's listener; ``run`` passes them here and not to the workers. It
has to: the route is inside the encrypted body (the RequestID), so the
relay cannot pass TLS through untouched. The workers' listeners behind it
stay plain HTTP on 127.0.0.1 on purpose: that hop never leaves the machine
(the SUT's traffic is authenticated and encrypted up to the relay), and
re-encrypting every callback for it would only spend the CPU the relay and
the workers need for the load. With a
client CA, a client without a valid certificate fails the handshake: it is
counted (``refused``), logged (the first few, then every 1000th, so a
scanner cannot fill the disk), and the relay carries on.

Run: ``python -m dcc_capacity.orchestrate.relay --port P --registry DIR [--tls-cert C --tls-key K
[--tls-client-ca CA] [--tls-key-password-env NAME]] [--stats FILE]`` (gevent). On SIGTERM/SIGINT
it stops and writes its counts to ``--stats`` (JSON) and to stderr. Exit 2: a TLS file or its
password is wrong (one line naming the option).
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import contextlib  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import ssl  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

import gevent  # noqa: E402
import httptools  # noqa: E402
from gevent.queue import Empty, Full, LifoQueue  # noqa: E402

from dcc_capacity.load.postserver import PostServer  # noqa: E402

log = logging.getLogger("dcc_capacity.relay")
_RID = re.compile(rb"<(?:[\w.-]+:)?RequestID>\s*([^<\s]+)\s*</")
SLOT_MASK = 1023
LOG_FIRST = 10
"""Refusals and failed forwards logged one by one; after these, every 1000th (the counts are always exact)."""
UPSTREAM_CONNS = 64
"""Kept-alive connections per worker at most (one per concurrent batch)."""
CONNECT_TIMEOUT_S, READ_TIMEOUT_S = 5.0, 30.0



class _Answers:
    """httptools callbacks for the answers of one pipelined write: counts complete ones, keeps their status."""

    __slots__ = ("statuses", "parser")

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.parser = httptools.HttpResponseParser(self)

    def on_message_complete(self) -> None:
        self.statuses.append(self.parser.get_status_code())


class Upstream:
    """One worker's listener: a small pool of kept-alive plain-HTTP connections on loopback."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.where = f"{self.host}:{self.port}"
        self._head = (f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                      f"Content-Type: application/xml\r\nContent-Length: ").encode("latin-1")
        self._idle: LifoQueue = LifoQueue(maxsize=UPSTREAM_CONNS)

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=CONNECT_TIMEOUT_S)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(READ_TIMEOUT_S)
        return sock

    def post(self, bodies: list[bytes]) -> None:
        """Deliver ``bodies`` in one pipelined write; raises OSError (or a parser error) if not all answered.

        A kept-alive connection the worker closed while idle fails before it answers anything: that batch
        is sent again once on a new connection (nothing of it was delivered). Any other failure is not
        retried, so a worker never sees a callback twice.
        """
        data = b"".join(self._head + b"%d\r\n\r\n" % len(b) + b for b in bodies)
        for attempt in (0, 1):
            try:
                sock, reused = self._idle.get_nowait(), True
            except Empty:
                sock, reused = self._connect(), False
            answers = _Answers()
            try:
                sock.sendall(data)
                while len(answers.statuses) < len(bodies):
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise ConnectionResetError("the worker closed the connection")
                    answers.parser.feed_data(chunk)
            except (OSError, httptools.HttpParserError):
                with contextlib.suppress(OSError):
                    sock.close()
                if reused and attempt == 0 and not answers.statuses:
                    continue
                raise
            try:
                self._idle.put_nowait(sock)
            except Full:
                sock.close()
            return

    def close(self) -> None:
        while not self._idle.empty():
            with contextlib.suppress(OSError):
                self._idle.get_nowait().close()


class Relay:
    """Routing and counts; :meth:`forward` decides and delivers what one client sent in one read."""

    def __init__(self, registry: Path) -> None:
        self.registry = registry
        self.targets: dict[int, Upstream] = {}
        self._rr = itertools.count()
        self.counts = {"forwarded": 0, "alerts": 0, "unroutable": 0, "failed": 0, "alerts_failed": 0, "refused": 0,
                       "abandoned": 0}
        """``forwarded``/``failed``: responses delivered to / lost for their worker; ``alerts``/``alerts_failed``
        the same for alerts (these fail when the SUT posts after the workers stopped, at the end of a run);
        ``unroutable``: no worker registered for it; ``refused``/``abandoned``: see :meth:`refused`."""

    def _refresh(self) -> None:
        for f in self.registry.glob("*.url"):
            slot = int(f.stem)
            if slot not in self.targets:
                self.targets[slot] = Upstream(f.read_text().strip())

    def slot_of(self, body: bytes) -> int | None:
        """The worker slot a response belongs to; -1 for an alert (no RequestID); None: not a counter."""
        m = _RID.search(body)
        if m is None:
            return -1
        try:
            return int(m.group(1).rsplit(b":", 1)[-1]) & SLOT_MASK
        except ValueError:
            return None

    def forward(self, bodies: list[bytes | None]) -> list[int]:
        """Deliver each body to its worker; the HTTP status to answer each with, in order.

        Responses go to the worker of their slot, one pipelined write per worker. Alerts go round robin,
        each to the next worker that answers (a worker that has gone does not lose them). None (a request
        that is not a POST, e.g. a probe) is answered 405 and forwarded nowhere: it is no alert.
        """
        statuses = [200] * len(bodies)
        groups: dict[int, list[int]] = {}
        alerts: list[int] = []
        for i, body in enumerate(bodies):
            if body is None:
                statuses[i] = 405
                continue
            slot = self.slot_of(body)
            if slot == -1:
                alerts.append(i)
                continue
            if slot is not None and slot not in self.targets:
                self._refresh()
            if slot is None or slot not in self.targets:
                self.counts["unroutable"] += 1
                statuses[i] = 404
                continue
            groups.setdefault(slot, []).append(i)
        for slot, idx in groups.items():
            up = self.targets[slot]
            try:
                up.post([bodies[i] or b"" for i in idx])
                self.counts["forwarded"] += len(idx)
            except (OSError, httptools.HttpParserError) as exc:  # the worker is gone: it will count them missing
                for i in idx:
                    statuses[i] = 502
                self._failed("failed", len(idx), up.where, exc)
        for i in alerts:
            statuses[i] = self._alert(bodies[i] or b"")
        return statuses

    def _alert(self, body: bytes) -> int:
        if not self.targets:
            self._refresh()
        ups = list(self.targets.values())
        if not ups:
            self.counts["unroutable"] += 1
            return 404
        first = next(self._rr) % len(ups)
        error: BaseException | None = None
        for up in ups[first:] + ups[:first]:
            try:
                up.post([body])
            except (OSError, httptools.HttpParserError) as exc:
                error = exc
                continue
            self.counts["alerts"] += 1
            return 200
        self._failed("alerts_failed", 1, ", ".join(u.where for u in ups), error)
        return 502

    def _failed(self, key: str, n: int, where: str, exc: BaseException | None) -> None:
        before = self.counts[key]
        self.counts[key] += n
        if before < LOG_FIRST or before // 1000 != self.counts[key] // 1000:
            log.warning("could not forward %d %s to %s (%s); %d not forwarded so far", n,
                        "alert(s)" if key == "alerts_failed" else "response(s)", where,
                        exc.__class__.__name__ if exc else "?", self.counts[key])

    def refused(self, address: Any, exc: BaseException) -> None:
        """A TLS handshake failed: count it, and log it unless the peer just left.

        ``refused``: we said no (no or an untrusted client certificate, not TLS at all, an old protocol).
        ``abandoned``: the peer closed, reset or went quiet before the handshake ended, e.g. a port probe
        (``run`` itself probes the port before it starts the load): nothing to refuse, so not logged.
        """
        if not isinstance(exc, ssl.SSLError) or isinstance(exc, ssl.SSLEOFError) or \
                getattr(exc, "reason", "") == "UNEXPECTED_EOF_WHILE_READING":
            self.counts["abandoned"] += 1
            return
        self.counts["refused"] += 1
        n = self.counts["refused"]
        if n <= LOG_FIRST or n % 1000 == 0:
            peer = f"{address[0]}:{address[1]}" if isinstance(address, tuple) and len(address) >= 2 else address
            log.warning("refused a callback connection from %s (TLS handshake failed: %s); %d refused so far",
                        peer, getattr(exc, "reason", None) or exc, n)

    def close(self) -> None:
        for up in self.targets.values():
            up.close()


def server_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The relay's TLS context from its options, built by the same code as the single-process listener's."""
    if not args.tls_cert:
        return None
    from gevent import ssl as gevent_ssl

    from dcc_capacity.config.tls import ServerTls

    return ServerTls(args.tls_cert, args.tls_key or None, args.tls_client_ca or None,
                     args.tls_key_password_env or None, option="--callback-tls-cert").context(gevent_ssl.SSLContext)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="dcc-capacity-relay")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--registry", type=Path, required=True)
    p.add_argument("--tls-cert", default="", help="serve HTTPS with this certificate (PEM)")
    p.add_argument("--tls-key", default="", help="its key (PEM; default: in the certificate file)")
    p.add_argument("--tls-client-ca", default="", help="require client certificates from this CA (mutual TLS)")
    p.add_argument("--tls-key-password-env", default="", help="environment variable holding the key's password")
    p.add_argument("--stats", type=Path, default=None, help="write the counts here (JSON) when stopped")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s relay %(levelname)s %(message)s", stream=sys.stderr)
    from dcc_capacity.errors import InputError

    try:
        context = server_context(args)
    except InputError as exc:
        print(f"dcc-capacity relay: {exc}", file=sys.stderr, flush=True)
        return 2
    args.registry.mkdir(parents=True, exist_ok=True)
    relay = Relay(args.registry)
    server = PostServer((args.host, args.port), relay.forward, on_refused=relay.refused, ssl_context=context)
    gevent.signal_handler(signal.SIGTERM, server.stop)
    gevent.signal_handler(signal.SIGINT, server.stop)
    log.info("relay on %s://%s:%d/ (registry %s%s)", "https" if context else "http", args.host, args.port,
             args.registry, ", client certificates required" if args.tls_client_ca else "")
    server.serve_forever()
    relay.close()
    counts = {**relay.counts, "tls": context is not None, "mutual_tls": bool(context and args.tls_client_ca)}
    if args.stats is not None:
        args.stats.write_text(json.dumps(counts) + "\n")
    print(f"relay: {counts}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
