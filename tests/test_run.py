"""`dcc-capacity run` end to end on the embedded emulator: run folder, report, workers, stress knee, bad input."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from _lanes import alone, background, cli, lanes, run_one
from dcc_capacity.load.records import load_records

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, "-m", "dcc_capacity", "run", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=env)


def _sut_dies(out: Path) -> tuple[int | None, str, Path]:
    """A load run whose embedded emulator is killed 3 s into the load: (exit status, stderr, run folder)."""
    import psutil

    proc = subprocess.Popen([sys.executable, "-m", "dcc_capacity", "run", "--test", "load", "--rate", "30",
                             "--duration", "30s", "--out", str(out)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 40
        emulator = None
        while time.time() < deadline and emulator is None:
            time.sleep(0.5)
            if list((out / "records").glob("*.arrows")) and (out / "metrics.csv").exists():
                kids = psutil.Process(proc.pid).children(recursive=True)
                emulator = next((k for k in kids if "emulator" in " ".join(k.cmdline())), None)
        if emulator is None:
            return None, "the emulator was never found running", out
        time.sleep(3)
        emulator.kill()  # the SUT dies mid-run
        _, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, err, out


@pytest.fixture(scope="module")
def runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """The stress run, alone (tests/_lanes.py)."""
    tmp = tmp_path_factory.mktemp("runs")
    yield from lanes(request, {
        # alone: past the knee the emulator must keep its 150 TPS, which a run beside it on 2 cores takes from it
        "test_stress_finds_the_knee_of_the_emulator_within_15_percent": alone(lambda: run_one(cli(
            ["run", "--test", "stress", "--rate", "100", "--start-factor", "1.2", "--step", "0.1", "--step-duration",
             "3s", "--max-factor", "2.5", "--emulator-tps", "150", "--duration", "60s"], tmp / "stress"))),
    })


@pytest.mark.slow
@pytest.mark.timeout(600)
@background(lambda tmp: run_one(cli(["run", "--test", "load", "--rate", "60", "--duration", "8s"], tmp / "load")))
def test_load_run_writes_the_run_folder_and_offers_the_target_rate(background_run):
    p = background_run
    out = p.out
    assert p.returncode == 0, p.stderr[-2000:]
    for name in ("run.json", "plan.json", "metrics.csv", "summary.json", "junit.xml", "report.html"):
        assert (out / name).is_file(), name
    run_doc = json.loads((out / "run.json").read_text())
    assert run_doc["test_type"] == "load" and run_doc["sp"] == "DSP" and run_doc["slot"] == "night"
    assert run_doc["status"] == "complete" and len(run_doc["profile"]["sha256"]) == 64
    # the suite's own environment setting (tests/conftest.py) is part of the command that ran, as a shell writes it
    assert run_doc["command_line"][:4] == ["DCC_CAPACITY_RUN_MAX_SEND_LAG=1000", "dcc-capacity", "run", "--test"]
    assert run_doc["spec"]["max_send_lag_ms"] == 1000.0 and "DCC_CAPACITY_RUN_MAX_SEND_LAG" in \
        run_doc["validity"]["max_send_lag_source"]
    summary = json.loads((out / "summary.json").read_text())
    # SRVs: a critical BAU SRV's CV 4 + CV 5 count once, so the summary's rate is the SRV/s target
    assert abs(summary["offered_rate"] - 60) / 60 < 0.03, summary["offered_rate"]
    srvs = sum(r["offered"] for r in run_doc["rates"].values())  # SRV/s: CV 4 rows are half of one SRV
    assert abs(srvs - 60) / 60 < 0.03, run_doc["rates"]
    assert summary["failures"] == 0
    reads = run_doc["rates"]["MeterReads"]
    assert abs(reads["offered"] - reads["target"]) / reads["target"] < 0.03  # one SRV per arrival: exact
    # The live line counts SRV attempts as the summary does (load/locuststats.py), critical BAU SRVs once
    live = [ln for ln in p.stderr.splitlines() if re.match(r"\[dcc-capacity\] \d\d:", ln)]
    first = re.search(r"target ([\d.]+)/s offered ([\d.]+)/s", live[0])
    assert first and abs(float(first[2]) - 60) / 60 < 0.03, live[0]
    assert re.search(r"\(([\d,]+) SRV attempts\)", live[-1])[1].replace(",", "") == str(summary["requests"]), live[-1]
    metrics = pd.read_csv(out / "metrics.csv")
    assert len(metrics) >= 5 and metrics["rss_bytes"].min() > 0
    df = load_records(out / "records")
    assert {"ok"} == set(df[df["kind"] == "request"]["outcome"])
    assert (df[df["label"] == "4.6.1"]["trt_ms"] > 0).all()
    assert (df["kind"] == "alert").sum() > 0  # the emulator raises alerts at the profile's rate
    # The generator's host CPU, each second of the load (load/hostcpu.py), in the drain file and the report
    host = summary["drain"]["host_cpu"]
    assert 6 <= host["samples"] <= 10 and 0 < host["busy_pct_mean"] <= host["busy_pct_max"] <= 100, host
    assert 0 <= host["steal_pct_mean"] <= host["steal_pct_max"] <= 100, host
    assert "Generator host CPU</th><td>busy " in (out / "report.html").read_text()


@pytest.mark.slow
def test_stress_finds_the_knee_of_the_emulator_within_15_percent(runs):
    p = runs.result("test_stress_finds_the_knee_of_the_emulator_within_15_percent")
    out = p.out
    assert p.returncode in (0, 1), p.stderr[-2000:]
    shape = json.loads((out / "shape.json").read_text())
    assert shape["knee_rate"] is not None and abs(shape["knee_rate"] - 150) <= 0.15 * 150, shape
    assert not shape["ceiling_reached"] and shape["steps"][-1]["passed"] is False
    run_doc = json.loads((out / "run.json").read_text())
    assert run_doc["stress"]["knee"] == shape["knee_rate"]


@pytest.mark.parametrize("args, needle", [
    (["--test", "smoke"], "--test: unknown test 'smoke'"),
    (["--test", "load", "--profile", "nope.yaml"], "nope.yaml: --profile: no such file"),
    (["--test", "load", "--sp", "XYZ"], "--sp: unknown Service Provider 'XYZ'"),
    (["--test", "load", "--duration", "soon"], "--duration: not a duration"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, args, needle):
    p = run(*args, "--out", str(tmp_path / "x"), timeout=60)
    assert p.returncode == 2, p.stderr
    assert needle in p.stderr and "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_bad_profile_content_names_the_file_and_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("schema_version: 1\ncapability: XOC\n")
    p = run("--test", "load", "--profile", str(bad), "--out", str(tmp_path / "x"), timeout=60)
    assert p.returncode == 2 and "bad.yaml" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.slow
def test_sut_dying_mid_run_exits_3_with_an_incomplete_report(tmp_path):
    code, err, out = _sut_dies(tmp_path / "died")  # in the foreground: it acts mid-run
    assert code == 3, err[-2000:]
    assert "died mid-run" in err and "Traceback" not in err
    run_doc = json.loads((out / "run.json").read_text())
    assert run_doc["status"] == "incomplete" and "end" not in run_doc
    assert (out / "report.html").is_file() and "INCOMPLETE" in (out / "report.html").read_text()
    assert json.loads((out / "summary.json").read_text())["requests"] > 50
    # Nothing will answer: the load process ends its drain at once (interrupt.json) and still writes its books.
    (drain,) = [json.loads(f.read_text()) for f in out.glob("drain-*.json")]
    assert drain["interrupted"] == "the system under test died mid-run" and drain["took_s"] < 1.0
    records = load_records(out / "records")
    stopped = records[records["error"].fillna("").str.contains("stopped early")]
    assert drain["closed_missing"] == drain["at_stop"]["awaited"]  # nothing answered after the SUT died
    # each one a missing response (a request whose ack had already failed keeps its error row)
    assert 0 < len(stopped) <= drain["closed_missing"] and (stopped["outcome"] == "missing").all()
