"""Done-when of issue #10 (TLS part): the suite against the emulator over mutual TLS, signatures checked.

``dcc-capacity run`` (``run_test``) with the embedded emulator, keys and
certificates made here (tests/_tls_helpers.py), not the suite's test PKI: a
CA, the emulator's server certificate (127.0.0.1), a client certificate for
the load side (its key encrypted, the password in an environment variable)
and one for the emulator's callback deliveries; the callback listener serves
HTTPS and requires client certificates too. The emulator tampers with 8 % of
its signed answers after signing; every one must be a failure counted by its
reason in the records, summary.json and the report, and nothing else may fail.
"""

from __future__ import annotations

import io
import json
import ssl
import urllib.error
import urllib.request

import pytest
from cryptography.hazmat.primitives import serialization

from _report_helpers import Page
from _tls_helpers import TestCA
from dcc_capacity.duis.pki import TestPKI
from dcc_capacity.emulator import start_emulator
from dcc_capacity.load.records import load_records
from dcc_capacity.orchestrate.run import RunOptions, run_test
from dcc_capacity.paths import data_dir
from dcc_capacity.spec.resolve import TestSpec as Spec

pytestmark = pytest.mark.quiet  # its figures depend on the CPU it gets (tests/_lanes.py)

PASSWORD = "s3cret-load-key-pw"
SIG = "bad response signature"


@pytest.fixture
def tls(tmp_path):
    ca = TestCA(tmp_path / "tls")
    return {"ca": ca, "sut": ca.issue("sut", server=True), "listener": ca.issue("listener", server=True),
            "load": ca.issue("load-side", password=PASSWORD.encode()), "emu": ca.issue("emulator-deliveries")}


def _emulator_tls(t: dict) -> dict:
    return {"tls": {"cert": str(t["sut"].cert), "key": str(t["sut"].key), "client_ca": str(t["ca"].ca)},
            "callback_tls": {"client_cert": str(t["emu"].cert), "client_key": str(t["emu"].key),
                             "ca": str(t["ca"].ca)}}


@pytest.mark.timeout(90)
def test_run_over_mutual_tls_counts_every_tampered_response_as_a_failure_with_its_reason(tmp_path, tls, monkeypatch):
    monkeypatch.setenv("DCC_TEST_TLS_PW", PASSWORD)
    dcc_pem = tmp_path / "dcc-signing.pem"
    dcc_pem.write_bytes(TestPKI.load_or_create().dcc.cert.public_bytes(serialization.Encoding.PEM))
    t, out = tls, tmp_path / "run"
    extra = ["--tls-client-cert", str(t["load"].cert), "--tls-client-key", str(t["load"].key),
             "--tls-key-password-env", "DCC_TEST_TLS_PW", "--tls-ca", str(t["ca"].ca),
             "--callback-tls-cert", str(t["listener"].cert), "--callback-tls-key", str(t["listener"].key),
             "--callback-tls-client-ca", str(t["ca"].ca), "--response-cert", str(dcc_pem), "--drain", "5"]
    emu_cfg = {**_emulator_tls(t), "faults": {"tamper_responses": {"enabled": True, "share": 0.08}}}
    spec = Spec(test="load", profile=str(data_dir("volume_profiles") / "foc.yaml"), rate=40.0, duration_s=6.0)
    log = io.StringIO()
    code = run_test(RunOptions(spec=spec, out=out, extra_locust_args=extra, emulator_config=emu_cfg, log=log,
                               command_line=["dcc-capacity", "run", "--test", "load"]))
    assert code in (0, 1), log.getvalue()  # 1: the tampered share fails the error-rate NFR, as it should
    run_doc = json.loads((out / "run.json").read_text())
    assert run_doc["status"] == "complete", log.getvalue()
    # The emulator's side, from metrics.csv polled over mutual TLS by the run command, and its config.
    emu_cfg_written = json.loads((out / "logs" / "emulator-config.json").read_text())
    assert emu_cfg_written["callback_url"].startswith("https://127.0.0.1:")
    assert len((out / "metrics.csv").read_text().splitlines()) >= 4  # the poller got in with a client certificate
    df = load_records(out / "records")
    requests, alerts = df[df["kind"] == "request"], df[df["kind"] == "alert"]
    assert len(requests) >= 150  # ~40 SRV/s for 6 s, all of it over mutual TLS both ways
    bad = requests[requests["error"].str.startswith(SIG)]
    others = requests.drop(bad.index)
    assert len(bad) >= 3 and (bad["outcome"] == "error").all()
    assert bad["error"].str.contains("digest mismatch").all()  # a changed timestamp breaks the digest
    assert set(others["outcome"]) <= {"ok", "pending"}, others[others["outcome"] != "ok"][["outcome", "error"]]
    # Every tampered alert is caught too (alerts are the emulator's own, at the profile's rate).
    assert (alerts["outcome"] == "error").sum() == alerts["error"].str.startswith(SIG).sum()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failure_reasons"] == {f"{SIG}: digest mismatch": len(bad)}
    assert summary["failures"] == len(bad)
    page = Page(out / "report.html")
    table = page.by_id("failure-reasons").xpath("following-sibling::table[1]")[0]
    assert f"{SIG}: digest mismatch" in table.text_content()
    for f in out.rglob("*"):
        if f.is_file() and f.suffix not in (".arrows",):
            assert PASSWORD not in f.read_text(errors="replace"), f


@pytest.mark.timeout(60)
def test_tampered_answers_match_the_emulators_count_and_a_client_without_certificate_is_refused(tmp_path, tls):
    """Locust straight against a TLS emulator: records' bad-signature failures == the emulator's tampered count."""
    import os
    import subprocess
    import sys

    from _load_helpers import ROOT, free_port

    t = tls
    dcc_pem = tmp_path / "dcc-signing.pem"
    dcc_pem.write_bytes(TestPKI.load_or_create().dcc.cert.public_bytes(serialization.Encoding.PEM))
    cb_port = free_port()
    cfg = {"port": 0, "callback_url": f"https://127.0.0.1:{cb_port}/", "fleet_seed": 20240601,
           "fleet_size": 1_000_000, "counter_window_s": 2.0, **_emulator_tls(t),
           "faults": {"tamper_responses": {"enabled": True, "share": 0.08}}}
    run_dir = tmp_path / "run"
    with start_emulator(cfg, mode="subprocess") as emu:
        assert emu.url.startswith("https://127.0.0.1:")
        bare = ssl.create_default_context(cafile=str(t["ca"].ca))
        with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
            urllib.request.urlopen(emu.url + "/health", timeout=5, context=bare)  # noqa: S310 - loopback
        with_cert = ssl.create_default_context(cafile=str(t["ca"].ca))
        with_cert.load_cert_chain(str(t["emu"].cert), str(t["emu"].key))
        assert emu.metrics(context=with_cert)["totals"]["tampered"] == 0
        locustfile = ROOT / "src" / "dcc_capacity" / "load" / "users" / "locustfile.py"
        cmd = [sys.executable, "-m", "locust", "-f", str(locustfile),
               "--headless", "--host", emu.url, "--run-dir", str(run_dir), "--callback-port", str(cb_port),
               "--dcc-profile", str(data_dir("volume_profiles") / "foc.yaml"), "--dcc-rate", "40",
               "--dcc-duration", "5s", "--drain", "5", "--tls-client-cert", str(t["load"].cert),
               "--tls-client-key", str(t["load"].key), "--tls-key-password-env", "DCC_TEST_TLS_PW",
               "--tls-ca", str(t["ca"].ca), "--callback-tls-cert", str(t["listener"].cert),
               "--callback-tls-key", str(t["listener"].key), "--callback-tls-client-ca", str(t["ca"].ca),
               "--response-cert", str(dcc_pem), "--progress-interval", "0", "--exit-code-on-error", "0",
               "--loglevel", "WARNING", "--only-summary"]
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "DCC_TEST_TLS_PW": PASSWORD}
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=45, env=env, cwd=ROOT)
        assert r.returncode == 0, r.stderr[-3000:]
        m = emu.metrics(context=with_cert)
    df = load_records(run_dir)
    bad = df[(df["kind"] == "request") & df["error"].str.startswith(SIG)]
    tampered = m["totals"]["tampered"]
    assert tampered >= 3 and len(bad) == tampered  # no alerts configured: every tampered answer is a request's
    assert m["totals"]["callbacks_failed"] == 0  # the emulator's client certificate got through to the listener
    assert PASSWORD not in r.stdout + r.stderr
