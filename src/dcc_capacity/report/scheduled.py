"""The SECMP0192 executions' responses in the report: counted where they belong, and nowhere else.

Why apart: a DCC-scheduled execution (SECMP0192 4.3 / 4.4.3, created by a 5.1) is the DCC's work, not an SRV the
Service User sent. Its response reaches the callback listener as a record row of kind ``scheduled``
(:data:`dcc_capacity.load.recordformat.SCHEDULED_KIND`), with a TRT from its due time on the emulator's clock that
may be hours long. Counted as a request it would inflate the user class's offered rate, the run's SRV totals and
error rates, and dominate the run's TRT percentiles. So :mod:`.metrics` gives these rows (``sched_row``) to:

- SRV class ``scheduled`` only, of all the groupings (NFR-0192-TRT's scope, exact percentiles);
- MP192-SA5's TPS (:mod:`.tps`): each execution a request (at its due time, or its arrival when the response
  carries no due stamp), each response a response (at its arrival, whatever its code);
- this module's :class:`ScheduledTally` (counts, correlated / unknown) and :func:`section`, the report's
  "SECMP0192 scheduled executions" part and summary.json's ``scheduled``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from dcc_capacity.load.scheduled import UNKNOWN_SCHEDULE
from dcc_capacity.report.columns import grow

__all__ = ["SCHEDULED_CLASS", "ScheduledCounts", "ScheduledTally", "section"]

SCHEDULED_CLASS = "scheduled"
"""The SRV class (report dimension ``srv_class``) of the scheduled rows: NFR-0192-TRT's scope."""


@dataclass
class ScheduledCounts:
    """What the records say about the scheduled executions' responses (all counts exact)."""

    responses: int = 0
    ok: int = 0
    """Correlated to a schedule of the run and answered with an I code (a correct signature where checked)."""
    unknown: int = 0
    """Not correlated to a schedule the run created (an unknown DSPScheduleID, or another RequestID)."""
    unmeasured: int = 0
    """No due stamp (a real SUT's response): counted, TRT not measured."""
    rates: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["t_s", "requests_rate",
                                                                              "responses_rate"]))
    """t_s (bucket start from run start), requests_rate (executions due), responses_rate (responses arrived) /s."""

    @property
    def failed(self) -> int:
        return self.responses - self.ok


class ScheduledTally:
    """Per-batch sums over the scheduled rows (a handful of small arrays, whatever the run's length)."""

    def __init__(self) -> None:
        self.counts = ScheduledCounts()
        self.series = np.zeros((2, 0), dtype=np.int64)  # (requests, responses) x bucket

    @property
    def width(self) -> int:
        return int(self.series.shape[1])

    def add(self, rows: pd.DataFrame, t0: float, bucket_s: int) -> None:
        c = self.counts
        outcome = rows["outcome"].to_numpy(dtype=object)
        error = rows["error"].fillna("").astype(str) if "error" in rows.columns else pd.Series([""] * len(rows))
        trt = rows["trt_ms"].to_numpy(dtype=float, na_value=np.nan)
        c.responses += len(rows)
        c.ok += int((outcome == "ok").sum())
        c.unknown += int(error.str.startswith(UNKNOWN_SCHEDULE).sum())
        c.unmeasured += int(np.isnan(trt).sum())
        arrival = rows["callback_ts"].to_numpy(dtype=float, na_value=np.nan)
        due = rows["intended_ts"].to_numpy(dtype=float, na_value=np.nan)
        due = np.where(np.isnan(due), arrival, due)
        for i, ts in enumerate((due, arrival)):
            ts = ts[~np.isnan(ts)]
            if not len(ts):
                continue
            b = np.maximum(((ts - t0) // bucket_s).astype(np.int64), 0)
            counts = np.bincount(b)
            self.series = grow(self.series, 2, len(counts))
            self.series[i, : len(counts)] += counts

    def result(self, k: int, bucket: int) -> ScheduledCounts:
        """The counts, with the series merged ``k`` buckets at a time into buckets of ``bucket`` s (as the run's)."""
        width = self.width
        if width:
            cols = -(-width // k) * k
            s = grow(self.series, 2, cols).reshape(2, -1, k).sum(axis=2) / bucket
            self.counts.rates = pd.DataFrame({"t_s": np.arange(s.shape[1]) * bucket, "requests_rate": s[0],
                                              "responses_rate": s[1]})
        return self.counts


def section(counts: ScheduledCounts | None, srv_class: pd.DataFrame | None, nfrs: list[Any]) -> dict[str, Any] | None:
    """The report's (and summary.json's ``scheduled``) figures, or None when the run had no scheduled response.

    TRT percentiles are SRV class ``scheduled``'s exact ones, on the schedule's clock (the emulator's compressed
    midnight: (arrival - due) x its time scale); the target is the catalogue's NFR on that class, with its source.
    """
    if counts is None or not counts.responses:
        return None
    row = srv_class.loc[SCHEDULED_CLASS] if srv_class is not None and SCHEDULED_CLASS in srv_class.index else None
    nfr = next((n for n in nfrs if n.metric == "trt_ms" and n.scope == ("srv_class", SCHEDULED_CLASS)), None)
    trt = {q: (float(row[f"trt_{q}"]) if row is not None else None) for q in ("p50", "p95", "max")}
    return {
        "responses": counts.responses, "ok": counts.ok, "failed": counts.failed,
        "correlated": counts.responses - counts.unknown, "unknown": counts.unknown,
        "trt_measured": int(row["trt_n"]) if row is not None else 0, "trt_unmeasured": counts.unmeasured,
        "trt_ms": trt,
        "target": None if nfr is None else {"nfr": nfr.id, "stat": nfr.stat, "op": nfr.op,
                                            "threshold_ms": nfr.threshold,
                                            "threshold_h": None if nfr.threshold is None else nfr.threshold / 3.6e6,
                                            "source": nfr.source},
    }
