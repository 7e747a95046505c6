"""Callback relay for ``--workers N``: one callback URL for the SUT, forwarded to the worker that sent the request.

A DCC User Gateway posts every async response of a Service User to ONE
callback URL, but each Locust worker correlates (and times) its own requests
in its own listener. The RequestID counter carries the sending process's
slot in its low 10 bits (duis/requestid.py), so the relay reads the
RequestID with one regex, takes ``counter & 1023`` and forwards the bytes
to the listener that worker registered (a file ``<slot>.url`` in the registry
folder, written when the worker starts). Alerts (no RequestID) go round robin.
The hop adds well under a millisecond on loopback, which TRT includes.

Run: ``python -m dcc_capacity.runner.relay --port P --registry DIR`` (gevent).
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import itertools  # noqa: E402
import logging  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
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


class Relay:
    def __init__(self, registry: Path) -> None:
        self.registry = registry
        self.targets: dict[int, HTTPClient] = {}
        self._rr = itertools.count()
        self.counts = {"forwarded": 0, "unroutable": 0, "failed": 0}

    def _refresh(self) -> None:
        for f in self.registry.glob("*.url"):
            slot = int(f.stem)
            if slot not in self.targets:
                url = URL(f.read_text().strip())
                self.targets[slot] = HTTPClient(url.host, url.port, concurrency=64, connection_timeout=5,
                                                network_timeout=30)

    def target(self, body: bytes) -> HTTPClient | None:
        m = _RID.search(body)
        if m is None:  # an alert: any worker counts it
            if not self.targets:
                self._refresh()
            clients = list(self.targets.values())
            return clients[next(self._rr) % len(clients)] if clients else None
        try:
            slot = int(m.group(1).rsplit(b":", 1)[-1]) & SLOT_MASK
        except ValueError:
            return None
        client = self.targets.get(slot)
        if client is None:
            self._refresh()
            client = self.targets.get(slot)
        return client

    def app(self, environ: dict, start_response: Any) -> list[bytes]:
        body = environ["wsgi.input"].read()
        client = self.target(body)
        if client is None:
            self.counts["unroutable"] += 1
            start_response("404 Not Found", [("Content-Length", "0")])
            return [b""]
        try:
            resp = client.post("/", body=body, headers={"Content-Type": environ.get("CONTENT_TYPE") or
                                                         "application/xml"})
            resp.read()
            self.counts["forwarded"] += 1
        except Exception:  # the worker is gone: the response is lost for it (it will count it missing)
            self.counts["failed"] += 1
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "0")])
        return [b""]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="dcc-capacity-relay")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--registry", type=Path, required=True)
    args = p.parse_args(argv)
    args.registry.mkdir(parents=True, exist_ok=True)
    relay = Relay(args.registry)
    server = WSGIServer((args.host, args.port), relay.app, log=None, error_log=log)
    gevent.signal_handler(signal.SIGTERM, server.stop)
    gevent.signal_handler(signal.SIGINT, server.stop)
    server.serve_forever()
    print(f"relay: {relay.counts}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
