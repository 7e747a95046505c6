"""Safety rails: non-loopback confirmation (nothing sent), rate/duration ceilings (checked and enforced), redaction."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dcc_capacity.cli import main
from dcc_capacity.config.redact import REDACTED, redact, redact_argv
from dcc_capacity.load.shape import DccShape  # imports Locust: patches this process at collection, as others do
from dcc_capacity.spec.safety import cap_rates, is_loopback

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(("url", "loop"), [
    ("http://127.0.0.1:8080", True), ("http://127.9.8.7", True), ("https://localhost:1/x", True),
    ("http://[::1]:80/", True), ("http://LOCALHOST.", True), ("http://192.0.2.1:8080", False),
    ("https://dsp-test.example.net", False), ("http://10.0.0.1", False), ("http://127.0.0.1.nip.io", False),
    ("http://0.0.0.0:80", False), ("http://[::ffff:8.8.8.8]/", False),
])
def test_loopback_is_127_8_and_1_and_localhost_only(url, loop):
    assert is_loopback(url) is loop


def _own_address() -> str | None:
    """A non-loopback address of this machine (the route's source address), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))
            addr = s.getsockname()[0]
        except OSError:
            return None
    return None if addr.startswith("127.") else addr


def test_non_loopback_host_without_yes_exits_2_at_once_and_sends_nothing(tmp_path):
    """A listening socket on this machine's non-loopback address: the refused run never connects to it."""
    addr = _own_address()
    hosts = ["http://192.0.2.1:8080"]  # TEST-NET-1: nothing there either way
    srv = None
    if addr is not None:
        srv = socket.socket()
        srv.bind((addr, 0))
        srv.listen(8)
        srv.settimeout(0.5)
        hosts.append(f"http://{addr}:{srv.getsockname()[1]}")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    try:
        for i, host in enumerate(hosts):
            for extra in ([], ["--web"]):
                out = tmp_path / f"o{i}{len(extra)}"
                t0 = time.monotonic()
                p = subprocess.run([sys.executable, "-m", "dcc_capacity", "run", "--test", "load", "--host", host,
                                    "--duration", "5s", *extra, "--out", str(out)], capture_output=True, text=True,
                                   timeout=30, cwd=ROOT, env=env)
                assert p.returncode == 2, p.stderr
                assert time.monotonic() - t0 < 10
                assert f"--host: {host} is not a loopback address" in p.stderr and "--yes" in p.stderr
                assert len(p.stderr.strip().splitlines()) == 1
                assert not out.exists()  # no run folder, so no emulator, no Locust, no records
        if srv is not None:
            with pytest.raises(socket.timeout):
                srv.accept()  # nobody connected
    finally:
        if srv is not None:
            srv.close()


def test_rate_or_duration_above_the_configured_ceiling_exits_2(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[safety]\nmax_rate = 50\nmax_duration = "1m"\n')
    base = ["run", "--config", str(cfg), "--test", "load", "--out", str(tmp_path / "o")]
    assert main([*base, "--rate", "60", "--duration", "30s"]) == 2
    assert "safety.max_rate: the requested rate 60.0 SRV/s is above the ceiling" in capsys.readouterr().err
    assert main([*base, "--rate", "40", "--duration", "2m"]) == 2
    assert "safety.max_duration: the requested duration 120 s is above the ceiling" in capsys.readouterr().err
    # No --rate: the profile's own rate is what is requested (FOC DSP night peak: 86.5 SRV/s sent by the suite)
    assert main([*base, "--duration", "30s"]) == 2
    assert "the requested rate 86.5 SRV/s" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_the_shape_never_offers_more_than_max_rate_nor_runs_past_max_duration():
    opts = argparse.Namespace(dcc_test="spike", dcc_profile=str(ROOT / "volume_profiles/foc.yaml"), dcc_sp="DSP",
                              dcc_rate=30.0, dcc_duration="60s", dcc_spike_factor=3.0, dcc_max_rate=45.0,
                              dcc_max_duration="40s")
    shape = DccShape()
    shape.options = opts
    totals = [shape.total_rate(t) for t in range(0, 60)]
    assert max(totals) == pytest.approx(45.0)  # the spike (90 SRV/s) is capped ...
    assert totals[5] == pytest.approx(30.0)  # ... the base is untouched ...
    assert all(v == 0 for v in totals[40:])  # ... and nothing is offered after max_duration
    mix_base = shape.inner.rates_at(5.0)
    capped = shape.rates_at(25.0)
    assert capped is not None and mix_base is not None
    assert {k: round(v / 45.0, 6) for k, v in capped.items()} == {k: round(v / 30.0, 6) for k, v in mix_base.items()}
    assert cap_rates({"a": 1.0, "b": 3.0}, 2.0) == {"a": 0.5, "b": 1.5}
    assert cap_rates({"a": 1.0}, None) == {"a": 1.0} and cap_rates(None, 5.0) is None


def test_redaction_of_configs_and_command_lines():
    pem = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEI\n-----END EC PRIVATE KEY-----"
    doc = {"tls": {"key_password": "pw1", "key_password_env": "ENV_NAME", "client_key": "/k.pem"},
           "list": [{"token": "t0k"}, pem], "note": f"x {pem} y"}
    r = redact(doc)
    assert r["tls"] == {"key_password": REDACTED, "key_password_env": "ENV_NAME", "client_key": "/k.pem"}
    assert r["list"] == [{"token": REDACTED}, REDACTED] and r["note"] == f"x {REDACTED} y"
    argv = ["dcc-capacity", "run", "--password", "pw1", "--tls-key-password-env", "ENV", "--api-key=abc",
            "--out", "o"]
    assert redact_argv(argv) == ["dcc-capacity", "run", "--password", REDACTED, "--tls-key-password-env", "ENV",
                                 f"--api-key={REDACTED}", "--out", "o"]


def test_plain_headless_locust_refuses_an_unconfirmed_real_host_too(tmp_path):
    """`locust -f locustfiles/dcc.py --headless` (no `run` in front) exits 2 and never connects."""
    own = _own_address()
    srv = socket.socket()
    try:
        srv.bind((own or "127.0.0.1", 0))  # without an own address, TEST-NET-1 below (the socket stays idle)
        srv.listen(8)
        srv.settimeout(0.5)
        host = f"http://{own or '192.0.2.1'}:{srv.getsockname()[1]}"
        t0 = time.monotonic()
        p = subprocess.run([sys.executable, "-m", "locust", "-f", str(ROOT / "locustfiles/dcc.py"), "--headless",
                            "--host", host, "--dcc-duration", "3s", "--run-dir", str(tmp_path / "run"),
                            "--dcc-profile", str(ROOT / "volume_profiles/foc.yaml")], capture_output=True,
                           text=True, timeout=60, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
        assert p.returncode == 2, p.stderr[-2000:]
        assert f"--host {host} is not a loopback address" in p.stderr and "--confirm-non-loopback" in p.stderr
        assert time.monotonic() - t0 < 30
        assert not list((tmp_path / "run").glob("records/*"))
        with pytest.raises(socket.timeout):
            srv.accept()
    finally:
        srv.close()
