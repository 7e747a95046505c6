"""The report page: self-contained, every section present, traceability links resolve both ways."""

from __future__ import annotations

import re

import pytest

from _report_helpers import Page, make_records, make_run
from dcc_capacity.report.build import build_report

SECTIONS = ["details", "risks", "assurance", "model", "results", "traceability", "exit", "extrapolation", "audit"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    run = make_run(tmp_path_factory.mktemp("r") / "run")
    outcome = build_report(run)
    return outcome, Page(outcome.html)


def test_every_section_and_chart_is_there(built):
    outcome, page = built
    for sec in SECTIONS:
        assert page.by_id(sec).tag == "section"
    for chart in ("chart-rates", "chart-latency", "chart-codes", "chart-resources"):
        assert page.doc.xpath("//svg[@aria-label=$c]", c=chart), chart
    assert outcome.exit_code == 0
    assert page.by_id("verdict").text_content().strip().startswith("PASS")
    for table in ("Table A5", "Table A6", "Table A7"):
        assert table in page.text
    assert "production MI, Oct" in page.text  # an input shown with its source


def test_self_contained_no_external_reference(built):
    _, page = built
    urls = page.urls()
    assert urls, "expected in-page links"
    offsite = [(a, v) for a, v in urls if not v.startswith("#")]
    assert offsite == []
    assert "<link" not in page.text and "@import" not in page.text
    assert not re.search(r"url\((?!#)", page.text), "CSS/SVG url() must point in-page only"
    assert page.doc.xpath("//script[@src]") == []


def test_ids_unique_and_every_anchor_resolves(built):
    _, page = built
    assert len(page.ids) == len(set(page.ids))
    ids = set(page.ids)
    targets = {v[1:] for _, v in page.urls() if v.startswith("#")}
    assert targets and targets <= ids, targets - ids


def test_nfr_rows_link_to_tests_and_results_and_back(built):
    _, page = built
    for nid in ("NFR-ACK-P95", "NFR-TRT-P99", "NFR-ERR", "NFR-461-P95", "NFR-RATE"):
        row = page.by_id(f"nfr-{nid}")
        links = page.links_in(row)
        tests = [x for x in links if x.startswith("test-")]
        results = [x for x in links if x.startswith("res-")]
        assert "test-LOAD-DSP-NIGHT" in tests
        assert f"res-LOAD-DSP-NIGHT.{nid}" in results
        for res in results:  # result row links back to its NFR and its test
            back = page.links_in(page.by_id(res))
            assert f"nfr-{nid}" in back
            assert any(b.startswith("test-") for b in back)
        for t in tests:  # test row lists the NFR
            assert f"nfr-{nid}" in page.links_in(page.by_id(t))


def test_result_rows_link_to_their_evidence_and_evidence_links_back(built):
    _, page = built
    res = page.by_id("res-LOAD-DSP-NIGHT.NFR-461-P95")
    evidence = [x for x in page.links_in(res) if x.startswith("m-")]
    assert evidence == ["m-srv-4.6.1"]
    assert "res-LOAD-DSP-NIGHT.NFR-461-P95" in page.links_in(page.by_id("m-srv-4.6.1"))
    assert "PASS" in res.text_content()
    assert "not run" in page.by_id("res-STRESS-DSP.NFR-ACK-P95").text_content()


def test_measured_numbers_in_result_rows_match_records(tmp_path):
    recs = make_records(n=5_000, seed=11)
    page = Page(build_report(make_run(tmp_path / "run", recs)).html)
    cells = page.by_id("res-LOAD-DSP-NIGHT.NFR-TRT-P99").xpath("./td")
    assert cells[4].text_content() == f"{recs['trt_ms'].quantile(0.99):,.1f}"
    err = page.by_id("res-LOAD-DSP-NIGHT.NFR-ERR").xpath("./td")[4].text_content()
    assert err == f"{(recs.outcome == 'error').mean() * 100:.2f} %"


def test_exit_criteria_checklist_and_issue_thresholds(built):
    _, page = built
    for ec in ("ec-EC1", "ec-EC2", "ec-EC3", "ec-EC4"):
        page.by_id(ec)
    assert "not met" in page.by_id("ec-EC3").text_content()  # 1 of 2 planned tests in this folder
    assert "met" in page.by_id("ec-EC4").text_content()


def test_failed_nfr_raises_an_issue_over_threshold(tmp_path):
    recs = make_records(n=4_000, error_share=0.05)  # 5 % errors > 1 % NFR
    outcome = build_report(make_run(tmp_path / "run", recs))
    page = Page(outcome.html)
    assert outcome.exit_code == 1
    assert "FAIL" in page.by_id("res-LOAD-DSP-NIGHT.NFR-ERR").text_content()
    assert "AUTO-LOAD-DSP-NIGHT.NFR-ERR" in page.text
    assert "not met" in page.by_id("ec-EC4").text_content()
    assert page.by_id("verdict").text_content().strip().startswith("FAIL")


def test_incomplete_run_is_reported_and_marked(tmp_path):
    recs = make_records(n=3_000, duration_s=200)
    run = make_run(tmp_path / "run", recs, status="incomplete")
    run_json = (run / "run.json").read_text().replace('"end": "2025-11-24T16:10:00Z",', "")
    (run / "run.json").write_text(run_json.replace('"duration_s": 600.0,', ""))
    outcome = build_report(run)
    page = Page(outcome.html)
    assert outcome.exit_code == 1
    assert "INCOMPLETE" in page.by_id("verdict").text_content()
    assert "[INCOMPLETE]" in page.doc.findtext(".//title")
    assert outcome.summary_doc["complete"] is False
    assert outcome.summary_doc["requests"] == 3_000
    assert outcome.summary_doc["duration_s"] == pytest.approx(200, abs=5)


def test_truncated_records_mark_the_report_incomplete(tmp_path):
    run = make_run(tmp_path / "run", make_records(n=1_000))
    part = run / "records" / "records-syn-1.arrows"
    part.write_bytes(part.read_bytes()[:-300])  # the writer was killed mid-batch
    outcome = build_report(run)
    assert outcome.summary_doc["complete"] is False
    assert "records truncated" in Page(outcome.html).by_id("verdict").text_content()


def test_stress_knee_is_found(tmp_path):
    import numpy as np

    frames = []
    for step, slow in ((1, 1.0), (2, 1.0), (3, 30.0)):
        r = make_records(n=2_000, seed=step, duration_s=100, slow=slow)
        for col in ("intended_ts", "sent_ts", "ack_ts", "callback_ts"):
            r[col] += (step - 1) * 100
        r["request_id"] = f"s{step}-" + r["request_id"]
        frames.append(r)
    import pandas as pd

    recs = pd.concat(frames, ignore_index=True)
    stress = {"steps": [{"step": s, "target_rate": 20.0 * s, "start_s": (s - 1) * 100, "end_s": s * 100}
                        for s in (1, 2, 3)]}
    outcome = build_report(make_run(tmp_path / "run", recs, test_type="stress", stress=stress))
    page = Page(outcome.html)
    assert "step 2 at" in page.by_id("stress").getnext().text_content()
    assert "ack_ms.p95" in page.by_id("step-3").text_content()
    row2 = page.by_id("step-2").xpath("./td")
    assert row2[2].text_content() == f"{2000 / 100:.1f}"
    assert np.isclose(outcome.summary_doc["requests"], 6000)


def test_run_killed_before_any_record_still_gets_a_report(tmp_path):
    run = make_run(tmp_path / "run", make_records(n=10).iloc[:0], status="incomplete")
    outcome = build_report(run)
    page = Page(outcome.html)
    assert outcome.exit_code == 1
    assert "INCOMPLETE" in page.by_id("verdict").text_content()
    assert {n["status"] for n in outcome.summary_doc["nfr"]} == {"no data"}
