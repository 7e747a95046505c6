"""The run-folder adapter: everything the report reads comes through here.

A run folder (``results/<run-id>/``) is the only interface between ``run`` and
``report``, so the report can be rebuilt later, elsewhere, from the folder
alone. This module validates the small metadata files eagerly (a broken field
is an :class:`InputError` naming file and field, exit 2) and exposes the
records lazily, batch by batch, so a 100-million-record soak never has to be in
memory at once. The contract is documented in ``docs/report.md``.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import InputError
from ..paths import data_dir
from ._files import check, parse_time, read_json, require
from .nfrs import TEST_TYPES, Issue, Nfr, TestDef, load_catalogue, load_issues

__all__ = [
    "RECORD_COLUMNS", "TEST_TYPES", "STATUSES", "SPS", "OUTCOMES", "Nfr", "TestDef", "Issue", "RunFolder",
    "load_run", "iter_record_batches", "parse_time",
]

RECORD_COLUMNS = (
    "process_id", "request_id", "user_class", "srv_variant", "step", "intended_ts", "sent_ts", "ack_ts",
    "ack_ms", "ack_code", "callback_ts", "trt_ms", "response_code", "outcome", "error",
)
"""Columns of a request/response record (``records/``); ``slot`` is optional."""
STATUSES = ("complete", "incomplete", "failed")
SPS = ("DSP", "S1SP", "DCO", "CP")
SLOTS = ("night", "day", "evening")
OUTCOMES = ("ok", "error", "throttled", "late", "missing", "dropped")
_EPOCH = pd.Timestamp(0, tz="UTC")
@dataclass
class RunFolder:
    """Validated metadata of one run folder; records stay on disk (see :func:`iter_record_batches`)."""

    path: Path
    run: dict[str, Any]
    plan: dict[str, Any] | None
    nfrs: list[Nfr]
    tests: list[TestDef]
    nfr_source: str
    issue_thresholds: dict[int, int]
    issues: list[Issue] = field(default_factory=list)
    external_results: list[dict[str, Any]] = field(default_factory=list)
    sut_metrics: pd.DataFrame | None = None
    truncated: bool = False

    @property
    def start_epoch(self) -> float:
        return parse_time(self.run["start"], self.path / "run.json", "start")

    @property
    def duration_s(self) -> float | None:
        if self.run.get("duration_s") is not None:
            return float(self.run["duration_s"])
        if self.run.get("end"):
            return parse_time(self.run["end"], self.path / "run.json", "end") - self.start_epoch
        return None

    @property
    def incomplete(self) -> bool:
        return self.run["status"] != "complete" or self.truncated


_OPTIONAL_RUN_FIELDS: dict[str, type | tuple[type, ...]] = {
    "slot": str, "profile": dict, "nfr_file": dict, "command_line": (str, list), "seed": (int, str),
    "end": (str, int, float), "duration_s": (int, float), "target": str, "versions": dict, "rates": dict,
    "stress": dict, "operator_actions": list, "environment": str, "test_name": str,
}


def _validate_run(run: Any, file: Path) -> dict[str, Any]:
    if not isinstance(run, dict):
        raise InputError("must be a JSON object", file=file)
    require(run, "test_id", file, str)
    require(run, "test_type", file, str, TEST_TYPES)
    require(run, "sp", file, str, SPS)
    require(run, "status", file, str, STATUSES)
    require(run, "start", file, (str, int, float))
    parse_time(run["start"], file, "start")
    for key, kind in _OPTIONAL_RUN_FIELDS.items():
        if run.get(key) is not None:
            check(run[key], key, file, kind)
    if run.get("slot") is not None:
        check(run["slot"], "slot", file, str, SLOTS)
    if run.get("end") is not None:
        parse_time(run["end"], file, "end")
    for cls, rates in (run.get("rates") or {}).items():
        check(rates, str(cls), file, dict, prefix="rates.")
        for k in ("offered", "target"):
            if rates.get(k) is not None:
                check(rates[k], k, file, (int, float), prefix=f"rates.{cls}.")
    for i, step in enumerate((run.get("stress") or {}).get("steps") or []):
        check(step, str(i), file, dict, prefix="stress.steps.")
        require(step, "step", file, (int, str), prefix=f"stress.steps.{i}.")
        require(step, "target_rate", file, (int, float), prefix=f"stress.steps.{i}.")
    for i, act in enumerate(run.get("operator_actions") or []):
        check(act, str(i), file, dict, prefix="operator_actions.")
        for k in ("time", "who", "action"):
            require(act, k, file, (str, int, float), prefix=f"operator_actions.{i}.")
    return run


def _load_sut_metrics(path: Path) -> pd.DataFrame | None:
    if not path.exists():
        return None
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"not a readable CSV ({exc})", file=path) from None
    if "ts" not in df.columns:
        raise InputError("required column is missing", file=path, key="ts")
    ts = df["ts"]
    df["ts"] = ts.astype(float) if pd.api.types.is_numeric_dtype(ts) else (
        (pd.to_datetime(ts, utc=True, errors="coerce", format="ISO8601") - _EPOCH) / pd.Timedelta(seconds=1))
    return df.dropna(subset=["ts"]).sort_values("ts")


def load_run(run_dir: str | Path) -> RunFolder:
    """Read and validate a run folder's metadata; records are left for :func:`iter_record_batches`."""
    path = Path(run_dir)
    if not path.is_dir():
        raise InputError("run folder not found", file=path)
    run = _validate_run(read_json(path / "run.json"), path / "run.json")
    plan = read_json(path / "plan.json") if (path / "plan.json").exists() else None
    if plan is not None and not isinstance(plan, dict):
        raise InputError("must be a JSON object", file=path / "plan.json")
    cat = path / "nfr.yaml"
    if not cat.exists():
        cat = data_dir("reports") / "nfr-catalogue.yaml"
    nfrs, tests, thresholds = load_catalogue(cat)
    external: list[dict[str, Any]] = []
    if (path / "nfr_results.json").exists():
        external = read_json(path / "nfr_results.json")
        if not isinstance(external, list):
            raise InputError("must be a list of {id, test_id, measured, threshold, pass}",
                             file=path / "nfr_results.json")
    folder = RunFolder(path=path, run=run, plan=plan, nfrs=nfrs, tests=tests,
                       nfr_source=str(cat if cat.parent == path else f"default catalogue ({cat.name})"),
                       issue_thresholds=thresholds, issues=load_issues(path / "issues.yaml"),
                       external_results=external, sut_metrics=_load_sut_metrics(path / "metrics.csv"))
    folder.truncated = _csv_truncated(path)
    return folder


def _csv_files(path: Path) -> list[Path]:
    return sorted((path / "records").glob("*.csv"))


def _csv_truncated(path: Path) -> bool:
    """A record file that does not end in a newline was cut mid-write (the run was killed)."""
    for f in _csv_files(path):
        if f.stat().st_size:
            with f.open("rb") as fh:
                fh.seek(-1, 2)
                if fh.read(1) != b"\n":
                    return True
    return False


def _records_module():
    try:
        return importlib.import_module("dcc_capacity.records")
    except ModuleNotFoundError as exc:
        if exc.name == "dcc_capacity.records":
            return None
        raise


def iter_record_batches(run_dir: str | Path, columns: list[str] | None = None,
                        batch_rows: int = 1_000_000) -> Iterator[pd.DataFrame]:
    """Yield the run's records as DataFrames of at most about ``batch_rows`` rows.

    Order of preference: ``dcc_capacity.records.iter_records`` (streaming, the
    suite's own format), then ``records/*.csv`` read in chunks, then
    ``dcc_capacity.records.read_records`` (one batch). Timestamps come out as
    float epoch seconds whatever the source wrote.
    """
    path = Path(run_dir)
    mod = _records_module()
    csvs = _csv_files(path)
    if mod is not None and hasattr(mod, "iter_records"):
        source: Iterator[pd.DataFrame] = mod.iter_records(path, columns=columns, batch_rows=batch_rows)
    elif csvs:
        source = _iter_csv(csvs, columns, batch_rows)
    elif mod is not None and hasattr(mod, "read_records"):
        source = iter([mod.read_records(path)])
    else:
        if not (path / "records").is_dir():
            raise InputError("records folder is missing", file=path / "records")
        return
    for batch in source:
        if columns is not None:
            missing = [c for c in columns if c not in batch.columns and c != "slot"]
            if missing:
                raise InputError("record column is missing", file=path / "records", key=missing[0])
        yield _normalise(batch)


def _iter_csv(files: list[Path], columns: list[str] | None, batch_rows: int) -> Iterator[pd.DataFrame]:
    # Low-cardinality text as categories: parsed straight into codes, the cheapest form to group by.
    dtypes = {"user_class": "category", "srv_variant": "category", "step": "category", "ack_code": "category",
              "response_code": "category", "outcome": "category", "request_id": "string", "error": "string",
              "process_id": "category", "slot": "category"}
    for f in files:
        with f.open("rb") as fh:
            header = fh.readline().decode("utf-8", "replace").strip().split(",")
        use = None if columns is None else [c for c in columns if c in header]
        if columns is not None and len(use) < len([c for c in columns if c != "slot"]):
            missing = [c for c in columns if c not in header and c != "slot"]
            raise InputError("record column is missing", file=f, key=missing[0])
        try:
            yield from pd.read_csv(f, usecols=use, chunksize=batch_rows,
                                   dtype={k: v for k, v in dtypes.items() if use is None or k in use},
                                   on_bad_lines="skip", engine="c")
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise InputError(f"unreadable records ({exc})", file=f) from None


def _normalise(batch: pd.DataFrame) -> pd.DataFrame:
    for col in ("intended_ts", "sent_ts", "ack_ts", "callback_ts"):
        if col in batch.columns and not pd.api.types.is_numeric_dtype(batch[col]):
            parsed = pd.to_datetime(batch[col], utc=True, errors="coerce", format="ISO8601")
            batch[col] = (parsed - _EPOCH) / pd.Timedelta(seconds=1)
    for col in ("ack_ms", "trt_ms"):
        if col in batch.columns and not pd.api.types.is_float_dtype(batch[col]):
            batch[col] = pd.to_numeric(batch[col], errors="coerce").astype("float64")
    return batch
