"""Real runs with a run configuration: own keys over mutual TLS leak nowhere; SIGTERM still writes the report."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from _realenv_helpers import OWN_EUI, OwnKeys, make_own_keys
from _tls_helpers import TestCA
from dcc_capacity.duis.pki import TestPKI
from dcc_capacity.load.records import load_records

pytestmark = pytest.mark.quiet  # its figures depend on the CPU it gets (tests/_lanes.py)

ROOT = Path(__file__).resolve().parents[1]
OTHER_EUI = "90-B3-D5-1F-30-AA-00-02"


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"), **extra}


def _needles(k: OwnKeys) -> dict[str, bytes]:
    """Every form the key material or the password could take in an output file."""
    needles = {"password": k.password.encode(), "DER key": k.der, "raw scalar": k.raw_scalar,
               "scalar hex": k.raw_scalar.hex().encode(), "scalar HEX": k.raw_scalar.hex().upper().encode(),
               "PEM body": k.pem_body, "PKCS#12 file": k.p12.read_bytes(),
               "PKCS#12 base64": base64.b64encode(k.p12.read_bytes())[:60],
               "encrypted PEM body": b"".join(k.key_pem.read_bytes().splitlines()[1:-1])}
    for i, line in enumerate(base64.encodebytes(k.der).splitlines()):
        if len(line) >= 40:
            needles[f"PEM line {i}"] = line
    return needles


def _key_file_needles(path: Path, password: str | None) -> dict[str, bytes]:
    """The same for a TLS key file (encrypted with ``password``, or not)."""
    data = path.read_bytes()
    key = serialization.load_pem_private_key(data, password.encode() if password else None)
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    scalar = key.private_numbers().private_value.to_bytes(32, "big")
    out = {"DER key": der, "raw scalar": scalar, "scalar hex": scalar.hex().encode(),
           "PEM body": base64.b64encode(der)[:64], "key file body": b"".join(data.splitlines()[1:-1])}
    if password:
        out["password"] = password.encode()
    return out


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_own_keys_over_mutual_tls_sign_the_run_and_no_output_file_holds_a_secret(tmp_path):
    """A configuration rehearsed on the embedded emulator: mutual TLS both ways, own signing keys, signatures
    checked on every response; then every output file is searched for every key and password."""
    pem_user = make_own_keys(tmp_path / "keys-a", password="pem-Pa55-7f3e91", eui=OWN_EUI)
    p12_user = make_own_keys(tmp_path / "keys-b", password="p12-Pa55-c04d2a", eui=OTHER_EUI)
    ca = TestCA(tmp_path / "tls")
    tls_pw = "tls-Pa55-9b1e07"
    load, listener = ca.issue("load-side", password=tls_pw.encode()), ca.issue("listener", server=True)
    sut, deliveries = ca.issue("sut", server=True), ca.issue("emulator-deliveries")
    dcc_pem = tmp_path / "dcc.pem"  # the embedded emulator signs with the test PKI's DCC key
    dcc_pem.write_bytes(TestPKI.load_or_create().dcc.cert_pem())
    cfg = tmp_path / "real.toml"
    cfg.write_text(f'''seed = 11
[tls]
client_cert = "{load.cert}"
client_key = "{load.key}"
key_password_env = "OWN_TLS_PASSWORD"
ca_bundle = "{ca.ca}"
callback_cert = "{listener.cert}"
callback_key = "{listener.key}"
callback_client_ca = "{ca.ca}"

[responses]
dcc_certs = ["{dcc_pem}"]

[emulator.tls]  # the rehearsal's SUT: HTTPS, client certificates required
cert = "{sut.cert}"
key = "{sut.key}"
client_ca = "{ca.ca}"

[emulator.callback_tls]
client_cert = "{deliveries.cert}"
client_key = "{deliveries.key}"
ca = "{ca.ca}"

[[signing]]  # first: it sends what its roles allow (4.8.1 is also an ED/OU SRV), the supplier the rest
pkcs12 = "{p12_user.p12}"
roles = ["ED", "GT", "OU", "RSA", "ES"]
password_env = "OWN_P12_PASSWORD"

[[signing]]
key = "{pem_user.key_pem}"
cert = "{pem_user.cert_pem}"
roles = ["IS", "GS"]
password_env = "OWN_PEM_PASSWORD"

[safety]
max_rate = 45
max_duration = "30s"

[run]
test = "spike"
rate = 30
duration = "9s"
''')
    out = tmp_path / "run"
    p = subprocess.run([sys.executable, "-m", "dcc_capacity", "run", "--config", str(cfg), "--spike-factor", "3",
                        "--out", str(out)], capture_output=True, text=True, timeout=100, cwd=ROOT,
                       env=_env(OWN_PEM_PASSWORD=pem_user.password, OWN_P12_PASSWORD=p12_user.password,
                                OWN_TLS_PASSWORD=tls_pw))
    assert p.returncode == 0, p.stderr[-3000:]
    emu = json.loads((out / "logs" / "emulator-config.json").read_text())
    assert emu["tls"]["cert"] == str(sut.cert) and emu["callback_url"].startswith("https://127.0.0.1:")
    assert "embedded emulator on https://127.0.0.1:" in p.stderr

    # Signed with the user's own keys (their EUIs exist in no built-in PKI), accepted by the emulator.
    df = load_records(out / "records")
    req = df[df["kind"] == "request"]
    assert len(req) > 200 and set(req["outcome"]) == {"ok"}
    assert set(req["request_id"].str.split(":").str[0]) == {OWN_EUI, OTHER_EUI}

    # The spike (3 x 30 = 90 SRV/s) is held at safety.max_rate = 45 inside the Locust process.
    srvs = req[~req["label"].astype(str).str.endswith(" CV5")]
    t = srvs["intended_ts"] - srvs["intended_ts"].min()
    spike = ((t >= 3.2) & (t < 4.4)).sum() / 1.2
    base = ((t >= 0.5) & (t < 2.9)).sum() / 2.4
    assert 45 * 0.85 <= spike <= 45 * 1.15, spike
    assert 30 * 0.85 <= base <= 30 * 1.15, base

    # The audit trail: certificate fingerprints and key paths, no key.
    run_doc = json.loads((out / "run.json").read_text())
    signing = {s["eui"]: s for s in run_doc["real_environment"]["signing"]}
    assert signing[OWN_EUI]["key"] == str(pem_user.key_pem) and signing[OTHER_EUI]["pkcs12"] == str(p12_user.p12)
    assert len(signing[OWN_EUI]["cert_sha256"].split(":")) == 32
    assert signing[OWN_EUI]["password_env"] == "OWN_PEM_PASSWORD"
    assert (out / "run-config.json").is_file() and (out / "signing-keys.json").is_file()
    assert signing[OTHER_EUI]["cert_sha256"] in (out / "report.html").read_text()  # the report's audit trail

    # Grep every output file, as bytes, for every form of both keys and both passwords.
    files = [f for f in out.rglob("*") if f.is_file()]
    names = {f.relative_to(out).as_posix() for f in files}
    assert {"run.json", "summary.json", "report.html", "junit.xml", "run-config.json", "signing-keys.json",
            "logs/locust.log", "logs/emulator-config.json"} <= names
    assert any(n.startswith("records/") for n in names)
    secrets = {f"{u.key_pem.parent.name} {what}": v for u in (pem_user, p12_user) for what, v in _needles(u).items()}
    for name, issued, pw in (("TLS client", load, tls_pw), ("listener", listener, None), ("SUT", sut, None),
                             ("deliveries", deliveries, None)):
        secrets.update({f"{name} {what}": v for what, v in _key_file_needles(issued.key, pw).items()})
    for f in files:
        data = f.read_bytes()
        for what, needle in secrets.items():
            assert needle not in data, f"{what} found in {f.relative_to(out)}"
    for pw in (pem_user.password, p12_user.password, tls_pw):
        assert pw not in p.stderr + p.stdout
    assert run_doc["real_environment"]["tls"]["client_cert_sha256"].count(":") == 31


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_sigterm_stops_the_load_at_once_and_still_writes_an_incomplete_report(tmp_path):
    out = tmp_path / "term"
    proc = subprocess.Popen([sys.executable, "-m", "dcc_capacity", "run", "--test", "load", "--rate", "30",
                             "--duration", "60s", "--out", str(out)], cwd=ROOT, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 40
        while time.time() < deadline and not list((out / "records").glob("*.arrows")):
            time.sleep(0.25)
        time.sleep(3)  # some load on the records
        sent_at = time.time()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        ended_at = time.time()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 3, err[-2000:]
    assert "interrupted (SIGTERM)" in err and "Traceback" not in err
    # Stopped, drained at once (the awaited are recorded missing, not waited for), reported and exited: seconds,
    # where a drain up to --drain (120 s) cut by a kill after 15 s lost the drain file.
    assert ended_at - sent_at < 12
    drains = [json.loads(f.read_text()) for f in out.glob("drain-*.json")]
    assert len(drains) == 1 and "SIGTERM" in drains[0]["interrupted"] and drains[0]["took_s"] < 1.0
    run_doc = json.loads((out / "run.json").read_text())
    assert run_doc["status"] == "incomplete" and "SIGTERM" in run_doc["failure"] and "end" not in run_doc
    assert (out / "report.html").is_file() and "INCOMPLETE" in (out / "report.html").read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["requests"] > 50
    df = load_records(out / "records")
    last = float(df[df["kind"] == "request"]["intended_ts"].max())
    assert last - sent_at < 1.5  # no arrival was scheduled more than a moment after the signal
    assert run_doc["duration_s"] < 15
