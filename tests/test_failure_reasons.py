"""Failures counted by reason in summary.json and the report, and the emulator's tamper fault in isolation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from _emulator_helpers import PKI_DIR
from _report_helpers import Page, make_records, make_run
from dcc_capacity.duis.responses import ResponseSigner, build_response
from dcc_capacity.duis.verify import TrustStore
from dcc_capacity.emulator.faults import tamper
from dcc_capacity.pki import TestPKI
from dcc_capacity.report.build import build_report
from dcc_capacity.report.metrics import failure_reason
from dcc_capacity.response_check import check_signature

SIG = "bad response signature: digest mismatch: the document was changed after signing"


def test_failure_reason_keeps_the_text_up_to_the_second_colon():
    assert failure_reason(SIG, "error") == "bad response signature: digest mismatch"
    assert failure_reason("HTTP 429 E47", "throttled") == "HTTP 429 E47"
    assert failure_reason("", "missing") == "missing"
    assert failure_reason("ConnectionRefusedError: [Errno 111] Connection refused", "error") == \
        "ConnectionRefusedError: [Errno 111] Connection refused"


@pytest.mark.timeout(60)
def test_summary_and_report_count_failures_by_reason(tmp_path):
    recs = make_records(n=3000, duration_s=60, error_share=0.01)
    errors = np.flatnonzero(recs["outcome"].to_numpy() == "error")
    recs.loc[recs.index[errors[:7]], "error"] = SIG
    expected = {}
    for out, err in zip(recs["outcome"], recs["error"], strict=True):
        if out in ("error", "throttled", "missing"):
            key = failure_reason(err, out)
            expected[key] = expected.get(key, 0) + 1
    assert expected["bad response signature: digest mismatch"] == 7 and len(expected) == 4
    outcome = build_report(make_run(tmp_path / "run", recs, duration_s=60))
    doc = json.loads(outcome.summary.read_text())
    assert doc["failure_reasons"] == expected
    assert sum(doc["failure_reasons"].values()) == doc["failures"]
    page = Page(outcome.html)
    table = page.by_id("failure-reasons").xpath("following-sibling::table[1]")[0]
    rows = {r[0].text_content(): r[1].text_content() for r in table.iter("tr") if r[0].tag == "td"}
    assert rows["bad response signature: digest mismatch"] == "7" and len(rows) == 4


def test_tamper_breaks_the_signature_but_keeps_request_id_and_code():
    pki = TestPKI.load_or_create(PKI_DIR)
    signed = build_response(signer=ResponseSigner.from_credential(pki.dcc), response_code="I0", srv="4.6.1",
                            srv_variant="4.6.1", request_id="90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:77")
    trust = TrustStore()
    trust.add(pki.dcc.cert)
    assert check_signature(signed, trust) == ""
    bad = tamper(signed)
    assert bad != signed and len(bad) == len(signed)
    assert b"<sr:RequestID>90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:77</sr:RequestID>" in bad
    assert b"<sr:ResponseCode>I0</sr:ResponseCode>" in bad
    assert check_signature(bad, trust).startswith("bad response signature: digest mismatch")
    # Without a timestamp the signature value itself is changed.
    no_ts = signed.replace(b"ResponseDateTime", b"ResponseStamp")
    assert check_signature(tamper(no_ts), trust).startswith("bad response signature:")
