"""Build the evidence report of one run folder: the function ``run`` and ``report`` both call.

One direction only: run folder -> metrics -> verdicts -> charts -> files.
Nothing here writes anywhere but the run folder, and nothing reads outside
it (the template folder aside), so a report can be rebuilt by an auditor.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dcc_capacity import __version__
from dcc_capacity.load.records import RecordStats
from dcc_capacity.model.provenance import source_text
from dcc_capacity.report import charts, scenarios
from dcc_capacity.report import cp as cp_report
from dcc_capacity.report._files import read_json
from dcc_capacity.report.analysis import extrapolation, stress_steps
from dcc_capacity.report.baseline import compare, load_baseline
from dcc_capacity.report.inputs import RunFolder, iter_record_batches, load_run
from dcc_capacity.report.metrics import NEEDED_COLUMNS, Metrics, compute_metrics
from dcc_capacity.report.outputs import summary, write_json, write_junit
from dcc_capacity.report.render import render_html
from dcc_capacity.report.required import plan_sp, provenance_risks, required_vs_tested, tested_rate
from dcc_capacity.report.resources import load_resources, threshold_rows
from dcc_capacity.report.resources import risks as resource_risks
from dcc_capacity.report.scheduled import section as scheduled_section
from dcc_capacity.report.tps import tps_groups
from dcc_capacity.report.traceability import Traceability, anchor, evaluate, exit_criteria, issue_counts
from dcc_capacity.report.validity import judge_validity, load_drains
from dcc_capacity.testtypes.negative.report import section as negative_section

__all__ = ["ReportOutcome", "build_report", "summarise_folder", "OUT_OF_SCOPE"]

OUT_OF_SCOPE = [
    ("End-to-end capacity of the Modified DCC Total System",
     "Components are tested in isolation (consultation response); end-to-end behaviour is inferred, not measured."),
    ("Other Service Providers", "Each SP proves its own component; interactions between SPs are simulated."),
    ("SMETS1 CSPs, Service Management System and Self-Service Interface",
     "Outside System Capacity Testing (SCTAD 3.7, 3.8); assurance obtained separately."),
    ("DUIS interface only", "Load is offered at the DCC User Interface (DUIS); Device-side and CSP-side "
     "latencies are those of the simulators, not of real networks."),
]


@dataclass
class ReportOutcome:
    """What a build produced and the exit status the CLI contract asks for."""

    html: Path
    summary: Path
    junit: Path
    exit_code: int
    """0 all NFRs met, 1 an NFR failed / degraded / run incomplete, 3 the run itself failed."""
    summary_doc: dict[str, Any]


def _duration(folder: RunFolder, metrics: Metrics) -> float | None:
    d = folder.duration_s
    if d and not folder.incomplete:
        return d
    if metrics.first_ts is not None and metrics.last_ts is not None:
        observed = metrics.last_ts - folder.start_epoch
        return max(observed, 1e-9) if d is None else min(d, max(observed, 1e-9))
    return d


def _analyse(folder: RunFolder, progress: Callable[[str], None],
             batch_rows: int) -> tuple[Metrics, Traceability, float | None]:
    progress(f"loading records from {folder.path / 'records'}")
    stats = RecordStats()
    metrics = compute_metrics(lambda: iter_record_batches(folder.path, NEEDED_COLUMNS, batch_rows, stats, folder,
                                                          scheduled=True),  # SECMP0192 executions: report/scheduled.py
                              folder.start_epoch, folder.run.get("slot"), folder.duration_s, progress)
    folder.truncated = bool(stats.truncated)
    folder.alerts = stats.alerts
    metrics.groups.update(load_resources(folder.path).groups())  # per-host tables for resource NFRs
    metrics.groups.update(tps_groups(metrics, stats.alerts, folder.duration_s))  # MP192-SA5 TPS (report/tps.py)
    if stats.truncated:
        progress(f"truncated record files (their writer was killed): {', '.join(stats.truncated)}")
    progress(f"computing verdicts for {len(folder.nfrs)} NFRs over {metrics.requests:,} records")
    duration = _duration(folder, metrics)
    return metrics, evaluate(folder, metrics, duration), duration


def summarise_folder(path: Path, batch_rows: int = 250_000) -> dict[str, Any]:
    """A folder's summary.json document without rendering anything (used for baselines with no summary)."""
    folder = load_run(path)
    metrics, trace, duration = _analyse(folder, lambda _m: None, batch_rows)
    doc = summary(folder.run, metrics, trace, duration, folder.incomplete, {}, folder.alerts)
    return _with_validity(doc, _validity(folder, metrics))


def _validity(folder: RunFolder, metrics: Metrics) -> dict[str, Any]:
    drains = load_drains(folder.path)
    v = judge_validity(folder.run, metrics.send_lag, int(metrics.overall().get("dropped", 0) or 0),
                       drains.get("host_cpu"))
    v["drain"] = drains
    return v


def _with_validity(doc: dict[str, Any], validity: dict[str, Any]) -> dict[str, Any]:
    """summary.json: an INVALID run passes nothing, whatever its NFR rows say (they are not evidence)."""
    doc.update(validity)
    doc["pass"] = bool(doc.get("pass")) and validity["valid"]
    return doc


def _risks(folder: RunFolder, trace: Traceability, extra: dict[str, Any],
           comparison: dict[str, Any] | None) -> list[dict[str, str]]:
    risks = []
    if comparison is not None and not comparison["no_degradation"]:
        risks.append({"level": "high", "text": f"Performance degraded against baseline {comparison['test']} "
                      f"beyond the {comparison['tolerance_pct']:g} % tolerance.", "href": "baseline"})
    if folder.incomplete:
        risks.append({"level": "high", "text": "The run ended early or its records are truncated: "
                      "results cover only the part that was recorded."})
    for why in extra.get("invalid_reasons", []):
        risks.append({"level": "high", "text": f"Run INVALID: {why}. No NFR result of this run is evidence.",
                      "href": "generator"})
    for r in trace.results:
        if r.status in ("fail", "no data"):
            risks.append({"level": "high", "text": f"{r.nfr.id} {r.status} in {r.test_id}.", "href": r.anchor})
    target = str(folder.run.get("target", ""))
    if "emulator" in target.lower():
        risks.append({"level": "high", "text": "The target was the embedded emulator, not the SP's system: "
                      "these figures prove the test harness, not the SP's capacity."})
    ex = extra["extrapolation"]
    if ex["headroom"] is not None and ex["headroom"] < 1.2:
        risks.append({"level": "medium", "text": f"Measured headroom over the required rate is only "
                      f"{ex['headroom']:.2f}x (less than 1.2x)."})
    if ex["test_scale"] not in (None, 1.0):
        risks.append({"level": "medium", "text": "Production capacity is extrapolated from the test environment "
                      "assuming linear scaling (SCTAD 3.6); not measured at production scale."})
    return risks


def build_report(run_dir: str | Path, *, baseline_dir: str | Path | None = None, tolerance_pct: float = 5.0,
                 progress: Callable[[str], None] = lambda _m: None, batch_rows: int = 250_000) -> ReportOutcome:
    """Write ``report.html``, ``summary.json`` and ``junit.xml`` into ``run_dir``.

    Raises :class:`~dcc_capacity.errors.InputError` for a missing or malformed
    run folder (the CLI turns it into one line and exit 2).
    """
    started = time.monotonic()
    folder = load_run(run_dir)
    base = load_baseline(baseline_dir, summarise_folder) if baseline_dir is not None else None
    cp = cp_report.apply(folder)  # CP mode: its section, and its NFRs as external results (before the verdicts)
    metrics, trace, duration = _analyse(folder, progress, batch_rows)
    stress = stress_steps(folder, metrics)
    res = load_resources(folder.path)
    extra: dict[str, Any] = {"extrapolation": extrapolation(folder, metrics, stress, duration, trace.all_pass, res)}
    if cp is not None:  # the CP's capacity is in installations/s
        extra["extrapolation"] = cp_report.extrapolation(extra["extrapolation"], cp, trace.all_pass)
    issues, issue_rows = issue_counts(folder, trace)
    criteria = exit_criteria(folder, trace, issue_rows)
    validity = _validity(folder, metrics)
    doc = _with_validity(summary(folder.run, metrics, trace, duration, folder.incomplete, {}, folder.alerts), validity)
    comparison = None
    if base is not None:
        progress(f"comparing with baseline {baseline_dir} (tolerance {tolerance_pct:g} %)")
        comparison = compare(doc, base, trace, tolerance_pct)
        doc = _with_validity(summary(folder.run, metrics, trace, duration, folder.incomplete,
                                     {"baseline": {"test": comparison["test"], "tolerance_pct": tolerance_pct,
                                                   "no_degradation": comparison["no_degradation"]}}, folder.alerts),
                             validity)
    shape_file = Path(run_dir) / "shape.json"
    if shape_file.exists():  # what the load shape found (e.g. the stress knee), written by the run
        doc["shape"] = read_json(shape_file)
    scen = scenarios.analyse(folder, metrics, duration, lambda cols: iter_record_batches(
        folder.path, cols, batch_rows, None, folder))  # soak drift, catch-up, fairness (docs/report.md)
    if scen:
        doc["scenarios"] = scenarios.public(scen)
    if folder.killed or folder.run.get("lost_workers"):  # the run's own failures, in the machine-readable summary
        doc["killed"] = folder.killed
        doc["lost_workers"] = folder.run.get("lost_workers") or []
    spec = folder.run.get("spec") or {}
    required = required_vs_tested(folder.plan, plan_sp(folder.run), folder.run.get("slot"),
                                  tested_rate(folder.run, doc),
                                  normal=bool(spec.get("normal")), test_type=folder.run["test_type"],
                                  excluded=bool(spec.get("exclude")))
    if cp is not None:  # the CP is tested in installations (migrations) per day, not SRV/s
        required = cp_report.required_row(cp, folder.run)
        doc["cp_migration"] = cp
    sched = scheduled_section(metrics.scheduled, metrics.groups.get("srv_class"), folder.nfrs)
    if sched is not None:  # SECMP0192 executions' responses: the DCC's work, apart from the run's SRV totals
        doc["scheduled"] = sched
    doc["required_vs_tested"] = required  # so a PASS never sits beside an unmet Table A7 rate unexplained
    doc["exit_criteria"] = [{"id": c["id"], "status": c["status"]} for c in criteria]
    doc["extrapolation"] = extra["extrapolation"]
    if res.present:  # the SUT's resources per host, for CI and the board's own tooling (report/resources.py)
        doc["resources"] = res.summary()
    progress("charting")
    targets = {c: r.get("target") for c, r in (folder.run.get("rates") or {}).items()}
    figures = {
        "rates": charts.rates_chart(metrics.rates, targets),
        "latency": charts.latency_chart(metrics.latency_time),
        "codes": charts.codes_chart(metrics.codes),
        "resources": charts.resources_chart(folder.sut_metrics, folder.start_epoch),
        "host_resources": charts.host_resources_chart(res.samples, folder.start_epoch, res.gaps(folder.start_epoch)),
        "stress": charts.stress_chart(stress["steps"]) if stress else None,
    }
    backlinks: dict[str, list[str]] = {}
    for r in trace.results:
        if r.evidence:
            backlinks.setdefault(r.evidence, []).append(r.id)
    failed = folder.run["status"] == "failed"
    invalid = not validity["valid"]
    ok = trace.all_pass and not folder.incomplete and (comparison is None or comparison["no_degradation"])
    ok = ok and not invalid
    verdict = "FAILED RUN" if failed else ("INVALID" if invalid else (
        "INCOMPLETE" if folder.incomplete else ("PASS" if ok else "FAIL")))
    context = {
        "run": folder.run, "folder": folder, "metrics": metrics, "trace": trace, "duration": duration,
        "summary": doc, "stress": stress, "extrapolation": extra["extrapolation"], "issues": issues,
        "issue_rows": issue_rows, "criteria": criteria, "comparison": comparison, "charts": figures,
        "backlinks": backlinks, "verdict": verdict, "incomplete": folder.incomplete, "plan": folder.plan,
        "scenarios": scen, "scenario_sections": scenarios.sections(),
        "risks": _risks(folder, trace, {**extra, "invalid_reasons": validity["invalid_reasons"]}, comparison)
        + scenarios.risks(scen) + resource_risks(res, str(folder.run.get("target", "")))
        + provenance_risks(folder.nfrs, folder.issue_thresholds_source, folder.plan, required),
        "required": required, "source_text": source_text,
        "res": res, "res_gaps": res.gaps(folder.start_epoch),
        "res_thresholds": threshold_rows(folder.nfrs, folder.nfr_source),
        "out_of_scope": OUT_OF_SCOPE if cp is None else cp_report.out_of_scope(OUT_OF_SCOPE), "anchor": anchor,
        "negative": negative_section(folder.run, folder.path / "run.json"), "cp": cp,
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "generator": f"dcc-capacity {__version__} report, Python {platform.python_version()}",
        "build_s": time.monotonic() - started, "validity": validity, "invalid": invalid, "scheduled": sched,
    }
    progress("writing report.html, summary.json, junit.xml")
    out = Path(run_dir)
    html = out / "report.html"
    html.write_text(render_html(context), encoding="utf-8")
    write_json(out / "summary.json", doc)
    write_junit(out / "junit.xml", trace, folder.incomplete, folder.run["test_id"],
                invalid="; ".join(validity["invalid_reasons"]))
    code = 3 if failed or invalid else (0 if ok else 1)
    return ReportOutcome(html=html, summary=out / "summary.json", junit=out / "junit.xml", exit_code=code,
                         summary_doc=doc)
