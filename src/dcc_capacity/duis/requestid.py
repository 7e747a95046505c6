"""RequestIDs: ``originator EUI-64 : target EUI-64 : counter``, unique across Locust workers.

DUIS (and GBCS behind it) wants each Service User's counters to go up: the
DCC rejects a replayed or stale RequestID, and a device rejects a command
whose originator counter is not above the last one it saw. Several load
generator processes sign as the same Service User, so the counter cannot be
a plain per-process sequence. The scheme, with no coordination on the hot path:

    counter = (microseconds since the Unix epoch) << SLOT_BITS | slot

* ``slot`` (0..1023) is the process's own number. Two processes never share
  one, so they can never produce the same counter: the low bits differ.
  By default a process claims the lowest free slot on this machine by holding
  an exclusive ``flock`` on ``<tmp>/dcc-capacity-slots/slot-N.lock`` for its
  lifetime (released by the kernel when it dies, so no stale claims). A
  process forked after creating an allocator (Locust ``--processes``) claims
  a new slot in the child. Across machines, give each generator its slot
  explicitly (``slot=`` or the ``DCC_CAPACITY_SLOT`` environment variable).
* Within a process the counter is strictly increasing: when two requests fall
  in the same microsecond the second takes ``last + 2**SLOT_BITS`` (it
  borrows the next microsecond). Across processes counters follow the clock,
  so requests sent at least a few microseconds apart (any two requests to the
  same device in practice) arrive with increasing counters.
* Size: today's microseconds (~1.8e15) << 10 is ~1.8e18, under the DUIS
  schema's ceiling of 2**64 - 1 until the year 2540.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import threading
import time
import weakref
from pathlib import Path

from dcc_capacity.errors import InputError

__all__ = ["SLOT_BITS", "RequestIdAllocator", "claim_slot", "format_request_id", "parse_request_id"]

try:  # a real lock even under gevent's monkey-patching (no greenlet switch can happen inside; ~10x cheaper)
    from gevent.monkey import get_original

    _allocate_lock = get_original("_thread", "allocate_lock")
except ImportError:  # pragma: no cover - gevent comes with locust
    _allocate_lock = threading.Lock

SLOT_BITS = 10
MAX_SLOT = (1 << SLOT_BITS) - 1
_held: list[object] = []  # open lock files: keep them (and the claims) for the process lifetime
_auto: weakref.WeakSet[RequestIdAllocator] = weakref.WeakSet()  # allocators whose slot was claimed, not given


def _slot_dir() -> Path:
    return Path(os.environ.get("DCC_CAPACITY_SLOT_DIR") or Path(tempfile.gettempdir()) / "dcc-capacity-slots")


def claim_slot() -> int:
    """The lowest slot no other live process on this machine holds; held until this process exits."""
    env = os.environ.get("DCC_CAPACITY_SLOT")
    if env is not None:
        try:
            slot = int(env)
        except ValueError:
            slot = -1
        if not 0 <= slot <= MAX_SLOT:
            raise InputError(f"must be an integer 0..{MAX_SLOT} (got {env!r})", key="DCC_CAPACITY_SLOT")
        return slot
    folder = _slot_dir()
    folder.mkdir(parents=True, exist_ok=True)
    for slot in range(MAX_SLOT + 1):
        fh = open(folder / f"slot-{slot}.lock", "a+")  # noqa: SIM115 - must stay open to hold the lock
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            continue
        _held.append(fh)
        return slot
    raise InputError(f"all {MAX_SLOT + 1} RequestID slots on this machine are in use", key="slot")


class RequestIdAllocator:
    """Hands out strictly increasing, process-unique RequestID counters (thread-safe).

    ``next_counter()`` costs well under a microsecond; ``request_id(originator, target)``
    formats the whole RequestID.
    """

    __slots__ = ("slot", "_last", "_lock", "_clock", "__weakref__")

    def __init__(self, slot: int | None = None, clock=time.time_ns) -> None:  # noqa: ANN001
        if slot is None:
            slot = claim_slot()
            _auto.add(self)
        if not 0 <= slot <= MAX_SLOT:
            raise InputError(f"must be 0..{MAX_SLOT} (got {slot})", key="slot")
        self.slot = slot
        self._last = 0
        self._lock = _allocate_lock()
        self._clock = clock

    def next_counter(self) -> int:
        """The next counter: now in microseconds, shifted, with this process's slot in the low bits."""
        candidate = (self._clock() // 1000) << SLOT_BITS | self.slot
        with self._lock:
            if candidate <= self._last:
                candidate = self._last + (1 << SLOT_BITS)
            self._last = candidate
        return candidate

    def request_id(self, originator: str, target: str) -> str:
        """``originator:target:counter`` with a fresh counter."""
        return f"{originator}:{target}:{self.next_counter()}"


def format_request_id(originator: str, target: str, counter: int) -> str:
    return f"{originator}:{target}:{counter}"


def parse_request_id(request_id: str) -> tuple[str, str, int]:
    """(originator, target, counter) of a RequestID; ValueError when it is not one."""
    originator, target, counter = request_id.split(":")
    return originator.upper(), target.upper(), int(counter)


def _reclaim_after_fork() -> None:
    """A forked child (Locust ``--processes``) must not reuse its parent's slot: claim a fresh one."""
    if os.environ.get("DCC_CAPACITY_SLOT") is not None:
        return
    for allocator in list(_auto):
        allocator.slot = claim_slot()
        allocator._last = 0
        allocator._lock = _allocate_lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reclaim_after_fork)
