"""`run --test negative`: every case id sent and answered as DUIS requires, in run.json, nfr_results and the report;
a wrong answer (an emulator configured not to reject) fails its case, NFR-NEG and the exit status."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import httpx
import pytest

from _emulator_helpers import PKI_DIR
from _lanes import BACKGROUND, background, cli
from dcc_capacity.errors import InputError
from dcc_capacity.load.records import load_records
from dcc_capacity.testtypes.negative.cases import (
    CASE_IDS,
    Verdict,
    VerdictWriter,
    ack_code,
    judge_code,
    judge_no_code,
    summarise,
)

ROOT = Path(__file__).resolve().parents[1]


def _negative(tmp: Path):  # noqa: ANN202 - a job (tests/_lanes.py)
    ran = yield cli(["run", "--test", "negative", "--duration", "12s", "--rate", "7"], tmp / "run", timeout=150)
    return tmp / "run", ran


@pytest.fixture(scope="module")
def negative_run(request: pytest.FixtureRequest):
    """The negative run both slow tests read, started in the background lane when collection ended."""
    return BACKGROUND.shared(request, "test_every_case_is_sent_and_answered_as_duis_requires", _negative)


@pytest.mark.slow
@pytest.mark.timeout(300)
@background(_negative)
def test_every_case_is_sent_and_answered_as_duis_requires(negative_run):
    out, p = negative_run
    assert p.returncode == 0, p.stderr[-3000:]
    run = json.loads((out / "run.json").read_text())
    assert run["test_id"] == "NEGATIVE" and run["test_type"] == "negative" and run["status"] == "complete"
    cases = {c["id"]: c for c in run["negative"]["cases"]}
    assert tuple(cases) == CASE_IDS and run["negative"]["passed"] and run["executed_tests"] == list(CASE_IDS)
    for cid, c in cases.items():
        # 4 instances/s over 20 s, 7 DUIS cases in turn (~11 each); a migration every 2 s (~10)
        assert c["sent"] >= 5, (cid, c)
        assert c["as_required"] == c["answered"] >= c["sent"] - 2 and c["wrong"] == 0, (cid, c)
        assert c["passed"] and c["exercised"] and not c["wrong_answers"], (cid, c)
        assert 0 < c["ack_ms"]["p50"] <= c["ack_ms"]["p95"] < 5000, (cid, c["ack_ms"])
        assert 0 < c["trt_ms"]["p50"] <= c["trt_ms"]["p95"] < 10000, (cid, c["trt_ms"])
    # both sides of the 8.11 limit and of the missing code were exercised, and judged by their own requirement
    assert set(cases["NEG-811-JOIN"]["expected_seen"]) == {"ack I99, async E081101", "ack I99, async I0"}
    assert set(cases["NEG-NO-CODE"]["expected_seen"]) == {"no ResponseCode -> recorded as a failure",
                                                          "I0 -> recorded ok"}
    # async error paths wait for the device delay; a sync rejection does not
    assert cases["NEG-811-JOIN"]["trt_ms"]["p50"] > 5 * cases["NEG-SIG"]["trt_ms"]["p50"]

    # the records keep what the SUT said: a missing code is never an OK row, an E42 is an error row
    df = load_records(out / "records")
    nocode = df[df["label"].str.startswith("NEG-NO-CODE")]
    assert not ((nocode["response_code"] == "") & (nocode["outcome"] == "ok")).any()
    assert ((nocode["response_code"] == "") & (nocode["outcome"] == "error")).sum() >= 1
    sig = df[df["label"].str.startswith("NEG-SIG")]
    assert len(sig) >= 5 and set(sig["error"]) == {"E42"}

    # the CP wrote the outcome files: fallout coded MIGRATION_FALLOUT, the re-sent devices commissioned
    cofs = sorted((out / "logs" / "cp" / "out").glob("COF_*.csv"))
    rows = [r for f in cofs for r in csv.DictReader(f.open())]
    reasons = {(r["outcome"], r["reason"]) for r in rows}
    assert ("FAILED", "MIGRATION_FALLOUT") in reasons and ("COMMISSIONED", "") in reasons
    assert reasons <= {("FAILED", "MIGRATION_FALLOUT"), ("COMMISSIONED", "")}

    ext = {r["test_id"]: r for r in json.loads((out / "nfr_results.json").read_text()) if r["id"] == "NFR-NEG"}
    assert set(ext) == {*CASE_IDS, "NEGATIVE"} and all(r["pass"] and r["measured"] == 1.0 for r in ext.values())
    summary = json.loads((out / "summary.json").read_text())
    judged = {(n["id"], n["test_id"]): n["status"] for n in summary["nfr"]}
    assert all(judged[("NFR-NEG", cid)] == "pass" for cid in (*CASE_IDS, "NEGATIVE"))
    assert judged[("NFR-LOST", "NEGATIVE")] == "pass"

    html = (out / "report.html").read_text()
    for cid in CASE_IDS:
        assert f'<tr id="{cid}">' in html
        assert f'id="res-{cid}.NFR-NEG"' in html and f'href="#{cid}"' in html  # result row <-> case row
    assert '<section id="negative">' in html
    assert "PASS" in html.split('<section id="negative">')[1].split("</section>")[0]
    assert "NEG-FALLOUT: PASS" in p.stderr and "NEG-REPLAY: PASS" in p.stderr


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_wrong_answer_fails_its_case_nfr_neg_and_the_exit_status(negative_run, tmp_path):
    """The real run's folder plus one NEG-SIG answered I99 (a SUT that accepted a bad signature)."""
    from dcc_capacity.report.build import build_report
    from dcc_capacity.testtypes.negative.report import write_results

    src, p = negative_run
    assert p.returncode == 0, p.stderr[-2000:]
    out = tmp_path / "run"
    shutil.copytree(src, out)
    w = VerdictWriter(out, tag="wrong")
    w.sent("NEG-SIG", "X")
    w.verdict(judge_code("NEG-SIG", "E42", "I99", ack_ms=3.0, request_id="X"))
    w.close()
    run = json.loads((out / "run.json").read_text())
    write_results(out, run, run["negative"]["settings"])
    (out / "run.json").write_text(json.dumps(run))
    outcome = build_report(out)
    assert outcome.exit_code == 1
    sig = next(c for c in run["negative"]["cases"] if c["id"] == "NEG-SIG")
    assert not sig["passed"] and sig["wrong"] == 1 and sig["wrong_answers"] == [{"got": "I99", "count": 1}]
    assert run["negative"]["failed_cases"] == ["NEG-SIG"]
    judged = {(n["id"], n["test_id"]): n["status"] for n in outcome.summary_doc["nfr"]}
    assert judged[("NFR-NEG", "NEG-SIG")] == "fail" and judged[("NFR-NEG", "NEGATIVE")] == "fail"
    assert judged[("NFR-NEG", "NEG-ROLE")] == "pass"
    row = outcome.html.read_text().split('<tr id="NEG-SIG">')[1].split("</tr>")[0]
    assert "1 × I99" in row and "FAIL" in row


@pytest.mark.timeout(60)
def test_an_emulator_that_does_not_reject_fails_the_case():
    """Real requests, real emulator: SECMP0192 switched off and the Network Operator given a supplier role."""
    from dcc_capacity.duis.factory import RequestFactory
    from dcc_capacity.duis.pki import TestPKI
    from dcc_capacity.emulator import start_emulator
    from dcc_capacity.model.fleet import Fleet
    from dcc_capacity.testtypes.negative import build as nb

    fleet = Fleet(20240601, 10_000)
    factory = RequestFactory.from_pki(TestPKI.load_or_create(PKI_DIR), fleet)
    smets2 = next(fleet[i] for i in range(100) if fleet[i].smets == 2)
    cfg = {"port": 0, "pki_dir": str(PKI_DIR), "counter_window_s": 600.0, "secmp0192": {"enabled": False},
           "users": {"90-B3-D5-1F-30-02-00-00": {"roles": ["ED", "GT", "IS"]}}}
    import random

    rng = random.Random(3)
    reqs = {"NEG-0192-S2": (nb.smets2_0192(factory, smets2, rng), "E050110"),
            "NEG-ROLE": (nb.ineligible_role(factory, smets2), "E2"),
            "NEG-SIG": (nb.bad_signature(factory, smets2), "E42")}
    lines = []
    with start_emulator(cfg, mode="subprocess") as emu, httpx.Client(base_url=emu.url, timeout=10) as http:
        for case, (req, expected) in reqs.items():
            r = http.post(emu.path({1: "S", 8: "D"}[req.command_variant]), content=req.body,
                          headers={"Content-Type": "application/xml"})
            lines.append({"event": "sent", "case": case})
            v = judge_code(case, expected, ack_code(r.status_code, r.content), ack_ms=1.0)
            lines.append({"event": "verdict", **v.__dict__})
    rows = {c["id"]: c for c in summarise(lines)}
    assert not rows["NEG-0192-S2"]["passed"] and rows["NEG-0192-S2"]["wrong_answers"] == [{"got": "I0", "count": 1}]
    assert not rows["NEG-ROLE"]["passed"] and rows["NEG-ROLE"]["wrong_answers"] == [{"got": "I99", "count": 1}]
    assert rows["NEG-SIG"]["passed"]  # still checked: the control
    assert rows["NEG-FALLOUT"]["reason"] == "not sent" and not rows["NEG-FALLOUT"]["passed"]


def test_case_rules_pending_unexercised_and_missing_codes():
    lines = [{"event": "sent", "case": "NEG-811-JOIN"}, {"event": "sent", "case": "NEG-811-JOIN"}]
    ok255 = judge_code("NEG-811-JOIN", "I99", "I99", expected_async="I0", async_code="I0", ack_ms=1, trt_ms=9)
    ok255.exercised = False  # only the accepted side: the > 255 s path not reached
    lines.append({"event": "verdict", **ok255.__dict__})
    row = next(r for r in summarise(lines) if r["id"] == "NEG-811-JOIN")
    assert row["pending"] == 1 and row["wrong"] == 0 and not row["passed"] and "not exercised" in row["reason"]
    # a response without ResponseCode that the suite recorded as OK is the wrong answer NEG-NO-CODE is about
    assert not judge_no_code("I99", "", "ok", ack_ms=1, trt_ms=2).ok
    assert judge_no_code("I99", "", "error", ack_ms=1, trt_ms=2).ok
    assert not judge_no_code("I99", "", "missing", ack_ms=1, trt_ms=None).ok
    v = judge_code("NEG-811-JOIN", "I99", "I99", expected_async="E081101", async_code="", ack_ms=1)
    assert not v.ok and v.got == "ack I99, async no async ResponseCode"
    assert isinstance(Verdict("NEG-SIG", "E42", "E42", True).ts, float)


def test_callback_without_response_code_is_an_error_not_ok():
    from dcc_capacity.load.callbacks import CallbackListener

    lst = CallbackListener(None)
    p = lst.expect("90-B3-D5-1F-30-01-00-00:00-DB-19-00-00-00-00-01:5", label="4.8.1", intended_ts=0.0)
    lst.on_body(b"<sr:Response><sr:Header><sr:RequestID>90-B3-D5-1F-30-01-00-00:00-DB-19-00-00-00-00-01:5"
                b"</sr:RequestID></sr:Header></sr:Response>", arrival_ts=1.0)
    assert p.wait(1).outcome == "error" and lst.counts["error"] == 1 and lst.counts["ok"] == 0


def test_malformed_negative_section_in_run_json_is_one_input_error():
    from dcc_capacity.testtypes.negative.report import section

    assert section({}) is None
    with pytest.raises(InputError, match=r"negative\.cases\[0\]\.sent"):
        section({"negative": {"cases": [{"id": "NEG-SIG", "passed": True, "sent": "many"}]}})
    with pytest.raises(InputError, match="negative"):
        section({"negative": [1, 2]})


def test_sftp_side_failing_fails_neg_fallout_with_what_came(tmp_path):
    from dcc_capacity.testtypes.negative.cases import load_verdicts
    from dcc_capacity.testtypes.negative.migrations import MigrationCases

    t = MigrationCases(1, tmp_path, [], 2.0)  # nothing listens on port 1
    t.start()
    t.join(15)
    rows = {c["id"]: c for c in summarise(load_verdicts(tmp_path))}
    assert "ConnectionRefusedError" in t.error
    assert not rows["NEG-FALLOUT"]["passed"] and "SFTP: ConnectionRefusedError" in rows["NEG-FALLOUT"]["wrong_answers"][
        0]["got"]


def test_against_an_external_sut_the_sftp_cases_are_not_run_not_failed(tmp_path):
    from dcc_capacity.testtypes.negative.report import negative_results, nfr_results

    w = VerdictWriter(tmp_path)
    for cid in CASE_IDS[2:]:
        w.sent(cid)
        v = judge_code(cid, "E2", "E2", ack_ms=1.0)
        v.case = cid
        w.verdict(v)
    w.close()
    neg = negative_results(tmp_path, {"sftp": False})
    assert neg["not_run"] == ["NEG-FALLOUT", "NEG-REPROCESS"] and neg["passed"]
    assert [c["id"] for c in neg["cases"]] == list(CASE_IDS[2:])
    assert {r["test_id"] for r in nfr_results(neg)} == {*CASE_IDS[2:], "NEGATIVE"}
    assert not negative_results(tmp_path, {"sftp": True})["passed"]  # with an SFTP interface they must be sent


def test_a_run_outside_the_catalogue_is_not_judged_on_nfr_neg(tmp_path):
    """A load run with the default catalogue: every NFR but NFR-NEG (no load run answers it) is judged."""
    import yaml

    from _report_helpers import make_run
    from dcc_capacity.model.nfr import default_nfr_path
    from dcc_capacity.report.build import build_report

    doc = yaml.safe_load(default_nfr_path().read_text())
    outcome = build_report(make_run(tmp_path / "r", nfr=doc))
    judged = {n["id"] for n in outcome.summary_doc["nfr"]}
    assert "NFR-NEG" not in judged and {"NFR-ERR", "NFR-LOST", "NFR-ACK-P95"} <= judged
