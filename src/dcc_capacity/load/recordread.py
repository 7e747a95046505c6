"""Reading the request records back: one file's batches, a whole run folded in memory, or streamed.

A request row and its later callback row are folded back into one row per
request step (see :mod:`.records` for why they are written apart); a
truncated tail (a killed writer's last second) is skipped and reported.
:func:`load_records` holds a run in memory (tests, small runs);
:func:`iter_records` streams it with memory bounded by the requests in
flight, for the report of a day-long soak.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from dcc_capacity.load.recordformat import COLUMNS, DEFAULTS, SCHEDULED_KIND, SCHEMA

__all__ = ["MISSING_HOLD", "RecordStats", "iter_raw_batches", "iter_records", "load_records", "record_files"]


@dataclass
class RecordStats:
    """What a read found besides rows: files read, files cut mid-message (a killed writer), alert rows."""

    files: int = 0
    truncated: list[str] = field(default_factory=list)
    alerts: int = 0
    raw_rows: int = 0


def record_files(run_dir: str | Path) -> list[Path]:
    """The run's record files: ``<run>/records/records-*.arrows`` (and, from older runs, ``<run>/records-*.arrows``)."""
    run = Path(run_dir)
    return sorted({*run.glob("records/records-*.arrows"), *run.glob("records-*.arrows")})


def iter_raw_batches(path: str | Path, stats: RecordStats | None = None,
                     columns: Sequence[str] | None = None) -> Iterator[pa.RecordBatch]:
    """Batches of one file, stopping quietly at a truncated tail (a killed writer's last second).

    ``columns``: decompress only these (in file order); the others are never materialised.
    A file from before a column was added (``smets``, ``prepay``) gets that column at its default.
    """
    wanted = list(COLUMNS) if columns is None else [c for c in COLUMNS if c in set(columns)]
    with pa.memory_map(str(path), "r") as source:
        try:
            names = pa.ipc.open_stream(source).schema.names  # the schema message only: cheap
            source.seek(0)
            options = None
            if columns is not None or names != list(COLUMNS):
                options = pa.ipc.IpcReadOptions(included_fields=[i for i, c in enumerate(names) if c in wanted])
            reader = pa.ipc.open_stream(source, options=options)
        except (pa.ArrowInvalid, OSError):  # killed before the schema made it to disk
            if stats is not None and source.size():
                stats.truncated.append(Path(path).name)
            return
        missing = [c for c in wanted if c not in names]
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except (pa.ArrowInvalid, OSError):
                if stats is not None:
                    stats.truncated.append(Path(path).name)
                return
            if stats is not None:
                stats.raw_rows += batch.num_rows
            if missing:
                batch = _with_defaults(batch, wanted)
            yield batch


def _with_defaults(batch: pa.RecordBatch, wanted: list[str]) -> pa.RecordBatch:
    """``batch`` with the ``wanted`` columns it lacks at their defaults, in ``wanted`` (COLUMNS) order."""
    have = set(batch.schema.names)
    arrays = [batch.column(c) if c in have else pa.array([DEFAULTS[c]] * batch.num_rows, type=SCHEMA.field(c).type)
              for c in wanted]
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema([SCHEMA.field(c) for c in wanted]))


def _raw_table(run_dir: Path) -> pa.Table:
    batches = [b for p in record_files(run_dir) for b in iter_raw_batches(p)]
    return pa.Table.from_batches(batches, schema=SCHEMA)


_KEY = ["process", "request_id", "step"]
_FROM_CALLBACK = ["callback_ts", "trt_ms", "response_code", "outcome", "error"]


def _fold(table: pa.Table) -> pa.Table:
    """Callback rows into their request rows, in Arrow (hash join in C++: ~1 s per few million rows)."""
    kind = table.column("kind")
    req = table.filter(pc.not_equal(kind, "callback"))
    cb = table.filter(pc.equal(kind, "callback"))
    if cb.num_rows == 0:
        return req
    # The last callback row per key wins (a late arrival after 'missing').
    cb = cb.append_column("_i", pa.array(range(cb.num_rows), pa.int64()))
    last = cb.group_by(_KEY, use_threads=False).aggregate([("_i", "max")]).column("_i_max")
    cb = cb.take(last).select([*_KEY, *_FROM_CALLBACK])
    cb = cb.rename_columns([*_KEY, *(f"_cb_{c}" for c in _FROM_CALLBACK)])
    req = req.append_column("_order", pa.array(range(req.num_rows), pa.int64()))
    joined = req.join(cb, keys=_KEY, join_type="left outer", use_threads=True).sort_by("_order")
    hit = pc.is_valid(joined.column("_cb_outcome"))
    # A failed ack (error/throttled) stays the outcome; otherwise the async side decides.
    take = pc.and_(hit, pc.is_in(joined.column("outcome"), value_set=pa.array(["ok", "pending"])))
    cols = {}
    for c in COLUMNS:
        col = joined.column(c)
        if c in ("callback_ts", "trt_ms"):
            col = pc.if_else(hit, joined.column(f"_cb_{c}"), col)
        elif c in ("response_code", "outcome", "error"):
            col = pc.if_else(take, joined.column(f"_cb_{c}"), col)
        cols[c] = col
    return pa.table(cols, schema=SCHEMA)


def load_records(run_dir: str | Path, *, raw: bool = False) -> pd.DataFrame:
    """All processes' records of a run as one DataFrame, one row per request step (plus alert and scheduled rows,
    told apart by ``kind``: a reader of the user's SRVs keeps ``kind == "request"``).

    Callback rows are folded into their request row by (process, request_id,
    step): the last callback row wins, so a response that arrived after the
    request had been declared ``missing`` turns it into ``late`` with its real
    TRT. A request that expected a callback and has none keeps outcome
    ``pending`` (the run stopped first). ``raw=True`` returns the rows as written.
    """
    table = _raw_table(Path(run_dir))
    if not raw:
        table = _fold(table)
    return table.to_pandas()


# -- streaming read ----------------------------------------------------------
MISSING_HOLD = 100_000
"""Rows folded as ``missing`` kept back per file in case a late response follows: the callback listener
remembers the same number of expired RequestIDs, so no late row it can write is lost (see :func:`iter_records`)."""
_FKEY = ["request_id", "step"]


class _FileFold:
    """Folds one process's file chunk by chunk, in Arrow; state is bounded by the requests still in flight.

    Only the wanted columns become pandas at the end: the key (``request_id``)
    and the error texts never need to be Python objects for the report.
    """

    def __init__(self, stats: RecordStats | None, kinds: Sequence[str], columns: Sequence[str] | None) -> None:
        self.stats = stats
        self.kinds = tuple(kinds)
        self.columns = list(columns) if columns is not None else list(COLUMNS)
        need = {*self.columns, "kind", *_FKEY, *_FROM_CALLBACK, "intended_ts"}
        self.read = [c for c in COLUMNS if c in need]
        self.schema = pa.schema([SCHEMA.field(c) for c in self.read])
        self.held = self.schema.empty_table()
        """Request rows whose outcome a callback row may still change: ``pending`` ones, and recent ``missing``."""
        self.orphans = SCHEMA.empty_table().select([*_FKEY, *_FROM_CALLBACK])
        """Callback rows that came before their request row (a fast response): kept for one more chunk."""

    def step(self, batches: list[pa.RecordBatch], final: bool) -> pd.DataFrame:
        table = pa.Table.from_batches(batches, schema=self.schema)
        kind = table.column("kind")
        if self.stats is not None:
            self.stats.alerts += int(pc.sum(pc.equal(kind, "alert")).as_py() or 0)
        req = table.filter(pc.equal(kind, "request"))
        waiting = pc.equal(req.column("outcome"), "pending")
        cbs = pa.concat_tables([self.orphans, table.filter(pc.equal(kind, "callback")).select(
            [*_FKEY, *_FROM_CALLBACK])])
        pool = pa.concat_tables([self.held, req.filter(waiting)])
        if cbs.num_rows and pool.num_rows:
            # The last callback row per key wins (late after missing).
            cbs = cbs.append_column("_i", pa.array(range(cbs.num_rows), pa.int64()))
            last = cbs.group_by(_FKEY, use_threads=False).aggregate([("_i", "max")]).column("_i_max")
            cbs = cbs.take(last).drop_columns(["_i"])
            cbs = cbs.rename_columns([*_FKEY, *(f"_cb_{c}" for c in _FROM_CALLBACK)])
            cbs = cbs.append_column("_r", pa.array(np.ones(cbs.num_rows, dtype=bool)))
            pool = pool.append_column("_l", pa.array(np.ones(pool.num_rows, dtype=bool)))
            joined = pool.join(cbs, keys=_FKEY, join_type="full outer", use_threads=False)
            left = pc.is_valid(joined.column("_l"))
            orphan = joined.filter(pc.invert(left))
            self.orphans = orphan.select([*_FKEY, *(f"_cb_{c}" for c in _FROM_CALLBACK)]).rename_columns(
                [*_FKEY, *_FROM_CALLBACK])
            joined = joined.filter(left)
            hit = pc.is_valid(joined.column("_r"))
            pool = pa.table({c: pc.if_else(hit, joined.column(f"_cb_{c}"), joined.column(c))
                             if c in _FROM_CALLBACK else joined.column(c) for c in self.read},
                            schema=self.held.schema)
        else:
            self.orphans = cbs
        out = [req.filter(pc.invert(waiting))]
        if final:
            out.append(pool)
            self.held = self.held.slice(0, 0)
        else:
            still = pc.is_in(pool.column("outcome"), value_set=pa.array(["pending", "missing"]))
            out.append(pool.filter(pc.invert(still)))
            held = pool.filter(still)
            is_missing = pc.equal(held.column("outcome"), "missing")
            n_missing = int(pc.sum(is_missing).as_py() or 0)
            if n_missing > MISSING_HOLD:  # the oldest missing rows can no longer turn late: release them
                missing = held.filter(is_missing).sort_by("intended_ts")
                out.append(missing.slice(0, n_missing - MISSING_HOLD))
                held = pa.concat_tables([held.filter(pc.invert(is_missing)), missing.slice(n_missing - MISSING_HOLD)])
            self.held = held
        rows = pa.concat_tables(out)
        for extra in ("alert", SCHEDULED_KIND):  # complete rows as written: nothing to fold
            if extra in self.kinds:
                rows = pa.concat_tables([rows, table.filter(pc.equal(kind, extra))])
        if "request" not in self.kinds:
            rows = rows.filter(pc.not_equal(rows.column("kind"), "request"))
        return rows.select(self.columns).to_pandas()


def iter_records(run_dir: str | Path, *, batch_rows: int = 250_000, columns: Sequence[str] | None = None,
                 kinds: Sequence[str] = ("request",), stats: RecordStats | None = None) -> Iterator[pd.DataFrame]:
    """The run's records folded like :func:`load_records`, as DataFrames of about ``batch_rows`` rows each.

    Why not :func:`load_records`: a day-long soak does not fit in memory.
    Each process's file is read in chunks of ``batch_rows`` raw rows; a
    request whose callback row has not come yet stays in a small held map
    and is emitted with the chunk its callback arrives in (or at the end of
    the file, still ``pending``). Rows folded as ``missing`` are held too
    (at most :data:`MISSING_HOLD`), because a late response can still follow;
    a callback row that comes before its request row waits one chunk.
    Memory: one chunk plus the requests in flight. A truncated tail is
    skipped (``stats.truncated`` names the file). ``kinds``: which rows to
    yield ("request", "alert", "scheduled": a SECMP0192 execution's response,
    which the default leaves out); ``columns``: which columns (default: all).
    """
    stats = stats if stats is not None else RecordStats()
    for path in record_files(run_dir):
        stats.files += 1
        fold = _FileFold(stats, kinds, columns)
        chunk: list[pa.RecordBatch] = []
        n = 0
        for batch in iter_raw_batches(path, stats, fold.read):
            chunk.append(batch)
            n += batch.num_rows
            if n >= batch_rows:
                rows = fold.step(chunk, final=False)
                chunk, n = [], 0
                if len(rows):
                    yield rows
        rows = fold.step(chunk, final=True)
        if len(rows):
            yield rows
