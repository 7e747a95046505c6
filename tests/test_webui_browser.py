"""The Capacity tab in a real browser: Debian's chromium drives a live Locust run and steps the load up twice.

Locust runs in a subprocess with its web UI on 127.0.0.1 (``--autostart``),
against the test sink of ``_load_helpers`` (which calls back, so TRT is live
too). The browser presses the tab's own buttons; the test then checks the
offered rate followed, the achieved rate came within 5% of the stepped
target, and the steps are in the run's operator-actions file.

Set ``DCC_UPDATE_SCREENSHOTS=1`` to refresh docs/img/web-ui-capacity*.png.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from _load_helpers import PY, ROOT, free_port, stall_server, wait_for_port
from conftest import CHROMIUM_ARGS
from dcc_capacity.emulator import start_emulator

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120), pytest.mark.quiet]

PEAK = 100.0
LOCUSTFILE = ROOT / "locustfiles" / "stress_web.py"


@contextlib.contextmanager
def locust_web(host: str, run_dir: Path, metrics_url: str):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")])}
    cmd = [PY, "-m", "locust", "-f", str(LOCUSTFILE), "--host", host, "--web-host", "127.0.0.1", "--web-port",
           str(port), "--autostart", "--autoquit", "1", "--run-dir", str(run_dir), "--stress-peak", str(PEAK),
           "--stress-start", "0.5", "--stress-step", "0.25", "--ui-profile", str(ROOT / "volume_profiles" / "moc.yaml"),
           "--ui-metrics-url", metrics_url, "--drain", "1", "--loglevel", "WARNING"]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_port(port, proc, "locust web UI", 20)
        yield f"http://127.0.0.1:{port}", proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _number(root, selector: str) -> float:
    text = root.locator(selector).inner_text().strip()
    return float(text) if text not in ("", "-") else float("nan")


def _wait_for(root, selector: str, value: float, tol: float, timeout: float) -> float:
    """Poll a page or frame until ``selector`` shows ``value`` +- ``tol``; returns the last value seen."""
    deadline = time.time() + timeout
    seen = float("nan")
    while time.time() < deadline:
        seen = _number(root, selector)
        if abs(seen - value) <= tol:
            return seen
        time.sleep(0.25)
    return seen


def test_step_up_twice_from_the_capacity_tab(tmp_path, chromium):
    from playwright import sync_api

    run_dir = tmp_path / "run"
    shots = tmp_path / "shots"
    # The load goes to the test sink (it calls back, so TRT is live); the resources panel polls an embedded
    # emulator's /metrics JSON, the way it would poll the SUT's.
    with stall_server() as host, start_emulator({"port": 0}, mode="subprocess") as emu, \
            locust_web(host, run_dir, f"{emu.url}/metrics.json") as (base, proc), sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1300})
        page.on("dialog", lambda d: d.accept())
        # Open Locust's own UI on its "Capacity" tab: the console sits in that tab.
        page.goto(f"{base}/?tab=capacity", wait_until="load")
        page.get_by_role("tab", name="Capacity").wait_for(timeout=10_000)
        ui = page.frame_locator("#dcc-capacity-frame")
        ui.locator("#who").fill("browser-test")

        # Start: 0.5 x peak, and the live offered rate settles there.
        assert _wait_for(ui, "#total-rate", 50.0, 0.01, 10) == 50.0
        assert abs(_wait_for(ui, "#offered-total", 50.0, 1.0, 10) - 50.0) <= 1.0

        ui.locator("#btn-step-up").click()
        assert _wait_for(ui, "#total-rate", 75.0, 0.01, 5) == 75.0
        assert abs(_wait_for(ui, "#offered-total", 75.0, 1.5, 8) - 75.0) <= 1.5
        ui.locator("#btn-step-up").click()
        assert _wait_for(ui, "#total-rate", 100.0, 0.01, 5) == 100.0

        # After the second step the 5 s window must hold only the new level: wait it out, then read.
        _wait_for(ui, "#offered-total", 100.0, 2.0, 10)
        page.wait_for_timeout(5500)
        achieved = _number(ui, "#achieved-total")
        offered = _number(ui, "#offered-total")
        assert abs(offered - 100.0) <= 2.0, offered
        assert abs(achieved - 100.0) <= 5.0, f"achieved {achieved}/s vs stepped target 100/s"
        assert ui.locator("#classes tr[data-class=CapacityProbe] td.offered").inner_text() != "-"
        assert ui.locator("#nfrs tr.ok").count() >= 3 and ui.locator("#nfrs tr.fail").count() == 0
        assert "DSP, night: 83.48 SRV/s" in ui.locator("#plan").inner_text()  # moc.yaml, Table A7
        assert ui.locator("#actions tr[data-action=step_up]").count() == 2
        assert "rss_bytes" in ui.locator("#resources").inner_text()
        shots.mkdir()
        page.screenshot(path=str(shots / "web-ui-capacity.png"))

        # The same console stands alone at /capacity/ (a second operator, say), showing the same state.
        console = browser.new_page(viewport={"width": 1400, "height": 1000})
        console.goto(f"{base}/capacity/", wait_until="load")
        assert _wait_for(console, "#total-rate", 100.0, 0.01, 5) == 100.0
        console.screenshot(path=str(shots / "web-ui-capacity-console.png"), full_page=True)

        ui.locator("#btn-stop").click()
        proc.wait(timeout=20)
        browser.close()

    actions = [json.loads(line) for line in (run_dir / "operator_actions.jsonl").read_text().splitlines()]
    steps = [(a["action"], a["who"], a["from_rate"], a["to_rate"]) for a in actions]
    assert steps == [("start", "shape", 0.0, 50.0), ("step_up", "browser-test", 50.0, 75.0),
                     ("step_up", "browser-test", 75.0, 100.0), ("stop", "browser-test", 100.0, 0.0)]
    assert actions[1]["time"] < actions[2]["time"] < actions[3]["time"]
    shape = json.loads((run_dir / "shape.json").read_text())
    assert [a["action"] for a in shape["operator_actions"]] == ["start", "step_up", "step_up", "stop"]
    assert list(run_dir.glob("records/records-*.arrows")), "the run's request records"
    if os.environ.get("DCC_UPDATE_SCREENSHOTS"):
        for png in shots.glob("*.png"):
            shutil.copy(png, ROOT / "docs" / "img" / png.name)


def test_run_stress_web_steers_real_duis_load_and_the_report_shows_the_steps(tmp_path, chromium):
    """`dcc-capacity run --test stress --web` on the embedded emulator: two step-ups, stop, steps in the report."""
    from playwright import sync_api

    out = tmp_path / "stress-web"
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    cmd = [PY, "-m", "dcc_capacity", "run", "--test", "stress", "--web", "--web-port", str(port), "--web-linger", "2",
           "--rate", "40",
           "--start-factor", "0.5", "--step", "0.25", "--step-duration", "10s", "--duration", "90s",
           "--fleet-size", "20000",
           # The steering is judged here, not capacity: chromium, the emulator and the load share 2 cores, which
           # has measured send lag p99 above the 50 ms validity default (docs/measurement.md "Run validity").
           "--max-send-lag", "1000", "--out", str(out)]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_port(port, proc, "dcc-capacity run --web", 45)
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1200})
            page.on("dialog", lambda d: d.accept())
            page.goto(f"http://127.0.0.1:{port}/capacity/", wait_until="load")
            page.locator("#who").fill("stress-operator")
            # The volume model's classes at 0.5 x the --rate peak: 20 SRV/s offered in all.
            assert _wait_for(page, "#total-rate", 20.0, 0.01, 20) == 20.0
            assert abs(_wait_for(page, "#offered-total", 20.0, 1.0, 15) - 20.0) <= 1.0
            page.locator("#btn-step-up").click()
            assert _wait_for(page, "#total-rate", 30.0, 0.01, 5) == 30.0
            assert abs(_wait_for(page, "#offered-total", 30.0, 1.5, 10) - 30.0) <= 1.5
            page.locator("#btn-step-up").click()
            assert _wait_for(page, "#total-rate", 40.0, 0.01, 5) == 40.0
            assert abs(_wait_for(page, "#offered-total", 40.0, 2.0, 10) - 40.0) <= 2.0
            page.locator("#btn-stop").click()
            status = proc.wait(timeout=60)  # Locust quits 2 s (--web-linger) after the shape ends; then the report
            log = proc.stdout.read()
            assert status in (0, 1), log[-3000:]

            run = json.loads((out / "run.json").read_text())
            acts = [(a["action"], a["who"], a["from_rate"], a["to_rate"]) for a in run["operator_actions"]]
            assert acts == [("start", "shape", 0.0, 20.0), ("step_up", "stress-operator", 20.0, 30.0),
                            ("step_up", "stress-operator", 30.0, 40.0), ("stop", "stress-operator", 40.0, 0.0)]
            assert [round(s["target_rate"], 6) for s in run["stress"]["steps"]] == [20.0, 30.0, 40.0]
            assert run["shape"]["shape"] == "ControlledShape"

            report = browser.new_page()
            report.goto((out / "report.html").as_uri(), wait_until="load")
            rows = report.locator("#operator-actions ~ table tr.operator-action")
            assert rows.count() == 4
            texts = [rows.nth(i).inner_text() for i in range(4)]
            assert "stress-operator" in texts[1] and "step_up" in texts[1] and "30.0" in texts[1]
            assert "step_up" in texts[2] and "40.0" in texts[2] and "stop" in texts[3]
            assert report.locator("#stress ~ table").first.locator("tbody tr").count() == 3
            browser.close()
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)
