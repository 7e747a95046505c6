"""Callback delivery: pipelined keep-alive, servers that close after each answer, refuse, or are not there."""

from __future__ import annotations

import socket
import time

import pytest

from _emulator_helpers import PKI_DIR, CallbackListener, blast, signed_request
from dcc_capacity.emulator import start_emulator

pytestmark = pytest.mark.quiet  # its figures depend on the CPU it gets (tests/_lanes.py)

FAST = {"critical": {"dist": "fixed", "mean_ms": 1}, "device": {"dist": "fixed", "mean_ms": 1},
        "non_device": {"dist": "fixed", "mean_ms": 0}}


def _http10_listener(status: int = 200) -> CallbackListener:
    """Answers every POST, then closes the connection (HTTP/1.0): the sender must reconnect and resend."""
    return CallbackListener(status=status, protocol="HTTP/1.0")


def _settle(emu, timeout: float = 15.0) -> dict:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    m = emu.metrics()
    while time.monotonic() < deadline and (m["in_flight"] or m["callback_backlog"]):
        time.sleep(0.05)
        m = emu.metrics()
    return m


@pytest.mark.parametrize("listener_cls", [CallbackListener, _http10_listener])
def test_every_async_response_is_delivered_once_per_request(listener_cls):
    listener = listener_cls()
    try:
        with start_emulator({"port": 0, "pki_dir": str(PKI_DIR), "callback_url": listener.url,
                             "capacity": {"device_delay": FAST}}) as emu:
            bodies = [signed_request("4.1.1") for _ in range(60)]
            out = blast(emu.path("S"), bodies, rate=600, connections=8)
            assert [s for _, s, _ in out] == [200] * 60
            got = listener.wait_for(60, timeout=15)
            m = _settle(emu)
        ids = [b.split(b"<sr:RequestID>")[1].split(b"<")[0] for b in got]
        sent = {b.split(b"<sr:RequestID>")[1].split(b"<")[0] for b in bodies}
        assert set(ids) == sent and len(ids) == 60                   # each exactly once
        assert m["totals"]["callbacks_ok"] == 60 and m["totals"]["callbacks_failed"] == 0
        assert m["in_flight"] == 0 and m["callback_backlog"] == 0
    finally:
        listener.close()


def test_refused_and_failing_callbacks_are_counted_and_released():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    dead = f"http://127.0.0.1:{sock.getsockname()[1]}/cb"
    sock.close()                                          # nothing listens there
    failing = _http10_listener(status=500)
    try:
        for url in (dead, failing.url):
            with start_emulator({"port": 0, "pki_dir": str(PKI_DIR), "callback_url": url,
                                 "capacity": {"device_delay": FAST}}) as emu:
                out = blast(emu.path("S"), [signed_request("4.1.1") for _ in range(10)], rate=200, connections=2)
                assert [s for _, s, _ in out] == [200] * 10      # the gateway never waits for callbacks
                m = _settle(emu)
                assert m["totals"]["callbacks_failed"] == 10, url
                assert m["totals"]["callbacks_ok"] == 0 and m["in_flight"] == 0
    finally:
        failing.close()
