"""The web UI's Start asks for explicit confirmation before it loads a non-loopback host (issue #10, safety)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time

import httpx
import pytest

from _load_helpers import PY, ROOT, free_port, wait_for_port
from dcc_capacity.webui.guard import start_refusal

pytestmark = pytest.mark.timeout(90)


@pytest.mark.parametrize(("host", "ticked", "launched", "refused"), [
    ("http://192.0.2.1:9", False, False, True),
    ("https://dsp-test.example.net", False, False, True),
    ("http://192.0.2.1:9", True, False, False),
    ("http://192.0.2.1:9", False, True, False),
    ("http://127.0.0.1:9", False, False, False),
    ("http://localhost:8080", False, False, False),
    ("", False, False, False),
])
def test_start_refusal_needs_a_confirmation_for_non_loopback_hosts(host, ticked, launched, refused):
    why = start_refusal(host, ticked, launched)
    assert (why is not None) is refused
    if refused:
        assert host in why and "confirm-non-loopback" in why


def test_locust_web_ui_refuses_start_to_an_unconfirmed_real_host_and_spawns_nothing(tmp_path):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    cmd = [PY, "-m", "locust", "-f", str(ROOT / "locustfiles" / "dcc.py"), "--host", "http://192.0.2.1:9",
           "--web-host", "127.0.0.1", "--web-port", str(port), "--run-dir", str(tmp_path / "run"),
           "--dcc-profile", str(ROOT / "volume_profiles" / "foc.yaml"), "--dcc-duration", "3s",
           "--dcc-fleet-size", "5000", "--loglevel", "WARNING"]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_port(port, proc, "locust web UI", 45)
        with httpx.Client(base_url=base, timeout=10) as c:
            assert "confirm_non_loopback" in c.get("/").text  # Locust draws the option in the Start form
            form = {"user_count": "1", "spawn_rate": "1", "host": "http://192.0.2.1:9"}
            r = c.post("/swarm", data=form).json()
            assert r["success"] is False and "192.0.2.1:9 is not a loopback address" in r["message"]
            r = c.post("/swarm", data={**form, "confirm_non_loopback": "false"}).json()
            assert r["success"] is False
            time.sleep(1.0)
            stats = c.get("/stats/requests").json()
            assert stats["state"] == "ready" and stats["user_count"] == 0  # nothing was started
            # Typed host on loopback (a closed port): no confirmation needed, the test starts.
            r = c.post("/swarm", data={**form, "host": f"http://127.0.0.1:{free_port()}"}).json()
            assert r["success"] is True, r
            c.get("/stop")
        assert not list((tmp_path / "run").glob("records/*192*"))
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=15)
        if proc.poll() is None:
            proc.kill()
