"""Real runs with a run configuration: the user's own password-protected keys leak nowhere; SIGTERM still reports."""

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

from _realenv_helpers import OWN_EUI, OwnKeys, make_own_keys
from dcc_capacity.records import load_records

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


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_own_password_protected_keys_sign_the_run_and_no_output_file_holds_a_secret(tmp_path):
    pem_user = make_own_keys(tmp_path / "keys-a", password="pem-Pa55-7f3e91", eui=OWN_EUI)
    p12_user = make_own_keys(tmp_path / "keys-b", password="p12-Pa55-c04d2a", eui=OTHER_EUI)
    cfg = tmp_path / "real.toml"
    cfg.write_text(f'''seed = 11
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
                       env=_env(OWN_PEM_PASSWORD=pem_user.password, OWN_P12_PASSWORD=p12_user.password))
    assert p.returncode == 0, p.stderr[-3000:]

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
    for f in files:
        data = f.read_bytes()
        for user in (pem_user, p12_user):
            for what, needle in _needles(user).items():
                assert needle not in data, f"{what} of {user.key_pem.parent.name} found in {f.relative_to(out)}"
    assert pem_user.password not in p.stderr + p.stdout and p12_user.password not in p.stderr + p.stdout


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
    assert ended_at - sent_at < 30  # stopped, reported and exited long before the 60 s test would have ended
    run_doc = json.loads((out / "run.json").read_text())
    assert run_doc["status"] == "incomplete" and "SIGTERM" in run_doc["failure"] and "end" not in run_doc
    assert (out / "report.html").is_file() and "INCOMPLETE" in (out / "report.html").read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["requests"] > 50
    df = load_records(out / "records")
    last = float(df[df["kind"] == "request"]["intended_ts"].max())
    assert last - sent_at < 1.5  # no arrival was scheduled more than a moment after the signal
    assert run_doc["duration_s"] < 15
