"""The report's numbers, computed from record batches without holding them all.

Everything here is a sum over batches (counts, per-second series, latency
histograms), so one pass over the records is enough, plus the selection pass
of :mod:`.quantiles` that makes percentiles exact. Pandas/numpy do the
vectorised work inside each batch; only small per-group tables survive
between batches. Peak memory is one batch plus O(groups x time buckets).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dcc_capacity.load.records import OUTCOMES
from dcc_capacity.model.nfr import FAILED_OUTCOMES
from dcc_capacity.report.columns import (
    LabelCodes,
    factorize,
    grow,
    grow_rows,
    lag_ms,
    masked,
    natural_key,
    row_flag,
    srv_class_of,
)
from dcc_capacity.report.quantiles import COARSE, NBINS, QUANTILES, GroupedQuantiles, bin_index, quantile_from_hist
from dcc_capacity.report.scheduled import SCHEDULED_CLASS, ScheduledCounts, ScheduledTally

__all__ = ["DIMENSIONS", "NEEDED_COLUMNS", "Metrics", "Aggregator", "compute_metrics", "failure_reason"]

DIMENSIONS = ("all", "srv", "srv_class", "class", "slot", "step", "srv_slot", "label")
"""Groupings every count and percentile is given for. All count SRV rows (a critical SRV's CV 4 + CV 5 once,
see :mod:`.srvfold`) except ``label``, which counts step rows: CV 4 and CV 5 apart. ``srv_class`` counts the
SECMP0192 executions' responses (``sched_row``) too, as its class ``scheduled`` (:mod:`.scheduled`); no other does."""
STEP_DIMENSIONS = frozenset({"label"})
SCHED_DIMENSION = "srv_class"
NEEDED_COLUMNS = ["user_class", "srv_variant", "step", "intended_ts", "sent_ts", "ack_ts", "callback_ts", "ack_ms",
                  "trt_ms", "ack_code", "response_code", "outcome", "error", "label", "srv_row", "step_row",
                  "sched_row"]
LATENCIES = ("ack_ms", "trt_ms")
MAX_BUCKETS = 600
"""At most this many time buckets in the over-time series (they merge when a run outlives its plan)."""
_OUT = list(OUTCOMES) + ["other"]
_FAILED_IDX = np.array([_OUT.index(o) for o in FAILED_OUTCOMES], dtype=np.int64)
MAX_REASONS = 200
"""Distinct failure reasons kept; the rest are counted as ``other`` (error texts are not a bounded set)."""


def failure_reason(error: str, outcome: str) -> str:
    """The reason a failure is counted under: the error text up to its second ``:`` (``bad response
    signature: digest mismatch``, ``HTTP 429 E47``, ``ConnectionRefusedError: [Errno 111] ...``), else the
    outcome. Long tails (exception details, timings) stay in the records."""
    text = (error or "").strip()
    if not text:
        return outcome
    head = ":".join(text.split(":", 2)[:2]).strip()
    return head[:120]


@dataclass
class Metrics:
    """Everything the report shows about the records (all exact except ``latency_time``)."""

    requests: int
    first_ts: float | None
    last_ts: float | None
    bucket_s: int
    groups: dict[str, pd.DataFrame]
    """dimension -> one row per label: requests, each outcome, ack_*/trt_* p50/p95/p99/max and n."""
    codes: pd.DataFrame
    """outcome, ack_code, response_code, count."""
    rates: pd.DataFrame
    """t_s (bucket start from run start), user_class, offered_rate, achieved_rate (req/s)."""
    latency_time: pd.DataFrame
    """t_s, {ack,trt}_{p50,p95,p99}: histogram estimates (bin centre, within about 2.2 %) per bucket."""
    step_span: pd.DataFrame = field(default_factory=pd.DataFrame)
    """step -> first/last intended_ts, to turn step counts into rates."""
    failure_reasons: dict[str, int] = field(default_factory=dict)
    """Failed requests by reason (see :func:`failure_reason`), most frequent first."""
    send_lag: dict[str, float] = field(default_factory=dict)
    """Actual - planned send over every request sent (ms): p50, p95, p99, max, n. Exact, like the latencies."""
    scheduled: ScheduledCounts = field(default_factory=ScheduledCounts)
    """The SECMP0192 executions' responses: in none of the above but SRV class ``scheduled`` (:mod:`.scheduled`)."""

    def overall(self) -> dict[str, Any]:
        return self.groups["all"].iloc[0].to_dict() if len(self.groups["all"]) else {}


class Aggregator:
    """Feed record batches to ``add``, then ``plan``, ``collect_spilled`` and ``finish`` for :class:`Metrics`.

    Pass 2 (exact percentiles) reads back a compact binary copy of the group
    codes and latencies written to ``spill`` during pass 1 (about 40 bytes a
    record, on disk): re-parsing the record files would cost as much again.
    """

    def __init__(self, start_epoch: float, run_slot: str | None, expected_duration_s: float | None,
                 spill: str | Path | None = None) -> None:
        self.t0 = start_epoch
        self.spill = spill
        self._spilled = 0
        self.run_slot = run_slot or "-"
        self.bucket_s = max(1, int(np.ceil((expected_duration_s or 600) / 240)))
        self.codes = {d: LabelCodes() for d in DIMENSIONS}
        self.lat = {(m, d): GroupedQuantiles() for m in LATENCIES for d in DIMENSIONS}
        self.outcomes = {d: np.zeros((0, len(_OUT)), dtype=np.int64) for d in DIMENSIONS}
        self.code_counts: dict[tuple[str, str, str], int] = {}
        self.offered = np.zeros((0, 0), dtype=np.int64)  # class x bucket
        self.achieved = np.zeros((0, 0), dtype=np.int64)
        self.lat_time = {m: np.zeros((0, NBINS // COARSE), dtype=np.int64) for m in LATENCIES}
        self.first_ts: float | None = None
        self.last_ts: float | None = None
        self.requests = 0
        self.step_min: dict[Any, float] = {}
        self.step_max: dict[Any, float] = {}
        self.reasons: dict[str, int] = {}
        self.lag = GroupedQuantiles()
        """Send lag of every step row that was sent: the generator's own lateness (its validity, not the SUT's)."""
        self.sched = ScheduledTally()

    # ----- per-batch grouping -------------------------------------------------------------
    def _labels(self, batch: pd.DataFrame, dim: str) -> tuple[np.ndarray, list[Any]]:
        n = len(batch)
        if dim == "all":
            return np.zeros(n, dtype=np.int64), ["all"]
        if dim == "slot":
            if "slot" in batch.columns:
                return factorize(batch["slot"])
            return np.zeros(n, dtype=np.int64), [self.run_slot]
        if dim == "srv_class":
            codes, uniq = factorize(batch["srv_variant"])
            classes = [srv_class_of(u) for u in uniq]
            sched = _sched_flag(batch)
            if sched.any():  # a SECMP0192 execution's response: class "scheduled", whatever its variant's class
                classes.append(SCHEDULED_CLASS)
                codes = np.where(sched, len(classes) - 1, codes)
            c2, u2 = pd.factorize(pd.Series(classes, dtype=object))
            return c2[codes] if len(classes) else codes, list(u2)
        if dim == "srv_slot":
            c1, u1 = factorize(batch["srv_variant"])
            c2, u2 = self._labels(batch, "slot")
            combo = c1 * max(len(u2), 1) + c2
            local, pairs = pd.factorize(combo)
            return local, [f"{u1[p // max(len(u2), 1)]}|{u2[p % max(len(u2), 1)]}" for p in pairs]
        if dim == "label" and "label" not in batch.columns:
            dim = "srv"
        column = {"srv": "srv_variant", "class": "user_class", "step": "step", "label": "label"}[dim]
        return factorize(batch[column])

    def _global_codes(self, batch: pd.DataFrame) -> dict[str, np.ndarray]:
        out = {}
        for dim in DIMENSIONS:
            local, uniq = self._labels(batch, dim)
            out[dim] = self.codes[dim].encode(local, uniq)
        return out

    # ----- pass 1 ---------------------------------------------------------------------------
    def add(self, batch: pd.DataFrame) -> None:
        if not len(batch):
            return
        srv_m, step_m = row_flag(batch, "srv_row"), row_flag(batch, "step_row")
        sched_m = _sched_flag(batch)
        any_sched = bool(sched_m.any())
        class_m = srv_m | sched_m if any_sched else srv_m
        self.requests += int(srv_m.sum())
        codes = self._global_codes(batch)
        values = {m: batch[m].to_numpy(dtype=float, na_value=np.nan) for m in LATENCIES}
        bins = {m: bin_index(values[m]) for m in LATENCIES}
        lag = lag_ms(batch, step_m)
        self.lag.add(np.zeros(len(lag), dtype=np.int64), lag)
        if self.spill is not None:
            self._spill(codes, values, srv_m, step_m, lag, sched_m if any_sched else None)
        oc, ou = factorize(batch["outcome"])
        lut = np.array([OUTCOMES.index(u) if u in OUTCOMES else len(OUTCOMES) for u in ou] or [0], dtype=np.int64)
        outcome = lut[oc]
        views = {k: masked(values, m) for k, m in (("srv", srv_m), ("step", step_m))}
        views["class"] = masked(values, class_m) if any_sched else views["srv"]
        for dim in DIMENSIONS:
            g = codes[dim]
            keep = {"step": step_m, "class": class_m, "srv": srv_m}[_view(dim)]
            groups = int(g.max()) + 1
            counts = np.bincount(g[keep] * len(_OUT) + outcome[keep],
                                 minlength=groups * len(_OUT)).reshape(groups, len(_OUT))
            self.outcomes[dim] = grow_rows(self.outcomes[dim], groups)
            self.outcomes[dim][:groups] += counts
            vals = views[_view(dim)]
            for m in LATENCIES:
                self.lat[(m, dim)].add(g, vals[m], bins[m])
        if any_sched:
            self.sched.add(batch[sched_m], self.t0, self.bucket_s)
        if not srv_m.any():  # only CV 4 / CV 5 steps whose SRV rows come with a later batch
            return
        if not srv_m.all():
            batch, outcome, cls = batch[srv_m], outcome[srv_m], codes["class"][srv_m]
        else:
            cls = codes["class"]
        self._add_codes(batch)
        self._add_reasons(batch, outcome)
        self._add_time(batch, cls, outcome)
        self._add_steps(batch)

    def _add_reasons(self, batch: pd.DataFrame, outcome: np.ndarray) -> None:
        """Count failed rows by reason: one value_counts over the (few) failed rows, reasons per distinct text."""
        failed = np.isin(outcome, _FAILED_IDX)
        if not failed.any():
            return
        errors = batch["error"][failed] if "error" in batch.columns else pd.Series([""] * int(failed.sum()))
        outcomes = pd.Series(np.asarray(_OUT, dtype=object)[outcome[failed]], index=errors.index)
        for (text, out), n in pd.DataFrame({"e": errors.fillna("").astype(str), "o": outcomes}).value_counts(
                sort=False).items():
            reason = failure_reason(text, out)
            if reason not in self.reasons and len(self.reasons) >= MAX_REASONS:
                reason = "other"
            self.reasons[reason] = self.reasons.get(reason, 0) + int(n)

    def _add_codes(self, batch: pd.DataFrame) -> None:
        parts = [factorize(batch[c]) for c in ("outcome", "ack_code", "response_code")]
        sizes = [len(u) + 1 for _, u in parts]
        key = (parts[0][0] * sizes[1] + parts[1][0]) * sizes[2] + parts[2][0]
        counts = np.bincount(key)
        for k in np.flatnonzero(counts):
            a, rest = divmod(int(k), sizes[1] * sizes[2])
            b, c = divmod(rest, sizes[2])
            outcome, ack, response = ("" if lab == "-" else lab for lab in (parts[0][1][a], parts[1][1][b],
                                                                                parts[2][1][c]))
            label = (outcome, ack, response)
            self.code_counts[label] = self.code_counts.get(label, 0) + int(counts[k])

    def _add_time(self, batch: pd.DataFrame, cls: np.ndarray, outcome: np.ndarray) -> None:
        intended = batch["intended_ts"].to_numpy(dtype=float, na_value=np.nan)
        done = batch["callback_ts"].to_numpy(dtype=float, na_value=np.nan)
        ack = batch["ack_ts"].to_numpy(dtype=float, na_value=np.nan)
        done = np.where(np.isnan(done), ack, done)
        finite = intended[~np.isnan(intended)]
        if len(finite):
            lo, hi = float(finite.min()), float(np.nanmax(np.concatenate([finite, done[~np.isnan(done)]])))
            self.first_ts = lo if self.first_ts is None else min(self.first_ts, lo)
            self.last_ts = hi if self.last_ts is None else max(self.last_ts, hi)
        n_cls = int(cls.max()) + 1
        for arr_name, ts, mask in (("offered", intended, ~np.isnan(intended)),
                                   ("achieved", done, (outcome == 0) & ~np.isnan(done))):
            b = np.maximum(((ts[mask] - self.t0) // self.bucket_s).astype(np.int64), 0)
            width = int(b.max()) + 1 if len(b) else 0
            counts = np.bincount(cls[mask] * max(width, 1) + b, minlength=n_cls * max(width, 1))
            arr = grow(getattr(self, arr_name), n_cls, width)
            arr[:n_cls, :width] += counts.reshape(n_cls, max(width, 1))[:, :width]
            setattr(self, arr_name, arr)
        b = np.maximum(((intended - self.t0) // self.bucket_s), 0)
        for m in LATENCIES:
            v = batch[m].to_numpy(dtype=float, na_value=np.nan)
            ok = ~np.isnan(v) & ~np.isnan(b)
            if not ok.any():
                continue
            bb = b[ok].astype(np.int64)
            width = int(bb.max()) + 1
            nb = NBINS // COARSE
            counts = np.bincount(bb * nb + bin_index(v[ok]) // COARSE, minlength=width * nb).reshape(width, nb)
            self.lat_time[m] = grow_rows(self.lat_time[m], width)
            self.lat_time[m][:width] += counts

    def _add_steps(self, batch: pd.DataFrame) -> None:
        codes, uniq = factorize(batch["step"])
        if uniq == ["-"]:
            return
        span = pd.Series(batch["intended_ts"].to_numpy()).groupby(codes).agg(["min", "max"])
        for code, row in span.iterrows():
            step = uniq[int(code)]
            if step == "-":
                continue
            self.step_min[step] = min(self.step_min.get(step, np.inf), row["min"])
            self.step_max[step] = max(self.step_max.get(step, -np.inf), row["max"])

    # ----- pass 2 ---------------------------------------------------------------------------
    def plan(self) -> None:
        for gq in self.lat.values():
            gq.plan()
        self.lag.plan()

    def _spill(self, codes: dict[str, np.ndarray], values: dict[str, np.ndarray], srv_m: np.ndarray,
               step_m: np.ndarray, lag: np.ndarray, sched_m: np.ndarray | None) -> None:
        """Keep what pass 2 needs (group codes, two latencies, the row views) in a binary temp file."""
        assert self.spill is not None
        path = Path(self.spill) / f"batch-{self._spilled:06d}.npz"
        arrays: dict[str, np.ndarray] = {f"c_{d}": codes[d].astype(np.int32) for d in DIMENSIONS if d != "all"}
        arrays.update(values, _srv=srv_m, _step=step_m, _lag=lag)
        if sched_m is not None:
            arrays["_sched"] = sched_m
        np.savez(path, allow_pickle=False, **arrays)  # numbers only (np.load would refuse pickles anyway)
        self._spilled += 1

    def collect_spilled(self) -> Iterator[int]:
        """Pass 2 over the spilled batches; yields the batch number for progress."""
        assert self.spill is not None
        for i in range(self._spilled):
            with np.load(Path(self.spill) / f"batch-{i:06d}.npz") as data:
                n = len(data["ack_ms"])
                codes = {d: (np.zeros(n, dtype=np.int64) if d == "all" else data[f"c_{d}"].astype(np.int64))
                         for d in DIMENSIONS}
                values = {m: data[m] for m in LATENCIES}
                views = {"srv": masked(values, data["_srv"]), "step": masked(values, data["_step"])}
                views["class"] = masked(values, data["_srv"] | data["_sched"]) if "_sched" in data.files \
                    else views["srv"]
                lag = data["_lag"]
            self.lag.collect(np.zeros(len(lag), dtype=np.int64), lag)
            bins = {m: bin_index(values[m]) for m in LATENCIES}
            for (m, dim), gq in self.lat.items():
                gq.collect(codes[dim], views[_view(dim)][m], bins[m])
            yield i + 1

    # ----- result ---------------------------------------------------------------------------
    def finish(self) -> Metrics:
        groups = {}
        for dim in DIMENSIONS:
            labels = self.codes[dim].labels
            df = pd.DataFrame(self.outcomes[dim][: len(labels)], columns=_OUT, index=pd.Index(labels, name=dim))
            df.insert(0, "requests", df.sum(axis=1))
            keep = df["requests"].to_numpy() > 0
            df["failures"] = df[list(FAILED_OUTCOMES)].sum(axis=1)
            for m in LATENCIES:
                res = self.lat[(m, dim)].result()
                short = m.split("_")[0]
                for q in [*QUANTILES, "n"]:
                    df[f"{short}_{q}"] = [res.get(i, {}).get(q, np.nan) for i in range(len(labels))]
                df[f"{short}_n"] = df[f"{short}_n"].fillna(0).astype(np.int64)  # a count: 0, never NaN
            df = df[keep]
            keys = [natural_key(label) for label in df.index]
            groups[dim] = df.iloc[sorted(range(len(df)), key=keys.__getitem__)]
        codes = pd.DataFrame([(*k, v) for k, v in sorted(self.code_counts.items())],
                             columns=["outcome", "ack_code", "response_code", "count"])
        n_cls = len(self.codes["class"].labels)
        width = max(self.offered.shape[1], self.achieved.shape[1], *(len(h) for h in self.lat_time.values()))
        # a run longer than planned: merge buckets, keep charts readable (the scheduled responses' series alike)
        k = max(1, -(-max(width, self.sched.width) // MAX_BUCKETS))
        bucket = self.bucket_s * k
        cols = -(-width // k) * k if width else 0
        sent = set(groups["class"].index)  # not a class seen only on scheduled responses (none sent by the user)
        offered = grow(self.offered, n_cls, cols).reshape(n_cls, -1, k).sum(axis=2) if cols else self.offered
        achieved = grow(self.achieved, n_cls, cols).reshape(n_cls, -1, k).sum(axis=2) if cols else self.achieved
        rows = [(t * bucket, cls, offered[ci, t] / bucket, achieved[ci, t] / bucket)
                for ci, cls in enumerate(self.codes["class"].labels) for t in range(offered.shape[1])
                if cls in sent]
        rates = pd.DataFrame(rows, columns=["t_s", "user_class", "offered_rate", "achieved_rate"])
        lt: dict[str, Any] = {"t_s": np.arange(cols // k) * bucket}
        for m in LATENCIES:
            h = grow_rows(self.lat_time[m], cols).reshape(cols // k, k, NBINS // COARSE).sum(axis=1)
            for q in ("p50", "p95", "p99"):
                lt[f"{m.split('_')[0]}_{q}"] = [quantile_from_hist(row, QUANTILES[q], COARSE) for row in h]
        steps = pd.DataFrame({"first_ts": pd.Series(self.step_min), "last_ts": pd.Series(self.step_max)})
        lag = self.lag.result().get(0, {})
        return Metrics(send_lag={k: float(v) for k, v in lag.items()},
                       requests=self.requests, first_ts=self.first_ts, last_ts=self.last_ts, bucket_s=bucket,
                       groups=groups, codes=codes, rates=rates, latency_time=pd.DataFrame(lt), step_span=steps,
                       failure_reasons=dict(sorted(self.reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
                       scheduled=self.sched.result(k, bucket))


def compute_metrics(batches: Callable[[], Iterator[pd.DataFrame]], start_epoch: float, run_slot: str | None,
                    expected_duration_s: float | None, progress: Callable[[str], None] = lambda _m: None) -> Metrics:
    """One streaming pass over ``batches()`` plus the spilled selection pass; the finished :class:`Metrics`."""
    with tempfile.TemporaryDirectory(prefix="dcc-report-") as spill:
        agg = Aggregator(start_epoch, run_slot, expected_duration_s, spill)
        for i, batch in enumerate(batches(), 1):
            agg.add(batch)
            progress(f"pass 1: batch {i} ({agg.requests:,} records)")
        agg.plan()
        for i in agg.collect_spilled():
            progress(f"pass 2 (exact percentiles): batch {i}")
    return agg.finish()


def _sched_flag(batch: pd.DataFrame) -> np.ndarray:
    """The SECMP0192 executions' response rows (``sched_row``; none when the batch has no such column)."""
    if "sched_row" not in batch.columns:
        return np.zeros(len(batch), dtype=bool)
    return batch["sched_row"].to_numpy(dtype=bool)


def _view(dim: str) -> str:
    """Which rows a dimension counts: step rows (``label``), SRV rows and scheduled ones (``srv_class``), SRV rows."""
    return "step" if dim in STEP_DIMENSIONS else "class" if dim == SCHED_DIMENSION else "srv"
