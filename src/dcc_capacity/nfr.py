"""NFR thresholds: a YAML file of ids and limits, checked against a run's measurements.

File format (schema_version 1)::

    schema_version: 1
    nfrs:
      - id: NFR-ACK-P95            # unique; the traceability matrix and junit.xml use it
        description: Sync ack within 3 s for 95% of requests
        metric: ack_ms             # ack_ms | trt_ms | error_rate | rate_ratio
        stat: p95                  # ack_ms/trt_ms only: p50 p90 p95 p99 p99.9 max mean
        max: 3000                  # pass when measured <= max   (ack_ms, trt_ms, error_rate)
        # min: 0.98                # pass when measured >= min   (rate_ratio)
        srv: "4.6.1"               # optional: only this SRV variant
        user_class: MeterReads     # optional: only this user class
        per: srv                   # optional: srv | user_class - check each group, the worst decides
        required: true             # optional (default true): with no data to judge, fail (true) or pass (false)

Metrics: ``ack_ms`` counts from the intended send time to the sync answer;
``trt_ms`` to the async response (a missing response counts as infinitely
slow, so it can never help a percentile pass); ``error_rate`` is the share of
finished requests whose outcome is not ok (error, throttled, late, missing,
dropped); ``rate_ratio`` is achieved / offered (ok requests / requests
scheduled). Requests still ``pending`` when the run stopped are left out.
An NFR with no requests to judge fails ("no data": a threshold nobody
measured is not met) unless it says ``required: false``.

Unknown keys, a wrong type, a duplicate id or a metric/stat/bound that does
not fit are :class:`~dcc_capacity.errors.InputError` naming the file and key.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import InputError
from .paths import data_dir

__all__ = ["FAILED_OUTCOMES", "Nfr", "NfrFile", "NfrResult", "default_nfr_path", "evaluate", "load_nfrs",
           "percentile"]

FAILED_OUTCOMES = frozenset({"error", "throttled", "late", "missing", "dropped"})
STATS = ("p50", "p90", "p95", "p99", "p99.9", "max", "mean")


class Nfr(BaseModel):
    """One threshold."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    description: str = ""
    metric: Literal["ack_ms", "trt_ms", "error_rate", "rate_ratio"]
    stat: Literal["p50", "p90", "p95", "p99", "p99.9", "max", "mean"] | None = None
    max: float | None = Field(default=None, ge=0)
    min: float | None = Field(default=None, ge=0)
    srv: str | None = None
    user_class: str | None = None
    per: Literal["srv", "user_class"] | None = None
    required: bool = True

    @model_validator(mode="after")
    def _fits(self) -> Nfr:
        timed = self.metric in ("ack_ms", "trt_ms")
        if timed and self.stat is None:
            raise ValueError(f"stat: required for metric {self.metric} (one of {', '.join(STATS)})")
        if not timed and self.stat is not None:
            raise ValueError(f"stat: not used with metric {self.metric}")
        if (self.max is None) == (self.min is None):
            raise ValueError("give exactly one of max or min")
        if self.metric == "rate_ratio" and self.min is None:
            raise ValueError("rate_ratio takes min (achieved/offered must be at least it)")
        if self.metric != "rate_ratio" and self.max is None:
            raise ValueError(f"{self.metric} takes max")
        return self

    @property
    def threshold(self) -> float:
        return float(self.max if self.max is not None else self.min)  # type: ignore[arg-type]

    def passes(self, measured: float) -> bool:
        if math.isnan(measured):
            return False
        return measured <= self.max if self.max is not None else measured >= self.min  # type: ignore[operator]


class NfrFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1]
    nfrs: list[Nfr] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> NfrFile:
        seen: set[str] = set()
        for n in self.nfrs:
            if n.id in seen:
                raise ValueError(f"duplicate NFR id {n.id!r}")
            seen.add(n.id)
        return self


class NfrResult(BaseModel):
    """The verdict on one NFR; ``groups`` has each group's value when the NFR is checked ``per`` group."""

    id: str
    description: str = ""
    metric: str
    stat: str | None = None
    bound: Literal["max", "min"]
    threshold: float
    measured: float | None
    samples: int
    passed: bool = Field(serialization_alias="pass")
    message: str = ""
    groups: dict[str, float | None] = {}


def default_nfr_path() -> Path:
    """The shipped defaults, ``volume_profiles/nfr-default.yaml``."""
    return data_dir("volume_profiles") / "nfr-default.yaml"


def load_nfrs(path: str | Path | None = None) -> list[Nfr]:
    """Read and validate an NFR file (default: the shipped one)."""
    p = Path(path) if path is not None else default_nfr_path()
    try:
        raw = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise InputError("NFR file not found", file=p) from None
    except yaml.YAMLError as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        raise InputError(f"not valid YAML: {getattr(e, 'problem', e)}", file=p,
                         line=line + 1 if line is not None else None) from None
    if not isinstance(raw, dict):
        raise InputError("must be a mapping with schema_version and nfrs", file=p)
    try:
        return NfrFile.model_validate(raw).nfrs
    except ValidationError as e:
        err = e.errors()[0]
        key = _key(raw, err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif not isinstance(err.get("input"), (dict, list)) and err["type"] != "missing":
            msg += f" (got {err.get('input')!r})"
        raise InputError(msg, file=p, key=key) from None


def _key(raw: Any, loc: Iterable[Any]) -> str:
    """``nfrs[2] (NFR-X).stat``: the YAML path of a validation error, with the NFR's id when it has one."""
    parts: list[str] = []
    node = raw
    for part in loc:
        if isinstance(part, int):
            ident = node[part].get("id") if isinstance(node, list) and part < len(node) and isinstance(
                node[part], dict) else None
            parts[-1] += f"[{part}]" + (f" ({ident})" if ident else "")
            node = node[part] if isinstance(node, list) and part < len(node) else None
        else:
            parts.append(str(part))
            node = node.get(part) if isinstance(node, dict) else None
    return ".".join(parts) or "(top level)"


# -- evaluation -------------------------------------------------------------
def percentile(values: np.ndarray, stat: str) -> float:
    """Nearest-rank percentile (no interpolation: every reported value was really measured)."""
    if values.size == 0:
        return float("nan")
    if stat == "max":
        return float(np.max(values))
    if stat == "mean":
        return float(np.mean(values))
    q = float(stat[1:]) / 100
    return float(np.quantile(values, q, method="inverted_cdf"))


def _finished(df: pd.DataFrame) -> pd.DataFrame:
    if df.empty:
        return df
    return df[(df["kind"] == "request") & (df["outcome"] != "pending")]


def _measure(n: Nfr, rows: pd.DataFrame) -> tuple[float, int]:
    if n.metric == "ack_ms":
        v = rows["ack_ms"].to_numpy(dtype=float)
        v = v[np.isfinite(v)]
        return percentile(v, n.stat or "p95"), int(v.size)
    if n.metric == "trt_ms":
        cb = rows[rows["trt_ms"].notna() | (rows["outcome"] == "missing")]
        v = np.where(cb["outcome"].to_numpy() == "missing", np.inf, cb["trt_ms"].to_numpy(dtype=float))
        return percentile(v, n.stat or "p95"), int(v.size)
    total = len(rows)
    if not total:
        return float("nan"), 0
    failed = int(rows["outcome"].isin(FAILED_OUTCOMES).sum())
    if n.metric == "error_rate":
        return failed / total, total
    return (total - failed) / total, total  # rate_ratio: achieved / offered


def _select(n: Nfr, df: pd.DataFrame) -> pd.DataFrame:
    if n.srv is not None:
        df = df[df["_srv"] == n.srv]
    if n.user_class is not None:
        df = df[df["user_class"] == n.user_class]
    return df


def evaluate(nfrs: Iterable[Nfr], records: pd.DataFrame) -> list[NfrResult]:
    """Judge every NFR against the merged records (:func:`dcc_capacity.records.load_records`)."""
    rows = _finished(records)
    if not rows.empty:  # a step without an SRV variant (e.g. a test journey) is grouped by its label
        rows = rows.assign(_srv=rows["srv_variant"].where(rows["srv_variant"] != "", rows["label"]))
    else:
        rows = rows.assign(_srv=pd.Series(dtype=object))
    out: list[NfrResult] = []
    for n in nfrs:
        sel = _select(n, rows)
        groups: dict[str, float | None] = {}
        if n.per is not None and not sel.empty:
            col = "_srv" if n.per == "srv" else "user_class"
            worst: float | None = None
            samples = 0
            for g, part in sel.groupby(col, sort=True):
                m, k = _measure(n, part)
                groups[str(g)] = None if math.isnan(m) else m
                samples += k
                if not math.isnan(m) and (worst is None or (m > worst if n.max is not None else m < worst)):
                    worst = m
            measured = float("nan") if worst is None else worst
        else:
            measured, samples = _measure(n, sel)
        bad = [g for g, v in groups.items() if v is None or not n.passes(v)]
        if samples:
            ok, msg = n.passes(measured), ""
            msg = "" if ok else _msg(n, measured, bad)
        else:
            ok, msg = not n.required, "no data" + ("" if n.required else " (not required)")
        out.append(NfrResult(id=n.id, description=n.description, metric=n.metric, stat=n.stat,
                             bound="max" if n.max is not None else "min", threshold=n.threshold,
                             measured=None if math.isnan(measured) else measured, samples=samples, passed=ok,
                             message=msg, groups=groups))
    return out


def _msg(n: Nfr, measured: float, bad: list[str]) -> str:
    what = f"{n.metric}{' ' + n.stat if n.stat else ''}"
    op = "<=" if n.max is not None else ">="
    where = f" (failing: {', '.join(bad)})" if bad else ""
    return f"{what} = {measured:.4g}, needs {op} {n.threshold:g}{where}"
