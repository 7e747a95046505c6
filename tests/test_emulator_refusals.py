"""SECMP0067 throttling (E47, HTTP 429) and a full queue (E48, HTTP 503) answer with their own DUIS responses.

The capacity tests count the HTTP statuses under load; these check the DUIS
answer a Service User actually parses, one refusal at a time.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from _emulator_helpers import PKI_DIR, post, signed_request
from dcc_capacity.duis.responses import parse_response
from dcc_capacity.emulator import codes as C
from dcc_capacity.emulator import start_emulator

pytestmark = pytest.mark.quiet  # its figures depend on the CPU it gets (tests/_lanes.py)

SLOW = {"device": {"dist": "fixed", "mean_ms": 1000}}


def _until(condition, timeout: float = 5.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_throttled_request_gets_e47():
    cfg = {"port": 0, "pki_dir": str(PKI_DIR), "throttle": {"total_tps": 1, "burst_s": 1.0}}
    with start_emulator(cfg) as emu, httpx.Client(timeout=10) as client:
        first, second = (post(client, emu, "S", signed_request("4.1.1")) for _ in range(2))
        assert first.status_code == 200 and parse_response(first.content).response_code == "I99"
        refused = parse_response(second.content)
        assert second.status_code == 429 and refused.response_code == C.E_THROTTLED
        assert refused.srv_variant == "4.1.1" and refused.signed
        assert emu.metrics()["by_class"]["device"]["throttled"] == 1


def test_full_queue_gets_e48():
    """One worker busy for 1 s, a queue of one: the third request at once is refused."""
    cfg = {"port": 0, "pki_dir": str(PKI_DIR), "throttle": {"enabled": False},
           "capacity": {"tps": 100, "workers": 1, "queue_limit": 1, "service_time": SLOW}}
    bodies = [signed_request("4.1.1") for _ in range(3)]
    with start_emulator(cfg) as emu, httpx.Client(timeout=10) as client:
        with ThreadPoolExecutor(3) as pool:
            first = pool.submit(post, client, emu, "S", bodies[0])
            _until(lambda: emu.metrics()["workers_busy"] == 1)
            second = pool.submit(post, client, emu, "S", bodies[1])
            _until(lambda: emu.metrics()["queue_depth"] == 1)
            third = post(client, emu, "S", bodies[2])
            assert third.status_code == 503 and parse_response(third.content).response_code == C.E_QUEUE_FULL
            assert [f.result().status_code for f in (first, second)] == [200, 200]
        assert emu.metrics()["by_class"]["device"]["queue_full"] == 1
