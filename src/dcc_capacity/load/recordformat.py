"""The format of the request records: the Arrow schema, its column order and defaults, the row outcomes.

Shared by the writer (:mod:`.records`, inside every Locust process) and the
readers (:mod:`.recordread`, the report and the parent process), so a file
written by one version of the suite is read with the same meaning.
"""

from __future__ import annotations

import pyarrow as pa

__all__ = ["COLUMNS", "DEFAULTS", "KINDS", "OUTCOMES", "SCHEDULED_KIND", "SCHEMA"]

OUTCOMES = ("ok", "error", "throttled", "late", "missing", "dropped", "pending")
"""Row outcomes. ``pending``: the ack came but the run ended before the async response was due."""

SCHEDULED_KIND = "scheduled"
"""The kind of a DCC-scheduled execution's response row (SECMP0192): a complete row (no request row before it,
no callback row after it) that the callback listener writes. Not a ``request``: the execution is the DCC's work,
not an SRV the Service User sent, so readers that count the user's SRVs (run.json's rates, the report's totals,
rates and percentiles) never see it; the report reads it explicitly for SRV class ``scheduled`` (NFR-0192-TRT),
MP192-SA5's TPS and its SECMP0192 section (docs/measurement.md)."""
KINDS = ("request", "callback", "alert", SCHEDULED_KIND)
"""Every row kind: a step sent (``request``), its async response (``callback``, folded into it on reading), an
alert, a scheduled execution's response."""

SCHEMA = pa.schema([
    ("process", pa.string()),          # "<host>-<pid>": which Locust process measured it
    ("kind", pa.string()),             # one of KINDS: "request" | "callback" | "alert" | "scheduled"
    ("request_id", pa.string()),
    ("user_class", pa.string()),
    ("srv_variant", pa.string()),
    ("label", pa.string()),            # the Locust stats name stem, e.g. "4.6.1" or "4.6.1 CV4"
    ("arrival", pa.int64()),           # per-process arrival number: links the steps of one journey
    ("step", pa.int32()),              # 0-based step within the arrival's journey
    ("intended_ts", pa.float64()),     # epoch s: when the open model meant to send it
    ("sent_ts", pa.float64()),         # epoch s: when it actually went out (NaN if dropped)
    ("ack_ts", pa.float64()),          # epoch s: sync answer received
    ("ack_ms", pa.float64()),          # ack_ts - intended_ts, ms
    ("ack_code", pa.int32()),          # HTTP status of the sync answer (0: none)
    ("callback_ts", pa.float64()),     # epoch s: async response reached the listener
    ("trt_ms", pa.float64()),          # callback_ts - intended_ts, ms
    ("response_code", pa.string()),    # DUIS response code (I0, E..., I99) when known
    ("outcome", pa.string()),          # one of OUTCOMES
    ("error", pa.string()),
    ("smets", pa.int8()),              # SMETS generation of the installation the SRV is for (0: none / unknown)
    ("prepay", pa.bool_()),            # that installation is in prepayment mode (checks the SRV mix: srvmix.py)
])
COLUMNS: tuple[str, ...] = tuple(SCHEMA.names)
"""Column order of every row (and of the DataFrame :func:`load_records` returns)."""

_NAN = float("nan")
DEFAULTS: dict[str, object] = {
    "process": "", "kind": "request", "request_id": "", "user_class": "", "srv_variant": "", "label": "",
    "arrival": -1, "step": 0, "intended_ts": _NAN, "sent_ts": _NAN, "ack_ts": _NAN, "ack_ms": _NAN, "ack_code": 0,
    "callback_ts": _NAN, "trt_ms": _NAN, "response_code": "", "outcome": "ok", "error": "", "smets": 0,
    "prepay": False,
}
"""Each column's value when a row (or a file from before the column existed) does not give one."""
