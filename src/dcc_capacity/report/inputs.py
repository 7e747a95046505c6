"""The run-folder adapter: everything the report reads comes through here.

A run folder (``results/<run-id>/``) is the only interface between ``run`` and
``report``, so the report can be rebuilt later, elsewhere, from the folder
alone. This module validates the small metadata files eagerly (a broken field
is an :class:`InputError` naming file and field, exit 2) and exposes the
records lazily, batch by batch, so a 100-million-record soak never has to be in
memory at once. The contract is documented in ``docs/report.md``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dcc_capacity.errors import InputError
from dcc_capacity.load.recordformat import SCHEDULED_KIND
from dcc_capacity.load.records import COLUMNS, OUTCOMES, RecordStats, iter_records, record_files
from dcc_capacity.model.nfr import TEST_TYPES, Nfr, TestDef, default_nfr_path, load_catalogue
from dcc_capacity.report._files import check, parse_time, read_json, require
from dcc_capacity.report.issues import Issue, load_issues
from dcc_capacity.report.srvfold import SrvFolder

__all__ = [
    "TEST_TYPES", "STATUSES", "SPS", "OUTCOMES", "Nfr", "TestDef", "Issue", "RunFolder",
    "load_run", "iter_record_batches", "parse_time",
]

STATUSES = ("complete", "incomplete", "failed", "running")
"""``running``: run.json as ``run`` writes it before the load; still there, the run never finished (killed)."""
SPS = ("DSP", "S1SP", "DCO", "CP")
SLOTS = ("night", "day", "evening")
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
    issue_thresholds_source: str = ""
    """The catalogue's ``issue_thresholds_source`` (empty: project defaults, see provenance.py)."""
    issues: list[Issue] = field(default_factory=list)
    external_results: list[dict[str, Any]] = field(default_factory=list)
    sut_metrics: pd.DataFrame | None = None
    truncated: bool = False
    alerts: int = 0
    """Alert rows in the records (async messages with no RequestID)."""
    """Set after the records were read: a record file ends mid-message (its writer was killed)."""

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
    def killed(self) -> bool:
        """run.json still says ``running``: the run was killed (or its machine died) and never finished."""
        return self.run["status"] == "running"

    @property
    def incomplete(self) -> bool:
        return self.run["status"] != "complete" or self.truncated


_OPTIONAL_RUN_FIELDS: dict[str, type | tuple[type, ...]] = {
    "slot": str, "profile": dict, "nfr_file": dict, "command_line": (str, list), "seed": (int, str),
    "end": (str, int, float), "duration_s": (int, float), "target": str, "versions": dict, "rates": dict,
    "stress": dict, "operator_actions": list, "environment": str, "test_name": str, "lost_workers": list,
    "failure": str,
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
    for i, lost in enumerate(run.get("lost_workers") or []):
        check(lost, str(i), file, dict, prefix="lost_workers.")
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
        cat = default_nfr_path()
    catalogue = load_catalogue(cat)
    external: list[dict[str, Any]] = []
    if (path / "nfr_results.json").exists():
        external = read_json(path / "nfr_results.json")
        if not isinstance(external, list):
            raise InputError("must be a list of {id, test_id, measured, threshold, pass}",
                             file=path / "nfr_results.json")
        for i, item in enumerate(external):
            check(item, str(i), path / "nfr_results.json", dict)
            require(item, "id", path / "nfr_results.json", str, prefix=f"{i}.")
    return RunFolder(path=path, run=run, plan=plan, nfrs=list(catalogue.nfrs), tests=list(catalogue.tests),
                     nfr_source=str(cat if cat.parent == path else f"default catalogue ({cat.name})"),
                     issue_thresholds={k: v for k, v in catalogue.issue_thresholds.items()},
                     issue_thresholds_source=catalogue.issue_thresholds_source,
                     issues=load_issues(path / "issues.yaml"),
                     external_results=external, sut_metrics=_load_sut_metrics(path / "metrics.csv"))


def iter_record_batches(run_dir: str | Path, columns: list[str] | None = None, batch_rows: int = 250_000,
                        stats: RecordStats | None = None, folder: RunFolder | None = None,
                        scheduled: bool = False) -> Iterator[pd.DataFrame]:
    """The run's request rows, folded by :func:`dcc_capacity.load.records.iter_records`, batch by batch.

    Each row carries ``srv_row`` / ``step_row`` (:mod:`.srvfold`), whatever ``columns`` asks for: a critical
    SRV's CV 4 and CV 5 rows are step rows only, and one SRV row per attempt is
    added for them. ``scheduled``: the SECMP0192 executions' response rows (record kind ``scheduled``) come
    too, flagged ``sched_row`` and neither SRV nor step rows (the DCC's work, not the user's SRVs: only the
    readers that ask for them, :mod:`.metrics`, count them, and only where they belong).
    Two more report views are added to the writer's columns: a step without an
    SRV variant (a journey's login, say) is grouped under its label, and
    ``step`` becomes the *stress step* the request was planned in (from
    run.json ``stress.steps`` start_s/end_s, "-" outside any step); the
    writer's journey step index is kept as ``journey_step``.
    """
    path = Path(run_dir)
    if not record_files(path):
        raise InputError("no record files (records/records-*.arrows)", file=path / "records")
    want = None if columns is None else [c for c in dict.fromkeys(
        [*columns, "label", "srv_variant", "intended_ts", "process", "request_id", "outcome", "step",
         *(["kind"] if scheduled else [])]) if c in COLUMNS]
    flags = ["srv_row", "step_row", *(["sched_row"] if scheduled else [])]
    steps = _stress_windows(folder)
    srvs = SrvFolder()

    def view(batch: pd.DataFrame) -> pd.DataFrame:
        if scheduled:
            sched = (batch["kind"] == SCHEDULED_KIND).to_numpy(dtype=bool) if "kind" in batch.columns else \
                np.zeros(len(batch), dtype=bool)
            batch["sched_row"] = sched
            if sched.any():
                batch["srv_row"] &= ~sched
                batch["step_row"] &= ~sched
        srv = batch["srv_variant"]
        batch["srv_variant"] = srv.where(srv != "", batch["label"])
        if "step" in batch.columns:
            batch = batch.rename(columns={"step": "journey_step"})
        batch["step"] = _stress_step(batch["intended_ts"].to_numpy(dtype=float), steps)
        if columns is None:
            return batch
        # The two row flags are part of every view: a reader that counts rows must be able to pick SRV or step rows.
        return batch[[c for c in dict.fromkeys([*columns, *flags]) if c in batch.columns]]

    kinds = ("request", SCHEDULED_KIND) if scheduled else ("request",)
    for batch in iter_records(path, batch_rows=batch_rows, columns=want, kinds=kinds, stats=stats):
        yield view(srvs.feed(batch))
    rest = srvs.finish()
    if rest is not None:
        yield view(rest)


def _stress_windows(folder: RunFolder | None) -> list[tuple[float, float, str]]:
    if folder is None:
        return []
    out = []
    for s in (folder.run.get("stress") or {}).get("steps") or []:
        if s.get("start_s") is not None and s.get("end_s") is not None:
            out.append((folder.start_epoch + float(s["start_s"]), folder.start_epoch + float(s["end_s"]),
                        str(s["step"])))
    return sorted(out)


def _stress_step(intended: np.ndarray, windows: list[tuple[float, float, str]]) -> pd.Categorical:
    labels = ["-"] + [w[2] for w in windows]
    codes = np.zeros(len(intended), dtype=np.int64)
    for i, (lo, hi, _label) in enumerate(windows, 1):
        codes[(intended >= lo) & (intended < hi)] = i
    return pd.Categorical.from_codes(codes, categories=pd.Index(labels).unique()) if len(set(labels)) == len(
        labels) else pd.Categorical(np.array(labels, dtype=object)[codes])
