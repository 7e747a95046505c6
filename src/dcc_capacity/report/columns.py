"""Column helpers of the report's streaming aggregation (:mod:`.metrics`): labels, flags and growing tables.

Each works on one batch of records, vectorised; together they keep the
per-batch work of the one pass over up to 100 M records to numpy calls.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from dcc_capacity.model.catalogue import get_srv

__all__ = ["LabelCodes", "factorize", "grow", "grow_rows", "lag_ms", "masked", "natural_key", "row_flag",
           "srv_class_of"]


class LabelCodes:
    """Stable small integers for group labels across batches."""

    def __init__(self) -> None:
        self.labels: list[Any] = []
        self._index: dict[Any, int] = {}

    def encode(self, local_codes: np.ndarray, uniques: list[Any]) -> np.ndarray:
        lut = np.zeros(max(len(uniques), 1), dtype=np.int64)
        for i, label in enumerate(uniques):
            idx = self._index.get(label)
            if idx is None:
                idx = self._index[label] = len(self.labels)
                self.labels.append(label)
            lut[i] = idx
        return lut[local_codes]


def factorize(col: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Per-batch codes and string labels; missing values become the label "-".

    Categorical columns (how the CSV reader loads them) are used as they are:
    factorising millions of Python strings would dominate the whole report.
    """
    if isinstance(col.dtype, pd.CategoricalDtype):
        codes = col.cat.codes.to_numpy().astype(np.int64)
        uniq = [str(c) for c in col.cat.categories]
    else:
        raw, values = pd.factorize(col, use_na_sentinel=True)
        codes, uniq = raw.astype(np.int64), [str(u) for u in values]
    if (codes < 0).any():
        codes[codes < 0] = len(uniq)
        uniq.append("-")
    return codes, uniq


def lag_ms(batch: pd.DataFrame, step_m: np.ndarray) -> np.ndarray:
    """(sent - intended) ms of the step rows that went out (dropped rows were never sent: no lag, they count
    against validity by themselves)."""
    if "sent_ts" not in batch.columns:
        return np.zeros(0)
    lag = (batch["sent_ts"].to_numpy(dtype=float, na_value=np.nan)
           - batch["intended_ts"].to_numpy(dtype=float, na_value=np.nan)) * 1000.0
    lag = lag[step_m]
    return np.fmax(lag[~np.isnan(lag)], 0.0)


def row_flag(batch: pd.DataFrame, column: str) -> np.ndarray:
    """A row-view flag of :mod:`.srvfold` (all rows when the batch has no such column)."""
    if column not in batch.columns:
        return np.ones(len(batch), dtype=bool)
    return batch[column].to_numpy(dtype=bool)


def masked(values: dict[str, np.ndarray], keep: np.ndarray) -> dict[str, np.ndarray]:
    """Latencies of the kept rows, NaN elsewhere (NaN is ignored by the quantiles)."""
    if keep.all():
        return values
    return {m: np.where(keep, v, np.nan) for m, v in values.items()}


def natural_key(label: Any) -> list[tuple[int, Any]]:
    """Sort key putting SRV 4.6.1 before 11.2 and step 2 before 10."""
    return [(0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"(\d+)", str(label)) if p]


def srv_class_of(variant: Any) -> str:
    srv = get_srv(str(variant))
    return srv.srv_class() if srv is not None else "unknown"


def grow_rows(arr: np.ndarray, rows: int) -> np.ndarray:
    if rows <= arr.shape[0]:
        return arr
    return np.vstack([arr, np.zeros((rows - arr.shape[0], arr.shape[1]), dtype=arr.dtype)])


def grow(arr: np.ndarray, rows: int, cols: int) -> np.ndarray:
    r, c = max(rows, arr.shape[0]), max(cols, arr.shape[1])
    if (r, c) == arr.shape:
        return arr
    out = np.zeros((r, c), dtype=arr.dtype)
    out[: arr.shape[0], : arr.shape[1]] = arr
    return out
