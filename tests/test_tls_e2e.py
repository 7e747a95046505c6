"""Done-when of issue #10 (TLS part): the suite against the emulator over mutual TLS, signatures checked.

Keys and certificates are made here (tests/_tls_helpers.py), not taken from
the suite's test PKI: a CA, the emulator's server certificate (127.0.0.1),
a client certificate for the load side (its key encrypted, the password in
an environment variable) and one for the emulator's callback deliveries; the
callback listener serves HTTPS and requires client certificates too. The
emulator tampers with 8 % of its signed answers after signing; every one
must be recorded as a failure with its reason, and nothing else may fail.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from cryptography.hazmat.primitives import serialization

from _emulator_helpers import PKI_DIR
from _load_helpers import ROOT, free_port
from _tls_helpers import TestCA
from dcc_capacity.emulator import start_emulator
from dcc_capacity.paths import data_dir
from dcc_capacity.pki import TestPKI
from dcc_capacity.records import load_records

LOCUSTFILE = ROOT / "src" / "dcc_capacity" / "users" / "locustfile.py"
PASSWORD = "s3cret-load-key-pw"


@pytest.mark.timeout(60)
def test_suite_over_mutual_tls_counts_every_tampered_response_and_refuses_clients_without_certificates(tmp_path):
    ca = TestCA(tmp_path / "tls")
    server = ca.issue("sut", server=True)
    listener = ca.issue("listener", server=True)
    load = ca.issue("load-side", password=PASSWORD.encode())
    emu_client = ca.issue("emulator-deliveries")
    dcc_pem = tmp_path / "dcc-signing.pem"
    dcc_pem.write_bytes(TestPKI.load_or_create(PKI_DIR).dcc.cert.public_bytes(serialization.Encoding.PEM))
    cb_port = free_port()
    cfg = {"port": 0, "pki_dir": str(PKI_DIR), "callback_url": f"https://127.0.0.1:{cb_port}/",
           "fleet_seed": 20240601, "fleet_size": 1_000_000, "counter_window": 2_000_000 << 10,
           "tls": {"cert": str(server.cert), "key": str(server.key), "client_ca": str(ca.ca)},
           "callback_tls": {"client_cert": str(emu_client.cert), "client_key": str(emu_client.key), "ca": str(ca.ca)},
           "faults": {"tamper_responses": {"enabled": True, "share": 0.08}}}
    run_dir = tmp_path / "run"
    with start_emulator(cfg, mode="subprocess") as emu:
        assert emu.url.startswith("https://127.0.0.1:")
        # A client without a certificate is refused by the emulator (the handshake or first read fails) ...
        bare = ssl.create_default_context(cafile=str(ca.ca))
        with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
            urllib.request.urlopen(emu.url + "/health", timeout=5, context=bare)  # noqa: S310 - loopback
        # ... and a client with one gets in.
        with_cert = ssl.create_default_context(cafile=str(ca.ca))
        with_cert.load_cert_chain(str(emu_client.cert), str(emu_client.key))
        assert emu.metrics(context=with_cert)["totals"]["tampered"] == 0

        cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", emu.url,
               "--run-dir", str(run_dir), "--callback-port", str(cb_port), "--pki-dir", str(PKI_DIR),
               "--volume-profile", str(data_dir("volume_profiles") / "foc.yaml"), "--sp", "DSP",
               "--dcc-test", "load", "--dcc-rate", "40", "--dcc-duration", "6s", "--drain", "5",
               "--tls-client-cert", str(load.cert), "--tls-client-key", str(load.key),
               "--tls-key-password-env", "DCC_TEST_TLS_PW", "--tls-ca", str(ca.ca),
               "--callback-tls-cert", str(listener.cert), "--callback-tls-key", str(listener.key),
               "--callback-tls-client-ca", str(ca.ca), "--response-cert", str(dcc_pem),
               "--progress-interval", "0", "--exit-code-on-error", "0", "--loglevel", "WARNING", "--only-summary"]
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "DCC_TEST_TLS_PW": PASSWORD}
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=45, env=env, cwd=ROOT)
        assert r.returncode == 0, r.stderr[-3000:]
        m = emu.metrics(context=with_cert)
    tampered = m["totals"]["tampered"]
    df = load_records(run_dir)
    assert len(df) >= 150, r.stderr[-2000:]  # ~40 SRV/s for 6 s, all of it over mutual TLS both ways
    bad = df[df["error"].str.startswith("bad response signature")]
    others = df.drop(bad.index)
    # Every tampered answer (async responses at the listener, CV 4/8 answers at the sender) is caught, with
    # its reason; a changed timestamp breaks the digest.
    assert tampered >= 3
    assert len(bad) == tampered
    assert (bad["outcome"] == "error").all()
    assert bad["error"].str.contains("digest mismatch").all()
    # ... and nothing else failed: the untampered rest verified and passed.
    assert set(others["outcome"]) <= {"ok", "pending"}, others[others["outcome"] != "ok"][["outcome", "error"]]
    assert (others["outcome"] == "ok").sum() >= 0.9 * len(others)
    assert m["totals"]["callbacks_failed"] == 0  # the emulator's client certificate was accepted by the listener
    for text in (r.stdout, r.stderr):
        assert PASSWORD not in text
