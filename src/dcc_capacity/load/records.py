"""Append-only request/response records, one file per Locust process, flushed every second.

Why Arrow IPC stream files (``<run>/records/records-<host>-<pid>.arrows``):

- a day-long soak at DSP peak is ~100 million rows; zstd-compressed columnar
  batches are ~10x smaller than CSV and load into pandas at millions of rows
  per second (CSV parsing is the bottleneck of any report at that size);
- the *stream* format is a plain sequence of self-delimiting messages, so a
  file is valid after every flushed batch. A process killed with SIGKILL
  leaves at most a truncated last message, which :func:`load_records` skips:
  the run loses at most the rows buffered since the last flush (<= 1 s);
- typed columns (float timestamps, int step) need no parsing on the way back.

Each event is one row. A request row is written when the synchronous answer
(the ack) is in; a callback row is written later, when the async response
arrives (or is declared late/missing) - append-only files cannot update the
request row. :func:`load_records` merges them back into one row per
request step, the shape the NFR evaluation and the report read.

The format (schema, outcomes) is in :mod:`.recordformat` and the readers in
:mod:`.recordread`; their names are re-exported here, the one place callers
import records from.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pyarrow as pa

from dcc_capacity.load.recordformat import COLUMNS, DEFAULTS, OUTCOMES, SCHEMA
from dcc_capacity.load.recordread import (
    RecordStats,
    iter_raw_batches,
    iter_records,
    load_records,
    record_files,
)

__all__ = [
    "COLUMNS",
    "OUTCOMES",
    "SCHEMA",
    "RecordWriter",
    "RecordStats",
    "iter_raw_batches",
    "iter_records",
    "load_records",
    "record_files",
    "process_tag",
]

_NAN = float("nan")
_DEFAULT_ITEMS = tuple((c, DEFAULTS[c]) for c in COLUMNS)
_TYPES = tuple(SCHEMA.field(c).type for c in COLUMNS)


def process_tag() -> str:
    """``<host>-<pid>``: unique per Locust process, also across machines of a distributed run."""
    return f"{socket.gethostname()}-{os.getpid()}"


class RecordWriter:
    """Buffers rows in memory and appends them to this process's file at least every ``flush_interval`` s.

    ``write(**fields)`` appends one row tuple (no I/O on the request path);
    the hot paths (:meth:`write_step` for every request, :meth:`write_callback`
    for every async response) take their fields positionally and append a
    ready tuple (~0.3 us instead of ~3 us: a keyword row costs a dict pop per
    column). A flush turns the tuples into columns in C (``zip``) and the
    columns into one Arrow batch. Flushing happens from a write when the
    interval has passed and from a gevent greenlet that wakes twice per
    interval, so an idle second still gets flushed. Use as a context manager
    or call :meth:`close`. ``start_flusher=False`` for use outside gevent (flush yourself).
    """

    def __init__(self, run_dir: str | Path, *, tag: str | None = None, flush_interval: float = 1.0,
                 compression: str | None = "zstd", start_flusher: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.records_dir = self.run_dir / "records"
        self.records_dir.mkdir(parents=True, exist_ok=True)
        self.tag = tag or process_tag()
        self.path = self.records_dir / f"records-{self.tag}.arrows"
        self.flush_interval = flush_interval
        self.rows_written = 0
        self._rows: list[tuple] = []
        self._lock = threading.Lock()
        self._sink = pa.OSFile(str(self.path), "ab")
        options = pa.ipc.IpcWriteOptions(compression=compression)
        self._writer = pa.ipc.new_stream(self._sink, SCHEMA, options=options)
        self._sink.flush()
        self._last_flush = time.monotonic()
        self._closed = False
        self._greenlet = None
        if start_flusher:
            import gevent

            self._greenlet = gevent.spawn(self._flush_loop)

    # -- writing ---------------------------------------------------------
    def write(self, **fields: object) -> None:
        """Append one row; unknown keys are an error (a typo would silently lose a column)."""
        if self._closed:
            return
        fields.setdefault("process", self.tag)
        row = tuple([d if (v := fields.pop(c, None)) is None else v for c, d in _DEFAULT_ITEMS])
        if fields:
            raise TypeError(f"unknown record fields: {sorted(fields)}")
        self._append(row)

    def write_step(self, request_id: str, user_class: str, srv_variant: str, label: str, arrival: int, step: int,
                   intended_ts: float, sent_ts: float, ack_ts: float, ack_ms: float, ack_code: int, outcome: str,
                   error: str, smets: int = 0, prepay: bool = False) -> None:
        """The request row of one step at its ack (the open model's hot path; same row as ``write(...)``)."""
        if not self._closed:
            self._append((self.tag, "request", request_id, user_class, srv_variant, label, arrival, step, intended_ts,
                          sent_ts, ack_ts, ack_ms, ack_code, _NAN, _NAN, "", outcome, error, smets, prepay))

    def write_callback(self, request_id: str, user_class: str, srv_variant: str, label: str, arrival: int, step: int,
                       intended_ts: float, callback_ts: float, trt_ms: float, response_code: str, outcome: str,
                       error: str) -> None:
        """The callback row of one async response (or its absence): the listener's hot path."""
        if not self._closed:
            self._append((self.tag, "callback", request_id, user_class, srv_variant, label, arrival, step,
                          intended_ts, _NAN, _NAN, _NAN, 0, callback_ts, trt_ms, response_code, outcome, error, 0,
                          False))

    def _append(self, row: tuple) -> None:
        rows = self._rows
        rows.append(row)
        if len(rows) >= 50_000 or time.monotonic() - self._last_flush >= self.flush_interval:
            self.flush()

    def flush(self) -> None:
        """Write buffered rows as one batch and push them to the OS (survives SIGKILL of this process)."""
        with self._lock:
            self._last_flush = time.monotonic()
            if not self._rows or self._closed:
                return
            rows, self._rows = self._rows, []
            columns = zip(*rows, strict=True)  # transposed in C: one tuple per column
            batch = pa.RecordBatch.from_arrays(
                [pa.array(col, type=typ) for col, typ in zip(columns, _TYPES, strict=True)], schema=SCHEMA)
            self._writer.write_batch(batch)
            self._sink.flush()
            self.rows_written += len(rows)

    def _flush_loop(self) -> None:
        import gevent

        while not self._closed:
            gevent.sleep(self.flush_interval / 2)
            if time.monotonic() - self._last_flush >= self.flush_interval:
                self.flush()

    def close(self) -> None:
        """Flush what is left and close the stream (writes the end-of-stream marker)."""
        if self._closed:
            return
        self.flush()
        self._closed = True
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
        self._writer.close()
        self._sink.close()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
