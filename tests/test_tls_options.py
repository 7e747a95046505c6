"""Mutual TLS pieces one at a time: the callback listener over HTTPS with client certificates (PKCS#12 client),
signature checks at the listener, and bad TLS input as one line and exit status 2 (Locust and the emulator CLI)."""

from __future__ import annotations

import http.client
import subprocess
import sys
import time

import gevent
import pytest
from gevent import ssl as gevent_ssl
from geventhttpclient import HTTPClient

from _emulator_helpers import PKI_DIR
from _load_helpers import ROOT
from _tls_helpers import TestCA
from dcc_capacity.config.tls import ClientTls, ServerTls
from dcc_capacity.duis.pki import TestPKI
from dcc_capacity.duis.responses import ResponseSigner, build_response
from dcc_capacity.duis.verify import TrustStore
from dcc_capacity.emulator.faults import tamper
from dcc_capacity.errors import InputError
from dcc_capacity.load.callbacks import CallbackListener

RID = "90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:{}"


def _post(url: str, body: bytes, tls: ClientTls) -> int:
    ctx = tls.context(gevent_ssl.SSLContext)
    client = HTTPClient.from_url(url, ssl_context_factory=lambda *_a, **_k: ctx, network_timeout=5,
                                 connection_timeout=5)
    try:
        return client.post("/", body=body).status_code
    finally:
        client.close()


@pytest.mark.timeout(30)
def test_callback_listener_over_mutual_tls_checks_signatures_and_refuses_clients_without_certificates(
        tmp_path, monkeypatch):
    ca = TestCA(tmp_path / "tls")
    listener_cert = ca.issue("listener", server=True)
    p12 = ca.pkcs12("emulator-deliveries", b"p12-pw")
    monkeypatch.setenv("DCC_TEST_P12_PW", "p12-pw")
    pki = TestPKI.load_or_create(PKI_DIR)
    trust = TrustStore()
    trust.add(pki.dcc.cert)
    signer = ResponseSigner.from_credential(pki.dcc)
    ctx = ServerTls(str(listener_cert.cert), str(listener_cert.key), str(ca.ca)).context(gevent_ssl.SSLContext)
    lst = CallbackListener(late_after_s=5, missing_after_s=5, ssl_context=ctx, trust=trust).start()
    try:
        assert lst.url.startswith("https://127.0.0.1:")
        client = ClientTls(pkcs12=str(p12), password_env="DCC_TEST_P12_PW", ca=str(ca.ca))
        good, bad = RID.format(1), RID.format(2)
        p_good = lst.expect(good, label="4.6.1", intended_ts=time.time())
        p_bad = lst.expect(bad, label="4.6.1", intended_ts=time.time())
        ok_body = build_response(signer=signer, response_code="I0", srv="4.6.1", srv_variant="4.6.1", request_id=good)
        bad_body = tamper(build_response(signer=signer, response_code="I0", srv="4.6.1", srv_variant="4.6.1",
                                         request_id=bad))
        assert gevent.spawn(_post, lst.url, ok_body, client).get(timeout=10) == 200
        assert gevent.spawn(_post, lst.url, bad_body, client).get(timeout=10) == 200
        assert p_good.wait(5).outcome == "ok"
        res = p_bad.wait(5)
        assert res.outcome == "error" and res.response_code == "I0"
        assert lst.counts["bad_signature"] == 1 and lst.counts["ok"] == 1 and lst.counts["error"] == 1
        # No client certificate: the handshake fails, nothing reaches the listener.
        third = RID.format(3)
        lst.expect(third, label="4.6.1", intended_ts=time.time())
        body3 = build_response(signer=signer, response_code="I0", srv="4.6.1", srv_variant="4.6.1", request_id=third)
        with pytest.raises((OSError, http.client.HTTPException)):  # ssl.SSLError, a reset or a closed connection
            gevent.spawn(_post, lst.url, body3, ClientTls(ca=str(ca.ca))).get(timeout=10)
        assert lst.counts["received"] == 2 and lst.pending_count == 1
    finally:
        lst.stop()


def test_bad_pkcs12_password_and_unverified_mode(tmp_path, monkeypatch):
    ca = TestCA(tmp_path / "tls")
    p12 = ca.pkcs12("c", b"right")
    monkeypatch.setenv("DCC_TEST_WRONG", "wrong")
    with pytest.raises(InputError, match=r"c\.p12: --tls-pkcs12: cannot read the PKCS#12 bundle"):
        ClientTls(pkcs12=str(p12), password_env="DCC_TEST_WRONG").context()
    ctx = ClientTls(verify=False).context()
    assert ctx.verify_mode == gevent_ssl.CERT_NONE and not ctx.check_hostname
    assert ClientTls(ca=str(ca.ca)).context().verify_mode == gevent_ssl.CERT_REQUIRED  # verify is the default


@pytest.mark.timeout(60)
def test_bad_tls_input_is_one_line_and_exit_2_for_locust_and_the_emulator(tmp_path, run_cli):
    missing = tmp_path / "nope.pem"
    r = subprocess.run([sys.executable, "-m", "locust", "-f", str(ROOT / "tests" / "_om_locustfile.py"), "--headless",
                        "--host", "https://127.0.0.1:9", "-t", "2s", "--tls-client-cert", str(missing)],
                       capture_output=True, text=True, timeout=40, cwd=ROOT,
                       env={"PYTHONPATH": f"{ROOT / 'src'}:{ROOT / 'tests'}", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 2, r.stderr[-2000:]
    assert f"{missing}: --tls-client-cert: no such file" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("emulator", "--port", "0", "--tls-cert", str(missing), timeout=40)
    assert r.returncode == 2, r.stderr[-2000:]
    assert str(missing) in r.stderr and "tls.cert" in r.stderr and "Traceback" not in r.stderr
