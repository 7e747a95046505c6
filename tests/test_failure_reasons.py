"""Failures counted by reason (summary.json ``failure_reasons``), and the emulator's tamper fault in isolation.

The report and summary.json of a real run are checked in tests/test_tls_e2e.py."""

from __future__ import annotations

import numpy as np

from _emulator_helpers import PKI_DIR
from _report_helpers import START, make_records
from dcc_capacity.duis.pki import TestPKI
from dcc_capacity.duis.responses import ResponseSigner, build_response
from dcc_capacity.duis.verify import TrustStore
from dcc_capacity.emulator.faults import tamper
from dcc_capacity.load.response_check import check_signature
from dcc_capacity.report.metrics import compute_metrics, failure_reason

SIG = "bad response signature: digest mismatch: the document was changed after signing"


def test_failure_reason_keeps_the_text_up_to_the_second_colon():
    assert failure_reason(SIG, "error") == "bad response signature: digest mismatch"
    assert failure_reason("HTTP 429 E47", "throttled") == "HTTP 429 E47"
    assert failure_reason("", "missing") == "missing"
    assert failure_reason("ConnectionRefusedError: [Errno 111] Connection refused", "error") == \
        "ConnectionRefusedError: [Errno 111] Connection refused"


def test_failed_requests_are_counted_by_reason_in_one_pass_over_the_batches():
    recs = make_records(n=3000, duration_s=60, error_share=0.01)
    errors = np.flatnonzero(recs["outcome"].to_numpy() == "error")
    recs.loc[recs.index[errors[:7]], "error"] = SIG
    expected: dict[str, int] = {}
    for out, err in zip(recs["outcome"], recs["error"], strict=True):
        if out in ("error", "throttled", "missing"):
            key = failure_reason(err, out)
            expected[key] = expected.get(key, 0) + 1
    assert expected["bad response signature: digest mismatch"] == 7 and len(expected) == 4
    batches = [recs.iloc[i:i + 500].reset_index(drop=True) for i in range(0, len(recs), 500)]
    metrics = compute_metrics(lambda: iter(batches), START, "night", 60.0)
    assert metrics.failure_reasons == dict(sorted(expected.items(), key=lambda kv: (-kv[1], kv[0])))
    assert sum(metrics.failure_reasons.values()) == int(metrics.overall()["failures"])


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
