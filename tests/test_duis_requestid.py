"""RequestIDs are unique across Locust worker processes and strictly increasing within each."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dcc_capacity.duis.requestid import SLOT_BITS, RequestIdAllocator, claim_slot, parse_request_id
from dcc_capacity.errors import InputError

SRC = Path(__file__).resolve().parents[1] / "src"

_WORKER = """
import sys
from dcc_capacity.duis.factory import RequestFactory
from dcc_capacity.model.fleet import Fleet
from dcc_capacity.duis.pki import TestPKI
factory = RequestFactory.from_pki(TestPKI.load_or_create(sys.argv[1]), Fleet(seed=3, size=500))
variants = ["4.6.1", "4.8.1", "8.11", "1.6", "12.2"]
print("slot", factory.allocator.slot)
for n in range(int(sys.argv[2])):
    print(factory.build(variants[n % 5], n % 500).request_id)
"""


def test_two_processes_render_10000_requests_with_distinct_request_ids(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(SRC), "DCC_CAPACITY_SLOT_DIR": str(tmp_path / "slots")}
    env.pop("DCC_CAPACITY_SLOT", None)
    pki = tmp_path / "pki"
    subprocess.run([sys.executable, "-c", "import sys; from dcc_capacity.duis.pki import TestPKI; "
                    "TestPKI.load_or_create(sys.argv[1])", str(pki)], env=env, check=True)
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, str(pki), "5000"], env=env, stdout=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=120)[0].splitlines() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    slots = {int(out[0].split()[1]) for out in outputs}
    assert len(slots) == 2  # each worker claimed its own slot
    ids = [line for out in outputs for line in out[1:]]
    assert len(ids) == 10_000 and len(set(ids)) == 10_000
    for out in outputs:
        counters = [parse_request_id(line)[2] for line in out[1:]]
        assert all(a < b for a, b in zip(counters, counters[1:], strict=False))  # strictly increasing
        assert {c & ((1 << SLOT_BITS) - 1) for c in counters} == {int(out[0].split()[1])}
        assert all(c < 1 << 64 for c in counters)


def test_same_microsecond_borrows_the_next_one():
    alloc = RequestIdAllocator(slot=5, clock=lambda: 1_700_000_000_000_000_000)
    a, b, c = (alloc.next_counter() for _ in range(3))
    assert a == (1_700_000_000_000_000 << SLOT_BITS) | 5
    assert b - a == c - b == 1 << SLOT_BITS


def test_counter_follows_the_clock_and_never_goes_back():
    now = [2_000_000_000_000]
    alloc = RequestIdAllocator(slot=0, clock=lambda: now[0])
    first = alloc.next_counter()
    now[0] -= 10_000_000  # clock stepped back 10 ms
    assert alloc.next_counter() > first
    now[0] += 1_000_000_000
    assert alloc.next_counter() == (now[0] // 1000) << SLOT_BITS


def test_request_id_format_matches_duis():
    rid = RequestIdAllocator(slot=1).request_id("90-B3-D5-1F-30-01-00-00", "00-DB-01-A0-00-00-00-01")
    originator, target, counter = parse_request_id(rid)
    assert (originator, target) == ("90-B3-D5-1F-30-01-00-00", "00-DB-01-A0-00-00-00-01")
    assert counter > 10**17


def test_slots_claimed_in_one_process_are_distinct(tmp_path, monkeypatch):
    monkeypatch.setenv("DCC_CAPACITY_SLOT_DIR", str(tmp_path))
    monkeypatch.delenv("DCC_CAPACITY_SLOT", raising=False)
    assert len({claim_slot() for _ in range(5)}) == 5


def test_explicit_slot_from_the_environment(monkeypatch):
    monkeypatch.setenv("DCC_CAPACITY_SLOT", "17")
    assert RequestIdAllocator().slot == 17
    monkeypatch.setenv("DCC_CAPACITY_SLOT", "5000")
    with pytest.raises(InputError, match="DCC_CAPACITY_SLOT: must be an integer 0..1023"):
        RequestIdAllocator()


def test_a_forked_worker_claims_its_own_slot(tmp_path, monkeypatch):
    """Locust --processes forks after the locustfile made its allocator: the child must not reuse the slot."""
    monkeypatch.setenv("DCC_CAPACITY_SLOT_DIR", str(tmp_path))
    monkeypatch.delenv("DCC_CAPACITY_SLOT", raising=False)
    parent = RequestIdAllocator()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.write(write, str(parent.slot).encode())
        os._exit(0)
    os.close(write)
    child_slot = int(os.read(read, 32))
    os.waitpid(pid, 0)
    assert child_slot != parent.slot
