"""`dcc-capacity emulator` from the shell: config file + options, exit 2 on bad input, clean stop on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from _emulator_helpers import PKI_DIR, signed_request
from dcc_capacity.emulator.config import load_config
from dcc_capacity.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


def test_config_file_and_overrides(tmp_path):
    f = tmp_path / "emu.yaml"
    f.write_text("emulator:\n  capacity:\n    tps: 500\n    workers: 10\n  users:\n"
                 "    90-b3-d5-1f-30-01-00-00: {callback_url: 'http://127.0.0.1:1/cb', weight: 2}\n")
    cfg = load_config(f, {"capacity": {"workers": 20}})
    assert cfg.capacity.tps == 500 and cfg.capacity.workers == 20
    assert cfg.throttle.total_tps == 625
    assert cfg.callback_for("90-B3-D5-1F-30-01-00-00") == "http://127.0.0.1:1/cb"
    assert cfg.callback_for("90-B3-D5-1F-30-02-00-00") is None


@pytest.mark.parametrize("text,key", [
    ("capacity: {tps: -1}", "capacity.tps"),
    ("capacity: {service_time: {gold: {mean_ms: 1}}}", "capacity.service_time"),
    ("faults: {error_bursts: {share: 2}}", "faults.error_bursts.share"),
    ("bogus: 1", "bogus"),
    ("paths: {S: x, T: /t, D: /d}", "paths"),
])
def test_bad_config_names_the_key(tmp_path, text, key):
    f = tmp_path / "emu.yaml"
    f.write_text(text)
    with pytest.raises(InputError) as err:
        load_config(f)
    assert err.value.key == key and str(f) in str(err.value)


def test_toml_and_json_configs(tmp_path):
    (tmp_path / "a.toml").write_text("[capacity]\ntps = 42.0\n")
    (tmp_path / "a.json").write_text(json.dumps({"capacity": {"tps": 43}}))
    assert load_config(tmp_path / "a.toml").capacity.tps == 42
    assert load_config(tmp_path / "a.json").capacity.tps == 43


def test_cli_bad_input_exits_2(run_cli, tmp_path):
    r = run_cli("emulator", "--port", "0", "--tps", "0")
    assert r.returncode == 2 and "capacity.tps" in r.stderr
    r = run_cli("emulator", "--config", str(tmp_path / "missing.yaml"))
    assert r.returncode == 2 and "missing.yaml" in r.stderr
    r = run_cli("emulator", "--error-burst", "1.5")
    assert r.returncode == 2 and "between 0 and 1" in r.stderr
    r = run_cli("emulator", "--port", "0", "--trust-cert", str(tmp_path / "nope.pem"))
    assert r.returncode == 2 and "nope.pem" in r.stderr
    r = run_cli("emulator", "--host", "0.0.0.0", "--port", "0")
    assert r.returncode == 2 and "loopback" in r.stderr


def test_cli_serves_and_stops_cleanly_on_sigterm(tmp_path):
    ready = tmp_path / "ready.json"
    env_pp = str(ROOT / "src")
    proc = subprocess.Popen([sys.executable, "-m", "dcc_capacity", "emulator", "--port", "0", "--pki-dir",
                             str(PKI_DIR), "--tps", "500", "--ready-file", str(ready)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**__import__("os").environ, "PYTHONPATH": env_pp})
    try:
        for _ in range(300):
            if ready.exists() or proc.poll() is not None:
                break
            time.sleep(0.02)
        info = json.loads(ready.read_text())
        r = httpx.post(info["url"] + "/api/v1/serviceS", content=signed_request("4.1.1"))
        assert r.status_code == 200 and b">I99<" in r.content
        assert httpx.get(info["url"] + "/metrics").json()["capacity_tps"] == 500
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert "listening on http://127.0.0.1:" in out
    assert out.rstrip().endswith("; device latency fast")   # tests/conftest.py's preset reaches a subprocess


def test_every_response_code_is_documented_and_in_the_official_enumeration():
    from dcc_capacity.emulator.codes import CODES

    doc = (ROOT / "docs" / "emulator.md").read_text()
    for code in CODES:
        assert f"| {code} |" in doc, code


@pytest.mark.peer
def test_codes_are_members_of_the_duis_response_code_enumeration(sign_wrap):
    from dcc_capacity.emulator.codes import CODES

    xsd = sign_wrap.xsd.read_text()
    for code in CODES:
        assert f'<xs:enumeration value="{code}"/>' in xsd, code
