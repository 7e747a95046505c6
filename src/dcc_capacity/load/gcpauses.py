"""Garbage-collector pauses in a load process: measured, and kept short by freezing what lives all run.

A load process holding tens of thousands of awaited responses has a big heap,
and a full collection walks all of it while no request goes out: that shows
as send lag. :class:`GcPauses` measures every collection (so the lag has an
explanation in ``drain-<process>.json``); :func:`tame_gc` moves what exists
at test start out of the collector's sight.
"""

from __future__ import annotations

import collections
import gc
import os
import sys
import time
from typing import Any

__all__ = ["GcPauses", "freeze_survivors", "tame_gc"]


class GcPauses:
    """Python's garbage-collector pauses in this process: count, total and longest per generation."""

    def __init__(self) -> None:
        self.started = 0.0
        self.count = [0, 0, 0]
        self.total_ms = [0.0, 0.0, 0.0]
        self.max_ms = [0.0, 0.0, 0.0]

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
            return
        gen = int(info.get("generation", 0))
        ms = (time.perf_counter() - self.started) * 1000
        self.count[gen] += 1
        self.total_ms[gen] += ms
        self.max_ms[gen] = max(self.max_ms[gen], ms)
        if gen == 2 and os.environ.get("DCC_GC_DEBUG"):
            objs = gc.get_objects(2)
            top = collections.Counter(type(o).__name__ for o in objs).most_common(8)
            print(f"[gc] gen2 {ms:.0f} ms, {len(objs)} objects in gen2: {top}", file=sys.stderr, flush=True)

    def to_dict(self) -> dict[str, Any]:
        return {f"gen{g}": {"count": self.count[g], "total_ms": round(self.total_ms[g], 1),
                            "max_ms": round(self.max_ms[g], 2)} for g in range(3)}


def tame_gc(pauses: GcPauses | None) -> GcPauses:
    """Keep full collections short: what exists at test start (modules, the fleet, templates, keys) lives for
    the whole run, so it is moved out of the collector's sight (``gc.freeze``); only what the run creates is
    walked. Measured: without it, full collections with ~70,000 responses awaited took hundreds of ms, and every
    request due meanwhile was sent that late (docs/performance.md, bench_pending). Returns the pause meter
    (``pauses``, or a new one hooked to the collector)."""
    if pauses is None:
        pauses = GcPauses()
        gc.callbacks.append(pauses)
    gc.collect()
    gc.freeze()
    return pauses


def freeze_survivors() -> None:
    """Once the users (and what they built on first use: the fleet, its pools, the request factory) are in place:
    out of the collector's sight too. No collection here (the load is already going); freeze only moves."""
    gc.freeze()
