"""A slow or silent system under test: acks at once (or after a stall), calls back seconds later, or never.

The embedded emulator answers in well under a second; a real DSP or S1SP
acknowledges and then answers tens of seconds later (or not at all). This
server is that second kind, lean enough (asyncio + httptools, no framework)
to take 1,500 requests/s and deliver 1,500 callbacks/s on one core while
holding 100,000 callbacks due, so the suite under test is what is measured:

- every request is acknowledged with a DUIS-like ``I99`` answer carrying its
  RequestID; ``--stall S --period P``: an answer due in the first S seconds of
  each P-second period (from ``--t0``) is held until that window closes;
- ``--callback-url URL``: each RequestID sent to ``serviceS`` (a device SRV; serviceT and serviceD answer in the
  acknowledgement, as in DUIS) is POSTed back as an ``I0`` response
  after a delay drawn uniformly from ``--delay-min``..``--delay-max`` s,
  over a pool of keep-alive connections; without it nothing ever calls back;
- where requests land is what counts: on SIGTERM (or ``--stats`` at exit) it
  writes JSON with every request's arrival time, the callbacks sent and
  failed, and the most callbacks it held due at once.

Run: ``python tests/_slow_sut.py --port P [--callback-url URL] [--stats FILE] ...`` (loopback only).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import re
import signal
import time
from urllib.parse import urlsplit

import httptools

_RID = re.compile(rb"<(?:[\w.-]+:)?RequestID>\s*([^<\s]+)\s*</")
_ACK = (b"<?xml version='1.0' encoding='UTF-8'?><sr:Response xmlns:sr=\"http://www.dccinterface.co.uk/"
        b"ServiceUserGateway\"><sr:Header><sr:RequestID>%s</sr:RequestID><sr:ResponseCode>I99</sr:ResponseCode>"
        b"</sr:Header></sr:Response>")
_RESP = (b"<?xml version='1.0' encoding='UTF-8'?><sr:Response xmlns:sr=\"http://www.dccinterface.co.uk/"
         b"ServiceUserGateway\"><sr:Header><sr:RequestID>%s</sr:RequestID><sr:ResponseCode>I0</sr:ResponseCode>"
         b"</sr:Header><sr:Body/></sr:Response>")


class Stats:
    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self.callbacks_sent = 0
        self.callbacks_failed = 0
        self.retries: dict[str, int] = {}
        """Why a delivery was tried again (the retried POST may have arrived: a duplicate the listener sees)."""
        self.due = 0
        self.max_due = 0

    def doc(self) -> dict:
        return {"requests": len(self.arrivals), "arrivals": self.arrivals, "callbacks_sent": self.callbacks_sent,
                "callbacks_failed": self.callbacks_failed, "max_due": self.max_due, "due_at_end": self.due,
                "retries": self.retries}


class Sut:
    def __init__(self, a: argparse.Namespace) -> None:
        self.a = a
        self.stats = Stats()
        self.rng = random.Random(a.seed)
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.t0 = a.t0 if a.t0 is not None else time.time()

    def hold_for(self, now: float) -> float:
        """Seconds an answer due now is held (the stall window), 0 outside it."""
        if self.a.stall <= 0:
            return 0.0
        phase = (now - self.t0) % self.a.period
        return self.a.stall - phase if phase < self.a.stall else 0.0

    def on_request(self, path: bytes, body: bytes, now: float) -> bytes:
        self.stats.arrivals.append(now)
        m = _RID.search(body)
        rid = m.group(1) if m else b""
        # As DUIS: only a device SRV sent to serviceS gets an async response; serviceT (CV 4) and serviceD (CV 8,
        # non-device) answer in the acknowledgement alone.
        if rid and self.a.callback_url and path.rstrip(b"/").endswith(b"serviceS"):
            delay = self.rng.uniform(self.a.delay_min, self.a.delay_max)
            self.stats.due += 1
            self.stats.max_due = max(self.stats.max_due, self.stats.due)
            asyncio.get_running_loop().call_later(delay, self._due, _RESP % rid)
        ack = _ACK % rid
        return b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: %d\r\n\r\n%s" % (len(ack), ack)

    def _due(self, body: bytes) -> None:
        self.stats.due -= 1
        self.queue.put_nowait(body)

    async def deliver(self) -> None:
        """One keep-alive connection posting due callbacks one after another (several run side by side)."""
        u = urlsplit(self.a.callback_url)
        path = (u.path or "/").encode()
        head = b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/xml\r\nContent-Length: %%d\r\n\r\n" % (
            path, (u.hostname or "127.0.0.1").encode())
        reader = writer = None
        while True:
            body = await self.queue.get()
            for _attempt in range(3):
                try:
                    if writer is None:
                        reader, writer = await asyncio.open_connection(u.hostname, u.port)
                    writer.write((head % len(body)) + body)
                    status = await reader.readline()
                    length = 0
                    while True:
                        line = await reader.readline()
                        if line in (b"\r\n", b""):
                            break
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":", 1)[1])
                    if length:
                        await reader.readexactly(length)
                    if not status.startswith(b"HTTP/1.1 2"):
                        raise OSError(status)
                    self.stats.callbacks_sent += 1
                    break
                except (OSError, asyncio.IncompleteReadError) as exc:
                    why = f"{type(exc).__name__}: {exc}"[:60]
                    self.stats.retries[why] = self.stats.retries.get(why, 0) + 1
                    if writer is not None:
                        writer.close()
                    reader = writer = None
            else:
                self.stats.callbacks_failed += 1


class _Conn(asyncio.Protocol):
    def __init__(self, sut: Sut) -> None:
        self.sut = sut
        self.parser = httptools.HttpRequestParser(self)
        self.body: list[bytes] = []
        self.path = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.path = url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        now = time.time()
        answer = self.sut.on_request(self.path, b"".join(self.body), now)
        self.body = []
        hold = self.sut.hold_for(now)
        if hold > 0:
            asyncio.get_running_loop().call_later(hold, self._send, answer)
        else:
            self._send(answer)

    def _send(self, answer: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(answer)


async def main(a: argparse.Namespace) -> None:
    sut = Sut(a)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Conn(sut), "127.0.0.1", a.port, backlog=1024)
    workers = [asyncio.create_task(sut.deliver()) for _ in range(a.connections if a.callback_url else 0)]
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=a.max_life)
    server.close()
    for w in workers:
        w.cancel()
    if a.stats:
        with open(a.stats, "w") as fh:
            json.dump(sut.stats.doc(), fh)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--callback-url", default="")
    ap.add_argument("--delay-min", type=float, default=5.0)
    ap.add_argument("--delay-max", type=float, default=90.0)
    ap.add_argument("--stall", type=float, default=0.0)
    ap.add_argument("--period", type=float, default=10.0)
    ap.add_argument("--t0", type=float, default=None)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--stats", default="")
    ap.add_argument("--max-life", type=float, default=900.0, help="exit after this many seconds whatever happens")
    asyncio.run(main(ap.parse_args()))
