"""The NFR catalogue: one schema for thresholds, tests and traceability, and the one place NFRs are judged.

Why one file for both: the live progress line, summary.json, junit.xml and
the report's traceability matrix must all speak of the *same* NFR ids with
the *same* thresholds; two files would drift. File format (schema_version 2,
every key in docs/measurement.md, "NFR catalogue")::

    schema_version: 2
    nfrs:
      - id: NFR-ACK-P95          # unique; junit.xml, summary.json and the matrix use it
        text: Sync ack within 3 s for 95 % of requests
        source: SCTAD 3.5        # the requirement's origin (clause, contract)
        metric: ack_ms           # see METRICS
        stat: p95                # ack_ms/trt_ms: p50 p95 p99 max; resource metrics also mean
        max: 3000                # pass when measured <= max   (or min: pass when >= min)
        srv: "4.6.1"             # optional scope, at most one of srv / user_class / srv_class / slot
        per: srv                 # optional: judge each srv / user_class / srv_class / slot / host; the worst decides
        required: true           # no data to judge: fail (true, default) or pass (false)
        severity: 2              # 1 (highest) .. 4: severity of the issue a failure raises
    tests:                       # the SP's planned tests and the NFRs each covers
      - {id: LOAD, name: Load test, type: load, nfr_ids: [NFR-ACK-P95]}
    issue_thresholds: {1: 0, 2: 0, 3: 5, 4: 10}

Evaluation (:func:`judge`) works on the report's aggregated group tables
(exact streaming percentiles and outcome counts), never on a DataFrame of
all records, so it scales to a day-long soak.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from dcc_capacity.config.validation import validate
from dcc_capacity.config.yamlsource import load_yaml
from dcc_capacity.paths import data_dir

__all__ = ["FAILED_OUTCOMES", "METRICS", "RESOURCE_METRICS", "STATS", "SCOPE_DIMS", "TEST_TYPES", "Nfr", "TestDef",
           "NfrCatalogue", "NfrResult", "default_nfr_path", "load_catalogue", "load_nfrs", "judge"]

SCHEMA_VERSION = 2
FAILED_OUTCOMES = ("error", "throttled", "late", "missing", "dropped")
"""Outcomes that count as failures. ``pending`` (the run ended before the response was due) is neither."""
STATS = ("p50", "p95", "p99", "max")
RESOURCE_METRICS = ("cpu_percent", "mem_percent", "mem_used_bytes", "disk_read_bytes_s", "disk_write_bytes_s",
                    "disk_busy_percent", "net_rx_bytes_s", "net_tx_bytes_s", "process_cpu_percent",
                    "process_rss_bytes")
"""The SUT's resources per host (``dcc_capacity.telemetry``, resources.csv); judged on the samples, gaps left out."""
METRICS = ("ack_ms", "trt_ms", "error_rate", "throttle_rate", "missing_rate", "failure_rate", "achieved_ratio",
           "achieved_rate", "requests", "external", "tps", *RESOURCE_METRICS)
"""What an NFR can measure; rates are shares of *finished* requests (all but ``pending``). ``tps``: SECMP0192
MP192-SA5's TPS = (request + response + alert) / s, ``stat`` max (the busiest interval) or mean (the
report's ``tps`` table, report/tps.py)."""
SCOPE_DIMS = {"srv": "srv", "user_class": "class", "srv_class": "srv_class", "slot": "slot", "host": "host"}
"""NFR key -> the report's grouping dimension."""


def _catalogue_types() -> tuple[str, ...]:
    """The test types of the shipped catalogue's tests, in its order.

    A test type's catalogue entry is what makes its name known down here: the plugins (testtypes/registry.py)
    sit above this layer, and a catalogue type needs no plugin (``baseline`` is a pair of load runs).
    tests/test_spec.py checks every registered type has its entry. Read without the model (it is being
    defined): a broken shipped file is a packaging bug, not a user mistake."""
    tests = load_yaml(default_nfr_path()).data["tests"]
    return tuple(dict.fromkeys(str(t["type"]) for t in tests))


def default_nfr_path() -> Path:
    """The shipped catalogue, ``volume_profiles/nfr-default.yaml`` (example thresholds)."""
    return data_dir("volume_profiles") / "nfr-default.yaml"


TEST_TYPES: tuple[str, ...] = _catalogue_types()
"""Every test type a catalogue, run.json or phase plan may name."""
DEFAULT_ISSUE_THRESHOLDS: dict[Literal[1, 2, 3, 4], int] = {1: 0, 2: 0, 3: 5, 4: 10}


class Nfr(BaseModel):
    """One non-functional requirement: what is measured, where, and the bound it must meet."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    text: str = ""
    source: str = ""
    metric: Literal["ack_ms", "trt_ms", "error_rate", "throttle_rate", "missing_rate", "failure_rate",
                    "achieved_ratio", "achieved_rate", "requests", "external", "tps", "cpu_percent", "mem_percent",
                    "mem_used_bytes", "disk_read_bytes_s", "disk_write_bytes_s", "disk_busy_percent",
                    "net_rx_bytes_s", "net_tx_bytes_s", "process_cpu_percent", "process_rss_bytes"]
    stat: Literal["p50", "p95", "p99", "max", "mean"] | None = None
    max: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    min: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    srv: str | None = None
    user_class: str | None = None
    srv_class: str | None = None
    slot: str | None = None
    host: str | None = None
    per: Literal["srv", "user_class", "srv_class", "slot", "host"] | None = None
    required: bool = True
    severity: Literal[1, 2, 3, 4] = 2

    @model_validator(mode="after")
    def _fits(self) -> Nfr:
        timed = self.metric in ("ack_ms", "trt_ms")
        resource = self.metric in RESOURCE_METRICS
        if self.metric == "tps":
            if self.stat not in ("max", "mean"):
                raise ValueError("stat: metric tps takes max (the busiest interval) or mean")
            if self.per or any(getattr(self, k) is not None for k in SCOPE_DIMS):
                raise ValueError("metric tps counts everything the system under test carries: no scope or per")
            if (self.max is None) == (self.min is None):
                raise ValueError("give exactly one of max or min")
            return self
        if (timed or resource) and self.stat is None:
            raise ValueError(f"stat: required for metric {self.metric} (one of {', '.join(STATS)}"
                             f"{', mean' if resource else ''})")
        if not (timed or resource) and self.stat is not None:
            raise ValueError(f"stat: not used with metric {self.metric}")
        if timed and self.stat == "mean":
            raise ValueError(f"stat: mean is for resource metrics; {self.metric} takes {', '.join(STATS)}")
        if resource and ((self.per and self.per != "host") or any(
                getattr(self, k) is not None for k in SCOPE_DIMS if k != "host")):
            raise ValueError(f"a resource metric ({self.metric}) is scoped by host only (host: NAME or per: host)")
        if not resource and (self.per == "host" or self.host is not None):
            raise ValueError(f"host scope is for resource metrics ({', '.join(RESOURCE_METRICS)}), "
                             f"not {self.metric}")
        if self.metric != "external" and (self.max is None) == (self.min is None):
            raise ValueError("give exactly one of max or min")
        scopes = [k for k in SCOPE_DIMS if getattr(self, k) is not None]
        if len(scopes) > 1 or (scopes and self.per):
            raise ValueError(f"at most one of {', '.join(SCOPE_DIMS)} or per (got {', '.join(scopes)}"
                             f"{', per' if self.per else ''})")
        return self

    @property
    def scope(self) -> tuple[str, str | None]:
        """(report dimension, label): ``("all", None)`` for the whole run, ``("srv", "4.6.1")`` ..."""
        for key, dim in SCOPE_DIMS.items():
            value = getattr(self, key)
            if value is not None:
                return dim, value
        return "all", None

    @property
    def is_resource(self) -> bool:
        """Measured on the SUT's resource samples (resources.csv), not on the request records."""
        return self.metric in RESOURCE_METRICS

    @property
    def scope_text(self) -> str:
        dim, value = self.scope
        if self.per:
            return f"each {self.per}"
        return "all" if value is None else f"{next(k for k, d in SCOPE_DIMS.items() if d == dim)} {value}"

    @property
    def threshold(self) -> float | None:
        return self.max if self.max is not None else self.min

    @property
    def op(self) -> str:
        return "<=" if self.max is not None else ">="

    @property
    def what(self) -> str:
        return f"{self.metric}{'.' + self.stat if self.stat else ''}"

    def passes(self, measured: float) -> bool:
        if measured is None or math.isnan(measured):
            return False
        if self.max is not None:
            return measured <= self.max
        return self.min is None or measured >= self.min


class TestDef(BaseModel):
    """A planned test of the SP's test specification and the NFRs it covers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    name: str = ""
    type: Literal[TEST_TYPES]  # type: ignore[valid-type]  # the shipped catalogue's types
    nfr_ids: tuple[str, ...] = ()
    sps: tuple[Literal["DSP", "S1SP", "DCO", "CP"], ...] = ()
    """The Service Providers whose phase this test belongs to (empty: every SP). SECMP0192's midnight schedules
    run at the S1SP, so a DSP's phase neither plans nor misses that test."""

    def applies_to(self, sp: str) -> bool:
        return not self.sps or sp in self.sps


class NfrCatalogue(BaseModel):
    """The whole file."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[2]
    nfrs: list[Nfr] = Field(min_length=1)
    tests: list[TestDef] = []
    issue_thresholds: dict[Literal[1, 2, 3, 4], int] = Field(default_factory=lambda: dict(DEFAULT_ISSUE_THRESHOLDS))
    issue_thresholds_source: str = ""
    """Where the thresholds come from (SCTAD 4.2 points to SMETS1 SVTAD Table 13.2, which the suite does not
    hold); empty: the project's defaults, shown as such in the reports (provenance.py)."""

    @model_validator(mode="after")
    def _defaults(self) -> NfrCatalogue:
        self.issue_thresholds = {**DEFAULT_ISSUE_THRESHOLDS, **self.issue_thresholds}
        return self


def _hint(key: str, kind: str, value: Any) -> str | None:
    if key == "schema_version":
        return f"must be {SCHEMA_VERSION} (this suite reads NFR catalogue schema {SCHEMA_VERSION})"
    return None


def load_catalogue(path: str | Path | None = None) -> NfrCatalogue:
    """Read and validate an NFR catalogue (default: the shipped one); any problem is one InputError."""
    src = load_yaml(Path(path) if path is not None else default_nfr_path())
    if not isinstance(src.data, dict):
        raise src.error(None, "must be a mapping with schema_version, nfrs and tests")
    cat = validate(NfrCatalogue, src, hint=_hint)
    ids: dict[str, int] = {}
    for i, n in enumerate(cat.nfrs):
        if n.id in ids:
            raise src.error(f"nfrs[{i}].id", f"duplicate NFR id {n.id!r} (first in nfrs[{ids[n.id]}])")
        ids[n.id] = i
    tids: set[str] = set()
    for i, t in enumerate(cat.tests):
        if t.id in tids:
            raise src.error(f"tests[{i}].id", f"duplicate test id {t.id!r}")
        tids.add(t.id)
        for ref in t.nfr_ids:
            if ref not in ids:
                raise src.error(f"tests[{i}].nfr_ids", f"unknown NFR {ref!r} (not in nfrs)")
    return cat


def load_nfrs(path: str | Path | None = None) -> list[Nfr]:
    """Just the NFRs of a catalogue (what the live progress line needs)."""
    return load_catalogue(path).nfrs


# -- evaluation ---------------------------------------------------------------
@dataclass
class NfrResult:
    """The verdict on one NFR. ``status``: pass, fail or "no data"; ``groups`` has each group's value for ``per``."""

    nfr: Nfr
    measured: float | None
    samples: int
    status: str
    message: str = ""
    evidence: tuple[str, str] | None = None
    """(dimension, label) of the metrics row the figure comes from."""
    groups: dict[str, float | None] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status == "pass"


def _value(nfr: Nfr, row: Mapping[str, Any], duration_s: float | None) -> tuple[float, int]:
    """(measured, samples) of one group row of the report's metrics tables; NaN when not measurable."""
    if nfr.metric in RESOURCE_METRICS:  # the report's "host"/"resources" tables (report/resources.py)
        count = _num(row.get(f"{nfr.metric}_n"))
        n = 0 if math.isnan(count) else int(count)
        return (_num(row.get(f"{nfr.metric}_{nfr.stat}")) if n else math.nan), n
    if nfr.metric == "tps":  # the report's "tps" table (report/tps.py)
        count = _num(row.get("tps_n"))
        n = 0 if math.isnan(count) else int(count)
        return (_num(row.get(f"tps_{nfr.stat}")) if n else math.nan), n
    if nfr.metric in ("ack_ms", "trt_ms"):
        short = nfr.metric.split("_")[0]
        count = _num(row.get(f"{short}_n"))
        n = 0 if math.isnan(count) else int(count)
        return (_num(row.get(f"{short}_{nfr.stat}")) if n else math.nan), n
    finished = int(row.get("requests", 0)) - int(row.get("pending", 0))
    if nfr.metric == "requests":
        return float(row.get("requests", 0)), int(row.get("requests", 0))
    if finished <= 0:
        return math.nan, 0
    counts = {
        "error_rate": row.get("error", 0), "throttle_rate": row.get("throttled", 0),
        "missing_rate": row.get("missing", 0) + row.get("dropped", 0),
        "failure_rate": sum(row.get(o, 0) for o in FAILED_OUTCOMES), "achieved_ratio": row.get("ok", 0),
    }
    if nfr.metric == "achieved_rate":
        return (row.get("ok", 0) / duration_s if duration_s else math.nan), finished
    return float(counts[nfr.metric]) / finished, finished


def _num(x: Any) -> float:
    try:
        return math.nan if x is None else float(x)
    except (TypeError, ValueError):
        return math.nan


def judge(nfr: Nfr, groups: Mapping[str, pd.DataFrame], duration_s: float | None) -> NfrResult:
    """The verdict on ``nfr`` from the report's group tables (``Metrics.groups``: dimension -> label rows).

    ``per``: every group is judged and the worst value is the measured one;
    the message names the failing groups. No data: fail unless ``required: false``.
    ``external`` NFRs are judged from ``nfr_results.json`` by the report, not here.
    """
    if nfr.metric == "external":
        return NfrResult(nfr, None, 0, "no data", "external result missing")
    measured, samples, evidence = math.nan, 0, None
    per: dict[str, float | None] = {}
    if nfr.per:
        dim = SCOPE_DIMS[nfr.per]
        table = groups.get(dim, pd.DataFrame())
        worst = math.nan
        for label, row in table.to_dict("index").items():
            v, k = _value(nfr, row, duration_s)
            per[str(label)] = None if math.isnan(v) else v
            samples += k
            if not math.isnan(v) and (math.isnan(worst) or (v > worst if nfr.max is not None else v < worst)):
                worst, evidence = v, (dim, str(label))
        measured = worst
    else:
        dim, label = nfr.scope
        if dim == "all" and nfr.metric in RESOURCE_METRICS:
            dim = "resources"  # every host's samples pooled: one row "all"
        elif nfr.metric == "tps":
            dim = "tps"
        table = groups.get(dim, pd.DataFrame())
        key = "all" if label is None else label
        if key in table.index:
            measured, samples = _value(nfr, table.loc[key].to_dict(), duration_s)
            evidence = (dim, str(key))
    if not samples or math.isnan(measured):
        return NfrResult(nfr, None, samples, "no data" if nfr.required else "pass",
                         "no data" + ("" if nfr.required else " (not required)"), evidence, per)
    ok = nfr.passes(measured)
    bad = [g for g, v in per.items() if v is not None and not nfr.passes(v)]  # None: nothing measured there
    msg = "" if ok else (f"{nfr.what} = {measured:.4g}, needs {nfr.op} {nfr.threshold:g}"
                         + (f" (failing: {', '.join(bad)})" if bad else ""))
    return NfrResult(nfr, measured, samples, "pass" if ok else "fail", msg, evidence, per)
