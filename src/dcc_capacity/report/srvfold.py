"""One row per SRV attempt: a critical SRV's CV 4 and CV 5 steps folded into the SRV they make up.

Why: a critical SRV is one Service Request that needs two HTTP exchanges
(CV 4 to serviceT returns the Pre-Command; the signed CV 5 to serviceS is
acknowledged and answered asynchronously). The records keep one row per
step, so counting rows would count each critical SRV twice and inflate the
offered rate and the request totals. The report therefore reads two views of
the same records:

- SRV rows (``srv_row``): every non-critical step row as it is, and for each
  critical SRV attempt one row made of its pair (same process and RequestID):
  the CV 5 outcome decides (the CV 4 one when the CV 4 failed and no CV 5 was
  sent), and the ack and TRT are counted from the **CV 4 intended send time**,
  the moment the SRV was due (``ack_ms`` = CV 5 ack - CV 4 intended,
  ``trt_ms`` = CV 5 TRT shifted the same way, so a missing response stays
  censored at its timeout, now from the SRV's start);
- step rows (``step_row``): every row as written, CV 4 and CV 5 apart, for
  the per-label table.

A retried SRV sends a new RequestID per attempt, so each attempt is its own
SRV row. An ``ok`` CV 4 whose CV 5 never appears (the run ended between the
two) is ``pending``. Streaming: CV 4 rows wait (keyed by process and
RequestID) for their CV 5 row, which the record fold releases when its async
response is in, so the state is the critical SRVs in flight, not the run.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["CV4", "CV5", "SrvFolder"]

CV4, CV5 = " CV4", " CV5"
_KEY = ["process", "request_id"]


class SrvFolder:
    """Feed folded record batches (``feed``), then ``finish``; both return batches with the two flags added."""

    def __init__(self) -> None:
        self._held4: pd.DataFrame | None = None
        self._held5: pd.DataFrame | None = None

    def feed(self, batch: pd.DataFrame) -> pd.DataFrame:
        label = batch["label"].astype(str)
        is4 = label.str.endswith(CV4).to_numpy()
        is5 = label.str.endswith(CV5).to_numpy()
        out = batch.assign(srv_row=~(is4 | is5), step_row=True)
        if not (is4.any() or is5.any()):
            return out
        cv4, cv5 = batch[is4], batch[is5]
        failed4 = cv4["outcome"].to_numpy() != "ok"  # no CV 5 follows a failed CV 4: the attempt ends there
        srv = [_alone(cv4[failed4], pending=False)]
        cv4 = _concat(self._held4, cv4[~failed4])
        cv5 = _concat(self._held5, cv5)
        k4, k5 = _keys(cv4), _keys(cv5)
        hit4, hit5 = k4.isin(k5).to_numpy(), k5.isin(k4).to_numpy()
        self._held4, self._held5 = cv4[~hit4], cv5[~hit5]
        if hit4.any():
            a = cv4[hit4].set_axis(k4[hit4].to_numpy())
            b = cv5[hit5].set_axis(k5[hit5].to_numpy())
            a, b = a[~a.index.duplicated(keep="last")], b[~b.index.duplicated(keep="last")]
            srv.append(_pair(a, b.loc[a.index]))
        return pd.concat([out, *[s for s in srv if len(s)]], ignore_index=True)

    def finish(self) -> pd.DataFrame | None:
        """SRV rows of the attempts still open at the end of the records (CV 4 ok, no CV 5: ``pending``)."""
        rest = [_alone(h, pending=True) for h in (self._held4, self._held5) if h is not None and len(h)]
        self._held4 = self._held5 = None
        return pd.concat(rest, ignore_index=True) if rest else None


def _concat(held: pd.DataFrame | None, new: pd.DataFrame) -> pd.DataFrame:
    return new if held is None or not len(held) else pd.concat([held, new], ignore_index=True)


def _keys(df: pd.DataFrame) -> pd.Series:
    return df["process"].astype(str) + "\x00" + df["request_id"].astype(str)


def _srv_label(labels: pd.Series) -> np.ndarray:
    return labels.astype(str).str.slice(0, -len(CV4)).to_numpy()


def _alone(steps: pd.DataFrame, pending: bool) -> pd.DataFrame:
    """SRV rows of attempts with one step only: a failed CV 4 (its outcome), or an open one at the end."""
    out = steps.assign(label=_srv_label(steps["label"]), srv_row=True, step_row=False)
    if pending and len(out):
        is4 = steps["label"].astype(str).str.endswith(CV4).to_numpy()
        ok4 = is4 & (steps["outcome"].to_numpy() == "ok")
        out.loc[ok4, "outcome"] = "pending"
    return out


def _pair(cv4: pd.DataFrame, cv5: pd.DataFrame) -> pd.DataFrame:
    """One SRV row per (CV 4, CV 5) pair, aligned on the same index."""
    shift = (cv5["intended_ts"].to_numpy(dtype=float) - cv4["intended_ts"].to_numpy(dtype=float)) * 1000
    srv = cv5.copy()
    for col in ("intended_ts", "sent_ts", "arrival", "step"):
        if col in cv4.columns:
            srv[col] = cv4[col].to_numpy()
    srv["label"] = _srv_label(cv4["label"])
    for col in ("ack_ms", "trt_ms"):
        if col in srv.columns:
            srv[col] = srv[col].to_numpy(dtype=float) + shift
    srv["srv_row"] = True
    srv["step_row"] = False
    return srv.reset_index(drop=True)
