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

TLS (``--tls-cert``/``--tls-key``, ``--tls-client-ca`` for mutual TLS,
``--tls-key-password-env`` for an encrypted key): the relay is the callback
URL the SUT is given, so it is the relay that terminates the callback TLS,
with the same rules (:class:`dcc_capacity.tls.ServerTls`) and the same
settings (``--callback-tls-*`` / ``tls.callback_*``) as a single load
process's listener; ``run`` passes them here and not to the workers. The
workers' listeners behind it stay plain HTTP on 127.0.0.1 on purpose: that
hop never leaves the machine (the SUT's traffic is authenticated and
encrypted up to the relay), and a second TLS termination per callback would
only spend the CPU the relay and the workers need for the load. With a
client CA, a client without a valid certificate fails the handshake: it is
counted (``refused``), logged (the first few, then every 1000th, so a
scanner cannot fill the disk), and the relay carries on.

Run: ``python -m dcc_capacity.runner.relay --port P --registry DIR [--tls-cert C --tls-key K
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

import gevent  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402
from geventhttpclient import HTTPClient  # noqa: E402
from geventhttpclient.url import URL  # noqa: E402

log = logging.getLogger("dcc_capacity.relay")
_RID = re.compile(rb"<(?:[\w.-]+:)?RequestID>\s*([^<\s]+)\s*</")
SLOT_MASK = 1023
HANDSHAKE_TIMEOUT_S = 10.0
"""A client that connects and never completes the TLS handshake is dropped after this long (not held forever)."""
LOG_FIRST = 10
"""Refusals and failed forwards logged one by one; after these, every 1000th (the counts are always exact)."""


class Relay:
    """Routing and counts; :meth:`app` is the WSGI application the server runs."""

    def __init__(self, registry: Path) -> None:
        self.registry = registry
        self.targets: dict[int, HTTPClient] = {}
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
                url = URL(f.read_text().strip())
                self.targets[slot] = HTTPClient(url.host, url.port, concurrency=64, connection_timeout=5,
                                                network_timeout=30)

    def targets_for(self, body: bytes) -> tuple[bool, list[HTTPClient]]:
        """(is an alert, the workers to try in order): the sender's worker for a response, all of them (round
        robin, so a worker that has gone does not lose the alerts) for an alert."""
        m = _RID.search(body)
        if m is None:  # an alert: any worker counts it
            if not self.targets:
                self._refresh()
            clients = list(self.targets.values())
            if not clients:
                return True, []
            first = next(self._rr) % len(clients)
            return True, clients[first:] + clients[:first]
        try:
            slot = int(m.group(1).rsplit(b":", 1)[-1]) & SLOT_MASK
        except ValueError:
            return False, []
        client = self.targets.get(slot)
        if client is None:
            self._refresh()
            client = self.targets.get(slot)
        return False, [client] if client is not None else []

    def app(self, environ: dict, start_response: Any) -> list[bytes]:
        body = environ["wsgi.input"].read()
        alert, clients = self.targets_for(body)
        if not clients:
            self.counts["unroutable"] += 1
            start_response("404 Not Found", [("Content-Length", "0")])
            return [b""]
        headers = {"Content-Type": environ.get("CONTENT_TYPE") or "application/xml"}
        error: Exception | None = None
        for client in clients:
            try:
                client.post("/", body=body, headers=headers).read()
            except Exception as exc:  # that worker is gone (stopped, or died): a response is lost for it
                error = exc
                continue
            self.counts["alerts" if alert else "forwarded"] += 1
            break
        else:
            key = "alerts_failed" if alert else "failed"
            self.counts[key] += 1
            n = self.counts[key]
            if n <= LOG_FIRST or n % 1000 == 0:
                log.warning("could not forward %s to %s (%s); %d not forwarded so far",
                            "an alert" if alert else "a response", ", ".join(f"{c.host}:{c.port}" for c in clients),
                            error.__class__.__name__, n)
            start_response("502 Bad Gateway", [("Content-Length", "0")])  # the SUT sees it was not delivered
            return [b""]
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "0")])
        return [b""]

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


class RelayServer(WSGIServer):
    """gevent's WSGI server with TCP_NODELAY on every socket and a failed TLS handshake counted, not raised.

    Why: gevent wraps an accepted socket in TLS inside the connection's
    greenlet, and an exception there (a client without a certificate under
    mutual TLS) would only reach gevent's hub, which prints a traceback per
    connection. A refusal is an expected event at a public callback URL.
    """

    def __init__(self, listener: Any, relay: Relay, **kwargs: Any) -> None:
        super().__init__(listener, relay.app, log=None, error_log=log, **kwargs)
        self.relay = relay

    def handle(self, sock: socket.socket, address: Any) -> None:
        with contextlib.suppress(OSError):  # small answers go out at once (no Nagle + delayed ACK wait)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().handle(sock, address)

    def wrap_socket_and_handle(self, client_socket: Any, address: Any) -> Any:
        client_socket.settimeout(HANDSHAKE_TIMEOUT_S)
        try:
            tls_socket = self.wrap_socket(client_socket, **self.ssl_args)
        except (ssl.SSLError, OSError) as exc:  # OSError covers a reset, a timeout and a peer that just left
            self.relay.refused(address, exc)
            with contextlib.suppress(OSError):
                client_socket.close()
            return None
        tls_socket.settimeout(None)
        try:
            return self.handle(tls_socket, address)
        finally:
            with contextlib.suppress(OSError):
                tls_socket.close()


def server_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The relay's TLS context from its options, built by the same code as the single-process listener's."""
    if not args.tls_cert:
        return None
    from gevent import ssl as gevent_ssl

    from ..tls import ServerTls

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
    from ..errors import InputError

    try:
        context = server_context(args)
    except InputError as exc:
        print(f"dcc-capacity relay: {exc}", file=sys.stderr, flush=True)
        return 2
    args.registry.mkdir(parents=True, exist_ok=True)
    relay = Relay(args.registry)
    server = RelayServer((args.host, args.port), relay, **({"ssl_context": context} if context else {}))
    gevent.signal_handler(signal.SIGTERM, server.stop)
    gevent.signal_handler(signal.SIGINT, server.stop)
    log.info("relay on %s://%s:%d/ (registry %s%s)", "https" if context else "http", args.host, args.port,
             args.registry, ", client certificates required" if args.tls_client_ca else "")
    server.serve_forever()
    counts = {**relay.counts, "tls": context is not None, "mutual_tls": bool(context and args.tls_client_ca)}
    if args.stats is not None:
        args.stats.write_text(json.dumps(counts) + "\n")
    print(f"relay: {counts}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
