"""`dcc-capacity report`: exit codes, bad input in one line, summary.json, junit.xml, baseline verdicts."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from _report_helpers import Page, make_records, make_run
from dcc_capacity.errors import InputError
from dcc_capacity.report.build import build_report

CONTRACT_KEYS = {"test", "offered_rate", "achieved_rate", "duration_s", "requests", "failures", "ack_ms", "trt_ms",
                 "by_srv", "nfr"}


def test_cli_writes_three_files_and_prints_progress(tmp_path, run_cli):
    run = make_run(tmp_path / "run", make_records(n=2_000))
    proc = run_cli("report", str(run))
    assert proc.returncode == 0, proc.stderr
    for step in ("loading records", "pass 1", "computing verdicts", "charting", "writing"):
        assert step in proc.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary.keys() >= CONTRACT_KEYS
    assert set(summary["ack_ms"]) >= {"p50", "p95", "p99", "max"}
    assert set(summary["by_srv"]["4.6.1"]) >= {"requests", "failures", "ack_ms", "trt_ms"}
    assert {"id", "pass"} <= summary["nfr"][0].keys()
    suite = ET.parse(run / "junit.xml").getroot().find("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases if c.get("classname") == "LOAD-DSP-NIGHT"] == [
        "NFR-ACK-P95", "NFR-TRT-P99", "NFR-ERR", "NFR-461-P95", "NFR-RATE"]
    assert len(cases) == 5  # one per NFR this run judged; the STRESS-DSP row is "not run", in the HTML only
    assert suite.get("failures") == "0" and suite.get("skipped") == "0"


def test_cli_exit_1_when_an_nfr_fails(tmp_path, run_cli):
    run = make_run(tmp_path / "run", make_records(n=2_000, error_share=0.05))
    proc = run_cli("report", str(run))
    assert proc.returncode == 1, proc.stderr
    junit = ET.parse(run / "junit.xml").getroot()
    failed = [c.get("name") for c in junit.iter("testcase") if c.find("failure") is not None]
    assert "NFR-ERR" in failed


def test_cli_missing_folder_exit_2_names_it(tmp_path, run_cli):
    missing = tmp_path / "nope"
    proc = run_cli("report", str(missing))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(missing) in lines[0] and "Traceback" not in proc.stderr


@pytest.mark.parametrize(("edit", "field"), [
    (lambda r: r.update(status="finished"), "status"),
    (lambda r: r.pop("test_id"), "test_id"),
    (lambda r: r.update(start="yesterday"), "start"),
    (lambda r: r.update(rates={"reads": {"target": "fast"}}), "rates.reads.target"),
])
def test_cli_malformed_run_json_exit_2_names_the_field(tmp_path, run_cli, edit, field):
    run = make_run(tmp_path / "run", make_records(n=100))
    doc = json.loads((run / "run.json").read_text())
    edit(doc)
    (run / "run.json").write_text(json.dumps(doc))
    proc = run_cli("report", str(run))
    assert proc.returncode == 2
    line = proc.stderr.strip()
    assert "\n" not in line and "run.json" in line and f"{field}:" in line, line


def test_invalid_json_and_bad_catalogue_name_file_and_field(tmp_path):
    run = make_run(tmp_path / "run", make_records(n=100))
    (run / "run.json").write_text("{not json")
    with pytest.raises(InputError, match=r"run\.json:1: not valid JSON"):
        build_report(run)
    run = make_run(tmp_path / "run2", make_records(n=100))
    (run / "nfr.yaml").write_text("schema_version: 2\nnfrs:\n  - {id: A, metric: ack_ms.p42, max: 1}\n")
    with pytest.raises(InputError, match=r"nfr\.yaml:3: nfrs\[0\]\.metric: must be one of"):
        build_report(run)


def test_run_folder_without_record_files_names_the_folder(tmp_path):
    run = make_run(tmp_path / "run", make_records(n=100))
    (run / "records" / "records-syn-1.arrows").unlink()
    with pytest.raises(InputError, match="no record files") as info:
        build_report(run)
    assert info.value.file.endswith("records")


def test_baseline_equal_run_shows_no_degradation(tmp_path, run_cli):
    recs = make_records(n=3_000, seed=1)
    base = make_run(tmp_path / "base", recs)
    assert run_cli("report", str(base)).returncode == 0
    cur = make_run(tmp_path / "cur", recs)
    proc = run_cli("report", str(cur), "--baseline", str(base))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((cur / "summary.json").read_text())
    assert summary["baseline"]["no_degradation"] is True
    assert all(n["no_degradation"] for n in summary["nfr"])
    page = Page(cur / "report.html")
    assert "+0.0 %" in page.by_id("res-LOAD-DSP-NIGHT.NFR-TRT-P99").text_content()


def test_baseline_degraded_metric_fails_within_nfr(tmp_path):
    base = make_run(tmp_path / "base", make_records(n=3_000, seed=1))
    build_report(base)
    slower = make_run(tmp_path / "cur", make_records(n=3_000, seed=1, slow=1.5))  # 50 % slower, NFRs still met
    outcome = build_report(slower, baseline_dir=base, tolerance_pct=10)
    assert outcome.exit_code == 1
    by_id = {n["id"]: n for n in outcome.summary_doc["nfr"]}
    assert by_id["NFR-TRT-P99"]["pass"] is True and by_id["NFR-TRT-P99"]["no_degradation"] is False
    assert by_id["NFR-ERR"]["no_degradation"] is True
    assert outcome.summary_doc["baseline"]["no_degradation"] is False
    # a generous tolerance accepts the same change
    assert build_report(slower, baseline_dir=base, tolerance_pct=60).exit_code == 0


def test_baseline_without_summary_is_aggregated_from_records(tmp_path):
    recs = make_records(n=2_000, seed=4)
    base = make_run(tmp_path / "base", recs)
    outcome = build_report(make_run(tmp_path / "cur", recs), baseline_dir=base)
    assert outcome.summary_doc["baseline"]["no_degradation"] is True


def test_bad_baseline_folder_and_tolerance(tmp_path, run_cli):
    run = make_run(tmp_path / "run", make_records(n=100))
    proc = run_cli("report", str(run), "--baseline", str(tmp_path / "gone"))
    assert proc.returncode == 2 and "gone" in proc.stderr
    proc = run_cli("report", str(run), "--tolerance", "-1")
    assert proc.returncode == 2 and "--tolerance" in proc.stderr


def test_failed_run_exit_3_still_reported(tmp_path, run_cli):
    run = make_run(tmp_path / "run", make_records(n=500), status="failed")
    proc = run_cli("report", str(run))
    assert proc.returncode == 3
    assert "FAILED RUN" in (run / "report.html").read_text()


def test_default_catalogue_when_folder_has_none(tmp_path):
    run = make_run(tmp_path / "run", make_records(n=500), test_id="LOAD")
    (run / "nfr.yaml").unlink()
    outcome = build_report(run)
    page = Page(outcome.html)
    page.by_id("nfr-NFR-LOST")
    assert "default catalogue" in page.text


def test_degradation_is_flagged_in_the_matrix(tmp_path):
    base = make_run(tmp_path / "base", make_records(n=2_000, seed=2))
    build_report(base)
    outcome = build_report(make_run(tmp_path / "cur", make_records(n=2_000, seed=2, slow=2.0)), baseline_dir=base)
    row = Page(outcome.html).by_id("nfr-NFR-ACK-P95").text_content()
    assert "DEGRADED vs baseline" in row
    assert "DEGRADED" in Page(outcome.html).by_id("verdict").text_content()
