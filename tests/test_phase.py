"""`dcc-capacity phase`: the plan file, a killed and resumed phase run, the completion report, compare.

One tiny phase (tests/data/phase-ci.yaml: two runs of 2-4 s at 15 SRV/s) is run once for the module, killed
with SIGKILL mid-way through its second test and resumed; every test below reads that one phase folder. The
full example plans (examples/phase-*.yaml, a few minutes each) are run by examples/phase-examples.sh.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dcc_capacity.errors import InputError
from dcc_capacity.model.nfr import load_catalogue
from dcc_capacity.model.provenance import PROJECT_DEFAULT
from dcc_capacity.phase.plan import load_plan_file

ROOT = Path(__file__).resolve().parents[1]
PLAN = ROOT / "tests" / "data" / "phase-ci.yaml"
SEED_SECTION = re.compile(r"SCTAD\s+\d|SVTAD|Table\s+13|Appendix\s+A|consultation", re.I)


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, "-m", "dcc_capacity", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=env)


def _complete(folder: Path) -> bool:
    try:
        return json.loads((folder / "run.json").read_text())["status"] == "complete" and \
            (folder / "summary.json").is_file()
    except (OSError, ValueError, KeyError):
        return False


@pytest.fixture(scope="module")
def phase(tmp_path_factory):
    """The CI phase: started, SIGKILLed (whole process group) inside its second test, then resumed."""
    out = tmp_path_factory.mktemp("phase") / "ci"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "dcc_capacity", "phase", "run", str(PLAN), "--out", str(out)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    first, second = out / "runs" / "load-night", out / "runs" / "spike-night"
    deadline = time.monotonic() + 90
    while not (_complete(first) and (second / "run.json").is_file()):
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        assert time.monotonic() < deadline, "the first test did not finish in time"
        time.sleep(0.2)
    time.sleep(0.3)  # the second test has begun (run.json says running)
    first_mtime = (first / "run.json").stat().st_mtime_ns
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    killed_state = json.loads((second / "run.json").read_text())["status"]
    rerun = _cli("phase", "run", str(PLAN), "--out", str(out), timeout=120)
    return {"out": out, "first_mtime": first_mtime, "killed_state": killed_state, "rerun": rerun}


def test_killed_phase_resumes_without_redoing_finished_tests(phase):
    out, rerun = phase["out"], phase["rerun"]
    assert phase["killed_state"] == "running"  # the kill landed mid-test
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "test 1 of 2: load-night (LOAD) already complete, not rerun" in rerun.stderr
    assert "test 2 of 2: spike-night (SPIKE)" in rerun.stderr
    assert (out / "runs" / "load-night" / "run.json").stat().st_mtime_ns == phase["first_mtime"]
    assert _complete(out / "runs" / "spike-night")
    assert (out / "attempts" / "spike-night.1" / "run.json").is_file()  # the killed attempt, kept for the audit
    manifest = json.loads((out / "phase.json").read_text())
    assert manifest["tests"]["load-night"]["attempts"] == 1 and manifest["tests"]["spike-night"]["attempts"] == 2
    run = json.loads((out / "runs" / "load-night" / "run.json").read_text())
    assert run["test_id"] == "LOAD" and run["test_type"] == "load"
    # every run is judged against the phase catalogue (the plan's NFR file with its tests), not the shipped one
    assert (out / "runs" / "load-night" / "nfr.yaml").read_text() == (out / "nfr.yaml").read_text()
    judged = {n["id"] for n in json.loads((out / "runs" / "load-night" / "summary.json").read_text())["nfr"]}
    assert judged == {"NFR-ACK-P95", "NFR-ERR", "NFR-LOST", "NFR-RATE"}


@pytest.fixture(scope="module")
def report(phase):
    from dcc_capacity.phase.report import build_phase_report

    outcome = build_phase_report(phase["out"])
    return outcome, outcome.html.read_text(encoding="utf-8")


def test_phase_report_judges_the_exit_criteria_over_the_phase(report):
    outcome, html = report
    doc = outcome.doc
    ec = {c["id"]: c for c in doc["exit_criteria"]}
    assert set(ec) == {"EC1", "EC2", "EC3", "EC4"}
    assert ec["EC3"]["status"] == "met" and "2 of 2 planned tests" in ec["EC3"]["evidence"]
    assert ec["EC2"]["status"] == "met"
    assert ec["EC1"]["status"] == "not met" and "EN2" in ec["EC1"]["evidence"]  # EN2 has no confirmation
    assert outcome.exit_code == 1
    assert doc["tests"] == {"LOAD": "pass", "SPIKE": "pass"}
    assert all(r["state"] == "complete" for r in doc["runs"])
    for sec in ("details", "risks", "assurance", "model", "inputs", "required", "provenance", "results",
                "traceability", "exit", "extrapolation", "audit", "run-load-night", "run-spike-night"):
        assert f'id="{sec}"' in html, sec
    assert "not in the test catalogue" not in html
    run_report = (outcome.html.parent / "runs" / "load-night" / "report.html").read_text(encoding="utf-8")
    assert "not in the test catalogue" not in run_report
    assert 'href="runs/load-night/report.html"' in html


def test_inputs_are_listed_with_their_sources(report):
    _, html = report
    m = re.search(r'<tr id="in-predicted.per_day.s1_migrations">(.*?)</tr>', html, re.S)
    assert m and "50,000" in m.group(1) and "sctad-consultation-response.txt 5.1.4" in m.group(1)
    assert "plan.json carries no inputs" not in html
    run_html = (report[0].html.parent / "runs" / "load-night" / "report.html").read_text(encoding="utf-8")
    assert "sctad-consultation-response.txt 5.1.4" in run_html and "plan.json carries no inputs" not in run_html


def test_unsourced_default_raises_a_risk_and_cites_no_seed_section(report):
    outcome, html = report
    prov = {p["what"]: p for p in outcome.doc["provenance"]}
    ack = prov["NFR NFR-ACK-P95"]  # tests/data/nfr-ci.yaml gives it no source
    assert ack["default"] and ack["source"] == PROJECT_DEFAULT and not SEED_SECTION.search(ack["source"])
    assert not prov["NFR NFR-LOST"]["default"]  # sourced in the SP's own file
    risk = next(r["text"] for r in outcome.doc["risks"] if PROJECT_DEFAULT in r["text"])
    assert "NFR NFR-ACK-P95" in risk and "NFR NFR-LOST" not in risk
    assert any("EXAMPLE" in r["text"] for r in outcome.doc["risks"])  # the shipped example profile
    row = re.search(r'<tr id="nfr-NFR-ACK-P95">(.*?)</tr>', html, re.S).group(1)
    assert PROJECT_DEFAULT in row and not SEED_SECTION.search(re.sub(r"<[^>]+>", " ", row))


def test_shipped_defaults_cite_no_seed_section_for_their_numbers():
    cat = load_catalogue()
    defaults = [n for n in cat.nfrs if n.source.lower().startswith("project default")]
    assert {n.id for n in defaults} >= {"NFR-ACK-P95", "NFR-ACK-P99", "NFR-TRT-P95", "NFR-ERR", "NFR-RATE"}
    for n in defaults:
        assert not SEED_SECTION.search(n.source.split("(")[0]), n.source
        assert "SCTAD 3.5" not in n.source
    assert cat.issue_thresholds_source.startswith(PROJECT_DEFAULT)


def test_required_versus_tested_is_stated_beside_the_verdict(phase):
    run_dir = phase["out"] / "runs" / "load-night"
    req = json.loads((run_dir / "summary.json").read_text())["required_vs_tested"]
    assert req["met"] is False and req["tested"] == pytest.approx(15.0, rel=0.1)
    assert req["alerts"] > 0 and req["suite_part"] == pytest.approx(req["required"] - req["alerts"])
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    head = html[:html.index('<nav class="toc"')]
    assert 'id="verdict"' in head and "Required vs tested" in head and "does not show the required rate" in head


def test_invalid_run_is_shown_and_not_counted_as_evidence(phase, tmp_path):
    from dcc_capacity.phase.report import build_phase_report

    copy = tmp_path / "invalid"
    shutil.copytree(phase["out"], copy, ignore=shutil.ignore_patterns("records"))
    summary = copy / "runs" / "spike-night" / "summary.json"
    doc = json.loads(summary.read_text())
    summary.write_text(json.dumps({**doc, "valid": False, "invalid_reasons": ["send lag 900 ms"]}))
    outcome = build_phase_report(copy)
    runs = {r["run_id"]: r for r in outcome.doc["runs"]}
    assert runs["spike-night"]["verdict"] == "INVALID" and outcome.doc["tests"]["SPIKE"] == "not run"
    assert next(c for c in outcome.doc["exit_criteria"] if c["id"] == "EC3")["status"] == "not met"
    assert "send lag 900 ms" in outcome.html.read_text(encoding="utf-8")
    from dcc_capacity.phase.runner import run_is_complete

    assert not run_is_complete(copy / "runs" / "spike-night")  # a resumed phase runs it again
    assert run_is_complete(copy / "runs" / "load-night")


def test_compare_lists_changed_inputs_and_flags_an_injected_regression(phase, tmp_path):
    from dcc_capacity.cli import main
    from dcc_capacity.model.provenance import plan_provenance
    from dcc_capacity.model.volume import load_plan
    from dcc_capacity.phase.compare import compare_phases

    new = tmp_path / "new"
    shutil.copytree(phase["out"], new, ignore=shutil.ignore_patterns("records"))
    manifest = json.loads((new / "phase.json").read_text())
    ioc = load_plan(ROOT / "volume_profiles" / "ioc.yaml")
    manifest["inputs"] = plan_provenance(ioc, ROOT / "volume_profiles" / "ioc.yaml")["inputs"]
    (new / "phase.json").write_text(json.dumps(manifest))
    summary = new / "runs" / "load-night" / "summary.json"
    doc = json.loads(summary.read_text())
    doc["ack_ms"]["p95"] = doc["ack_ms"]["p95"] * 20 + 1000
    for n in doc["nfr"]:
        if n["id"] == "NFR-ACK-P95":
            n.update(status="fail", measured=4000.0, **{"pass": False})
    summary.write_text(json.dumps(doc))
    result = compare_phases(phase["out"], new)
    changed = {c["key"] for c in result["changes"]["profile_inputs"]}
    assert {"predicted.enrolled.smets1", "measurement_day"} <= changed
    what = {(g["run_id"], g["what"]) for g in result["regressions"]}
    assert ("load-night", "ack_p95_ms") in what and ("load-night", "LOAD.NFR-ACK-P95") in what
    assert ("spike-night", "ack_p95_ms") not in what
    assert main(["phase", "compare", str(phase["out"]), str(new)]) == 1
    assert main(["phase", "compare", str(phase["out"]), str(phase["out"])]) == 0


def _write(tmp_path: Path, text: str) -> Path:
    plan = tmp_path / "plan.yaml"
    plan.write_text(text.replace("PROFILE", str(ROOT / "volume_profiles" / "foc.yaml")))
    return plan


GOOD = """schema_version: 1
phase: P
capability: FOC
sp: DSP
profile: PROFILE
tests:
  - {id: LOAD, run: {test: load, duration: 3s}}
"""


@pytest.mark.parametrize(("edit", "key", "line", "message"), [
    (("phase: P", "phase: P\ncolour: red"), "colour", 3, "unknown key"),
    (("test: load, duration: 3s", "test: load, durashun: 3s"), "tests[0].run.durashun", 7, "unknown run option"),
    (("test: load, duration: 3s", "test: load, out: x"), "tests[0].run.out", 7, "not allowed here"),
    (("test: load, duration: 3s", "test: load, duration: soon"), "tests[0].run", 7, "not a duration"),
    (("test: load, duration: 3s", "test: lode"), "tests[0].run.test", 7, "must be one of"),
    (("{id: LOAD, run", "{id: LOAD, nfr_ids: [NFR-X], run"), "tests[0].nfr_ids[0]", 7, "unknown NFR 'NFR-X'"),
    (("capability: FOC", "capability: IOC"), "capability", 3, "profile foc.yaml is for FOC"),
    (("  - {id: LOAD, run: {test: load, duration: 3s}}",
      "  - {id: LOAD, run: {test: load}}\n  - {id: LOAD, run: {test: load}}"), "tests[1].id", 8, "already tests[0]"),
])
def test_bad_plan_is_one_line_naming_file_line_and_key(tmp_path, edit, key, line, message):
    plan = _write(tmp_path, GOOD.replace(*edit))
    with pytest.raises(InputError) as exc:
        load_plan_file(plan)
    assert exc.value.key == key and exc.value.line == line and message in str(exc.value), str(exc.value)


def test_cli_bad_plan_exits_2_with_one_line(tmp_path):
    plan = _write(tmp_path, GOOD.replace("schema_version: 1", "schema_version: 7"))
    p = _cli("phase", "run", str(plan), "--out", str(tmp_path / "o"))
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().count("\n") == 0 and f"{plan}:1: schema_version: must be 1" in p.stderr
    assert not (tmp_path / "o").exists()


def test_example_plans_validate_and_use_the_catalogue_ids():
    cat_ids = {t.id for t in load_catalogue().tests}
    for cap in ("ioc", "moc", "foc"):
        plan = load_plan_file(ROOT / "examples" / f"phase-{cap}.yaml")
        assert plan.model.capability == cap.upper()
        assert {t.id for t in plan.tests} <= cat_ids
        executed = {t.id for t in plan.tests} | {t.id for t in plan.catalogue.tests if t.id.startswith("NEG-")}
        applicable = {t.id for t in load_catalogue().tests if t.applies_to(plan.model.sp)}
        assert "SECMP0192" in cat_ids - applicable  # an S1SP test: not part of a DSP phase
        assert executed == applicable  # every catalogue test has a run (the NEG-* cases: the negative run's)


def test_pdf_needs_a_chromium_and_says_so(tmp_path, monkeypatch):
    from dcc_capacity.phase.report import print_pdf

    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("DCC_CAPACITY_CHROMIUM", raising=False)
    (tmp_path / "r.html").write_text("<html></html>")
    with pytest.raises(InputError, match="no headless chromium found"):
        print_pdf(tmp_path / "r.html")


@pytest.mark.browser
def test_phase_report_in_chromium_links_both_ways_offline_and_prints(report, chromium):
    from playwright import sync_api

    from conftest import CHROMIUM_ARGS
    from dcc_capacity.phase.report import print_pdf

    outcome, _ = report
    requests: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        pg = browser.new_context(offline=True).new_page()
        pg.on("request", lambda req: requests.append(req.url))
        pg.goto(outcome.html.as_uri(), wait_until="load")
        for sec in ("details", "risks", "assurance", "model", "provenance", "results", "traceability", "exit",
                    "extrapolation", "audit"):
            assert pg.locator(f"section#{sec} h2").is_visible(), sec
        res = "res-load-night.LOAD.NFR-ERR"
        pg.click(f"[id='nfr-NFR-ERR'] a[href='#{res}']")  # NFR -> result row
        assert pg.evaluate("document.querySelector(':target').id") == res
        pg.click(f"[id='{res}'] a[href='#run-load-night']")  # result row -> run
        assert pg.evaluate("document.querySelector(':target').id") == "run-load-night"
        pg.click(f"[id='run-load-night'] a[href='#{res}']")  # run -> result row
        pg.click(f"[id='{res}'] a[href='#test-LOAD']")  # result row -> test
        pg.click("[id='test-LOAD'] a[href='#nfr-NFR-ERR']")  # test -> NFR
        assert pg.evaluate("document.querySelector(':target').id") == "nfr-NFR-ERR"
        browser.close()
    assert requests and all(u.split("#")[0] == outcome.html.as_uri() for u in requests), requests
    pdf = print_pdf(outcome.html, chromium)
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 10_000


def test_run_default_test_ids_are_the_shipped_catalogues():
    from dcc_capacity.spec.resolve import default_test_id
    from dcc_capacity.testtypes.registry import NAMES, validate_spec

    ids = {t.id: t.type for t in load_catalogue().tests}
    for test in NAMES:
        assert ids[default_test_id(test)] == test, test
    assert validate_spec({"test_id": "LOAD-NIGHT.2"}).test_id == "LOAD-NIGHT.2"
    with pytest.raises(InputError, match="--test-id"):
        validate_spec({"test_id": "load night"})
