"""The negative cases of ``run --test negative``: ids, what DUIS requires of each, and how an answer is judged.

Why a catalogue of cases with stable ids: the consultation response asked for
negative paths as first-class tests, so each one is named in the NFR
catalogue's test specification, traced in the report, and judged case by
case: a case passes when every answer the SUT gave it is the one DUIS
requires. This module is free of Locust (no gevent patching), so the run
command, the report and the tests all use the same table and the same judge.

Each case instance ends as one *verdict* line (JSON) in
``<run>/negative/verdicts-<process>.jsonl``; a ``sent`` line is written first,
so an instance the run ended before its answer shows as pending, not lost.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CASES", "CASE_IDS", "Case", "Verdict", "VerdictWriter", "ack_code", "judge_alert", "judge_code",
           "judge_no_code", "load_verdicts", "summarise"]


@dataclass(frozen=True)
class Case:
    """One negative case: a stable id (NFR catalogue test id, report anchor), and what DUIS requires."""

    id: str
    title: str
    requires: str
    channel: str = "DUIS"
    """``DUIS`` (sent by Locust to the User Gateway) or ``SFTP`` (the CP's migration files)."""


CASES: tuple[Case, ...] = (
    Case("NEG-FALLOUT", "SMETS1 migration fallout (CP)",
         "Commissioning Outcome File lists every device; each failed device FAILED with reason MIGRATION_FALLOUT",
         "SFTP"),
    Case("NEG-REPROCESS", "Failed migrations re-sent (CP)",
         "every device of the re-sent migration COMMISSIONED", "SFTP"),
    Case("NEG-811-JOIN", "SR 8.11 PPMID join time (SMETS1)",
         "JoinTimePeriod > 255 s: ack I99, async E081101; <= 255 s: ack I99, async I0"),
    Case("NEG-NO-CODE", "Responses missing a ResponseCode",
         "ack I99; an async response without ResponseCode is recorded as a failure, never as OK"),
    Case("NEG-S1-COMBO", "Invalid SMETS1 command-variant combination (SECMP0192)",
         "5.1 of an SRV the S1SP cannot run with CV 9: I0, then DCC alert N999 with S1SP alert S1VE12"),
    Case("NEG-0192-S2", "5.1 schedule of 4.3 / 4.4.3 for a SMETS2 device (SECMP0192)",
         "synchronous E050110 (the distinct SECMP0192 error)"),
    Case("NEG-ROLE", "SRV sent by a role not eligible for it", "synchronous E2"),
    Case("NEG-SIG", "Request with a bad signature", "synchronous E42"),
    Case("NEG-REPLAY", "Replayed RequestID counter", "the original I0; the replay synchronous E44"),
)
CASE_IDS: tuple[str, ...] = tuple(c.id for c in CASES)
BY_ID: dict[str, Case] = {c.id: c for c in CASES}

_CODE = re.compile(rb"<(?:[\w.-]+:)?ResponseCode>\s*([^<\s]+)\s*</")
_S1SP_CODE = re.compile(rb"<(?:[\w.-]+:)?S1SPAlertCode>\s*([^<\s]+)\s*</")
_DCC_ALERT_CODE = re.compile(rb"<(?:[\w.-]+:)?DCCAlertCode>\s*([^<\s]+)\s*</")


def ack_code(status: int, body: bytes) -> str:
    """The DUIS ResponseCode of a synchronous answer, or ``HTTP <status>`` when the body carries none."""
    m = _CODE.search(body) if body else None
    if m:
        return m.group(1).decode("ascii", "replace")
    return f"HTTP {status}" + (" (no ResponseCode)" if body else "")


@dataclass
class Verdict:
    """One case instance: what was required, what came, and how long the error path took."""

    case: str
    expected: str
    got: str
    ok: bool
    request_id: str = ""
    ack_ms: float | None = None
    trt_ms: float | None = None
    exercised: bool = True
    """False: this instance did not reach the path the case is about (e.g. no device fell out)."""
    ts: float = 0.0


def judge_code(case: str, expected_ack: str, ack: str, *, expected_async: str | None = None,
               async_code: str | None = None, ack_ms: float | None = None, trt_ms: float | None = None,
               request_id: str = "") -> Verdict:
    """A case answered by codes: the sync ack (and the async response code when one is required)."""
    expected = expected_ack if expected_async is None else f"ack {expected_ack}, async {expected_async}"
    if expected_async is None:
        got, ok = ack, ack == expected_ack
        trt_ms = ack_ms if trt_ms is None else trt_ms  # the sync answer is the final one
    else:
        shown = async_code if async_code else "no async ResponseCode" if async_code == "" else "no async response"
        got = f"ack {ack}, async {shown}"
        ok = ack == expected_ack and async_code == expected_async
    return Verdict(case, expected, got, ok, request_id, ack_ms, trt_ms, ts=time.time())


def judge_no_code(ack: str, response_code: str, outcome: str, *, ack_ms: float | None, trt_ms: float | None,
                  request_id: str = "") -> Verdict:
    """NEG-NO-CODE: with a code, I0 recorded ok; without one, the suite must record a failure (never ok)."""
    if ack != "I99":
        return Verdict("NEG-NO-CODE", "ack I99", f"ack {ack}", False, request_id, ack_ms, trt_ms, ts=time.time())
    if outcome in ("missing", "late", "pending"):
        got = f"async {outcome}"
        return Verdict("NEG-NO-CODE", "an async response", got, False, request_id, ack_ms, trt_ms, ts=time.time())
    if not response_code:
        ok = outcome != "ok"
        return Verdict("NEG-NO-CODE", "no ResponseCode -> recorded as a failure",
                       f"no ResponseCode, recorded {outcome}", ok, request_id, ack_ms, trt_ms, exercised=True,
                       ts=time.time())
    ok = response_code == "I0" and outcome == "ok"
    return Verdict("NEG-NO-CODE", "I0 -> recorded ok", f"{response_code}, recorded {outcome}", ok, request_id,
                   ack_ms, trt_ms, exercised=False, ts=time.time())


def judge_alert(ack: str, callback_body: bytes, outcome: str, *, ack_ms: float | None, trt_ms: float | None,
                request_id: str = "") -> Verdict:
    """NEG-S1-COMBO: I0 to the 5.1, then the DCC alert N999 carrying S1SP alert S1VE12 for this RequestID."""
    expected = "ack I0, alert N999/S1VE12"
    if not callback_body:
        got = f"ack {ack}, no alert ({outcome})"
        return Verdict("NEG-S1-COMBO", expected, got, False, request_id, ack_ms, None, ts=time.time())
    d = _DCC_ALERT_CODE.search(callback_body)
    s = _S1SP_CODE.search(callback_body)
    dcc = d.group(1).decode() if d else "-"
    s1 = s.group(1).decode() if s else "-"
    ok = ack == "I0" and dcc == "N999" and s1 == "S1VE12"
    return Verdict("NEG-S1-COMBO", expected, f"ack {ack}, alert {dcc}/{s1}", ok, request_id, ack_ms, trt_ms,
                   ts=time.time())


class VerdictWriter:
    """Appends ``sent`` and verdict lines to ``<run>/negative/verdicts-<host>-<pid>[-tag].jsonl`` (line-flushed)."""

    def __init__(self, run_dir: str | Path | None, tag: str = "") -> None:
        self.path: Path | None = None
        self._fh = None
        self._lock = threading.Lock()
        if run_dir is not None:
            folder = Path(run_dir) / "negative"
            folder.mkdir(parents=True, exist_ok=True)
            name = f"verdicts-{socket.gethostname()}-{os.getpid()}{'-' + tag if tag else ''}.jsonl"
            self.path = folder / name
            self._fh = self.path.open("a", encoding="utf-8", buffering=1)

    def sent(self, case: str, request_id: str = "") -> None:
        self._write({"event": "sent", "case": case, "request_id": request_id, "ts": time.time()})

    def verdict(self, v: Verdict) -> None:
        self._write({"event": "verdict", **asdict(v)})

    def _write(self, doc: dict[str, Any]) -> None:
        if self._fh is not None:
            with self._lock:
                self._fh.write(json.dumps(doc, allow_nan=False, default=str) + "\n")

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def load_verdicts(run_dir: str | Path) -> list[dict[str, Any]]:
    """Every line of the run's verdict files (a torn last line of a killed process is skipped)."""
    out: list[dict[str, Any]] = []
    for path in sorted((Path(run_dir) / "negative").glob("verdicts-*.jsonl")):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if isinstance(doc, dict) and doc.get("case") in BY_ID:
                out.append(doc)
    return out


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if values else None


def summarise(lines: list[dict[str, Any]], cases: tuple[Case, ...] = CASES) -> list[dict[str, Any]]:
    """Per case: sent, answered as required, wrong answers (what came), pending, ack/TRT p50/p95, passed.

    A case passes when it was sent, every answer was as required, and at least
    one instance reached the path the case is about (``exercised``).
    """
    rows = []
    for case in cases:
        sent = [d for d in lines if d["case"] == case.id and d.get("event") == "sent"]
        done = [d for d in lines if d["case"] == case.id and d.get("event") == "verdict"]
        good = [d for d in done if d.get("ok")]
        bad = [d for d in done if not d.get("ok")]
        came = Counter(str(d.get("got")) for d in bad)
        ack = [float(d["ack_ms"]) for d in done if isinstance(d.get("ack_ms"), (int, float))]
        trt = [float(d["trt_ms"]) for d in done if isinstance(d.get("trt_ms"), (int, float))]
        exercised = any(d.get("exercised", True) for d in done)
        why = ""
        if not sent:
            why = "not sent"
        elif bad:
            why = f"{len(bad)} answer(s) not as required"
        elif not done:
            why = "no answer before the run ended"
        elif not exercised:
            why = "the path was not exercised (no instance reached it)"
        expected = Counter(str(d.get("expected")) for d in done)
        rows.append({
            "id": case.id, "title": case.title, "requires": case.requires, "channel": case.channel,
            "sent": len(sent), "answered": len(done), "as_required": len(good), "wrong": len(bad),
            "pending": max(0, len(sent) - len(done)),
            "wrong_answers": [{"got": g, "count": n} for g, n in came.most_common(10)],
            "expected_seen": dict(expected),
            "ack_ms": {"p50": _pct(ack, 50), "p95": _pct(ack, 95)},
            "trt_ms": {"p50": _pct(trt, 50), "p95": _pct(trt, 95)},
            "exercised": exercised, "passed": not why, "reason": why,
        })
    return rows
