"""Synthetic run folders for the report tests: known records, so numbers can be checked independently."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

START = 1_764_000_000.0  # 2025-11-24T16:00:00Z
SRVS = ["4.6.1", "4.8.1", "6.15.1", "11.2"]
CLASSES = ["reads", "installs"]

NFR_DOC = {
    "schema_version": 2,
    "nfrs": [
        {"id": "NFR-ACK-P95", "text": "Synchronous acknowledgement p95 within 1 s", "source": "SCTAD 3.5",
         "metric": "ack_ms", "stat": "p95", "max": 1000},
        {"id": "NFR-TRT-P99", "text": "Response p99 within 5 s", "source": "SCTAD 3.5",
         "metric": "trt_ms", "stat": "p99", "max": 5000},
        {"id": "NFR-ERR", "text": "Error rate below 1 %", "source": "SCTAD 4.2", "metric": "error_rate",
         "max": 0.01},
        {"id": "NFR-461-P95", "text": "SR 4.6.1 response p95 within 3 s", "source": "SCTAD A7",
         "metric": "trt_ms", "stat": "p95", "max": 3000, "srv": "4.6.1"},
        {"id": "NFR-RATE", "text": "Achieved rate at least 95 % of offered", "source": "SCTAD 3.5",
         "metric": "achieved_ratio", "min": 0.95},
    ],
    "tests": [
        {"id": "LOAD-DSP-NIGHT", "name": "Load, DSP, night peak", "type": "load",
         "nfr_ids": ["NFR-ACK-P95", "NFR-TRT-P99", "NFR-ERR", "NFR-461-P95", "NFR-RATE"]},
        {"id": "STRESS-DSP", "name": "Stress ramp past peak", "type": "stress", "nfr_ids": ["NFR-ACK-P95"]},
    ],
    "issue_thresholds": {1: 0, 2: 0, 3: 5, 4: 10},
}


def make_records(n: int = 20_000, seed: int = 7, duration_s: float = 600.0, error_share: float = 0.002,
                 slow: float = 1.0) -> pd.DataFrame:
    """Folded records (one row per request, the writer's columns) with a few failures of each real kind.

    ``error`` is an async E3 response, ``throttled`` a 429 ack (no response
    expected), ``missing`` a response that never came: what the measurement
    core writes for each. :func:`write_records` writes them with RecordWriter.
    """
    rng = np.random.default_rng(seed)
    intended = START + np.sort(rng.uniform(0, duration_s, n))
    ack = np.round(rng.lognormal(4.0, 0.6, n) * slow, 3)
    trt = np.round(ack + rng.lognormal(6.5, 0.5, n) * slow, 3)
    outcome = np.array(["ok"] * n, dtype=object)
    bad = rng.random(n)
    outcome[bad < error_share] = "error"
    outcome[(bad >= error_share) & (bad < error_share * 2)] = "throttled"
    outcome[(bad >= error_share * 2) & (bad < error_share * 2.5)] = "missing"
    trt[(outcome == "missing") | (outcome == "throttled")] = np.nan
    callback = intended + trt / 1000
    srv = rng.choice(SRVS, n)
    return pd.DataFrame({
        "process": "syn-1", "kind": "request", "request_id": [f"r{i}" for i in range(n)],
        "user_class": rng.choice(CLASSES, n), "srv_variant": srv, "label": srv, "arrival": np.arange(n),
        "step": 0, "intended_ts": intended, "sent_ts": intended + 0.0005, "ack_ts": intended + ack / 1000,
        "ack_ms": ack, "ack_code": np.where(outcome == "throttled", 429, 200), "callback_ts": callback,
        "trt_ms": trt, "response_code": np.where(outcome == "error", "E3", np.where(outcome == "ok", "I0", "")),
        "outcome": outcome, "error": np.where(outcome == "ok", "", outcome),
    })


def write_records(run_dir: Path, records: pd.DataFrame, flush_every: int = 1_000) -> None:
    """Write folded records as the measurement core does: a request row at the ack, a callback row later.

    Rows go out in event-time order (acks and responses interleaved) and are
    flushed every ``flush_every`` rows, so readers see many batches and
    responses that land in a later batch than their request.
    """
    from dcc_capacity.load.records import RecordWriter

    req_cols = ["request_id", "user_class", "srv_variant", "label", "arrival", "step", "intended_ts", "sent_ts",
                "ack_ts", "ack_ms", "ack_code"]
    events = []
    for r in records.to_dict("records"):
        awaits = r["outcome"] != "throttled"
        req = {c: r[c] for c in req_cols}
        req.update(outcome="pending" if awaits else r["outcome"], error="" if awaits else r["error"])
        events.append((r["ack_ts"], req))
        if awaits:
            cb_ts = r["callback_ts"] if r["outcome"] != "missing" else r["intended_ts"] + 120
            events.append((cb_ts, {"kind": "callback", "request_id": r["request_id"], "user_class": r["user_class"],
                                   "srv_variant": r["srv_variant"], "label": r["label"], "arrival": r["arrival"],
                                   "step": r["step"], "intended_ts": r["intended_ts"],
                                   "callback_ts": r["callback_ts"], "trt_ms": r["trt_ms"],
                                   "response_code": r["response_code"], "outcome": r["outcome"],
                                   "error": r["error"]}))
    events.sort(key=lambda e: e[0])
    with RecordWriter(run_dir, tag="syn-1", start_flusher=False, flush_interval=1e9) as w:
        for i, (_, row) in enumerate(events, 1):
            w.write(**row)
            if i % flush_every == 0:
                w.flush()


def make_run(root: Path, records: pd.DataFrame | None = None, *, status: str = "complete",
             test_id: str = "LOAD-DSP-NIGHT", duration_s: float = 600.0, nfr: dict | None = None,
             **run_extra) -> Path:
    """Write a complete run folder (run.json, plan.json, nfr.yaml, metrics.csv, records/records-syn-1.arrows)."""
    root.mkdir(parents=True, exist_ok=True)
    records = make_records(duration_s=duration_s) if records is None else records
    run = {
        "schema_version": 1, "test_id": test_id, "test_type": "load", "sp": "DSP", "slot": "night",
        "profile": {"path": "volume_profiles/foc.yaml", "sha256": "ab" * 32},
        "nfr_file": {"path": "nfr.yaml", "sha256": "cd" * 32},
        "command_line": "dcc-capacity run --test load --sp DSP --slot night --out results/x", "seed": 42,
        "start": "2025-11-24T16:00:00Z", "end": "2025-11-24T16:10:00Z", "duration_s": duration_s,
        "target": "embedded emulator", "status": status,
        "versions": {"dcc_capacity": "0.1.0", "locust": "2.47.0", "python": "3.11", "sut": "emulator 0.1.0"},
        "rates": {"reads": {"target": 16.0, "offered": 16.5}, "installs": {"target": 16.0, "offered": 16.5}},
        "operator_actions": [{"time": "2025-11-24T16:05:00Z", "who": "tester", "action": "noted GC pause"}],
    }
    run.update(run_extra)
    (root / "run.json").write_text(json.dumps(run, indent=1))
    plan = {"profile": "worked example", "capability": "FOC",
            "A5": {"meter_reads": {"night": 36e6, "day": 1.2e6, "evening": 4e5}},
            "A6": {"DSP": {"night": 46545833.3, "day": 23696312.9, "evening": 8462253.7}},
            "A7": {"DSP": {"night": 1108.2, "day": 219.4, "evening": 141.0}},
            "inputs": {"current.enrolled.smets2": {"value": 12000000, "source": "production MI, Oct"},
                       "test_scale.DSP": {"value": 0.2, "source": "test env is 1/5 of production"}}}
    (root / "plan.json").write_text(json.dumps(plan))
    (root / "nfr.yaml").write_text(yaml.safe_dump(nfr or NFR_DOC, sort_keys=False))
    t = START + np.arange(0, duration_s, 10.0)
    pd.DataFrame({"ts": t, "cpu_percent": 40 + 10 * np.sin(t), "rss_bytes": 300e6 + t - START,
                  "queue_depth": 3, "in_flight": 5, "throttled": 0, "rejected": 0}).to_csv(root / "metrics.csv",
                                                                                           index=False)
    write_records(root, records)
    return root


class Page:
    """The report's HTML parsed with lxml: ids, links and rows, for structural assertions."""

    def __init__(self, path: Path) -> None:
        import lxml.html

        self.text = path.read_text(encoding="utf-8")
        self.doc = lxml.html.fromstring(self.text)
        self.ids = [e.get("id") for e in self.doc.iter() if isinstance(e.tag, str) and e.get("id")]

    def by_id(self, ident: str):
        found = self.doc.xpath("//*[@id=$i]", i=ident)
        assert len(found) == 1, f"id {ident!r} found {len(found)} times"
        return found[0]

    def links_in(self, element) -> list[str]:
        return [a.get("href")[1:] for a in element.iter("a") if (a.get("href") or "").startswith("#")]

    def urls(self) -> list[tuple[str, str]]:
        """Every (attribute, value) that could make a browser fetch something or leave the page."""
        out = []
        for e in self.doc.iter():
            if not isinstance(e.tag, str):
                continue
            for attr, value in e.attrib.items():
                if attr.split("}")[-1] in ("href", "src", "srcset", "action", "data", "poster", "background"):
                    out.append((attr, value))
        return out
