"""`run --nfr FILE`: the Locust processes get the file, and the live progress line judges its thresholds."""

from __future__ import annotations

import argparse
from pathlib import Path

import gevent
import pytest
import yaml
from locust import User, constant, task
from locust.env import Environment
from locust.event import Events

from dcc_capacity.errors import InputError
from dcc_capacity.load import hooks
from dcc_capacity.orchestrate.processes import locust_args
from dcc_capacity.orchestrate.run import RunOptions, _check_inputs
from dcc_capacity.spec.resolve import TestSpec as RunSpec

pytestmark = [pytest.mark.timeout(60), pytest.mark.quiet]
ROOT = Path(__file__).resolve().parents[1]
CUSTOM = {"schema_version": 2, "nfrs": [
    {"id": "CUSTOM-ACK-P95", "text": "ack p95 within 150 ms", "metric": "ack_ms", "stat": "p95", "max": 150},
    {"id": "CUSTOM-ERR", "text": "failures below 2 %", "metric": "failure_rate", "max": 0.02},
]}


class Idle(User):
    wait_time = constant(1)

    @task
    def t(self) -> None:
        pass


def test_run_passes_its_nfr_file_to_the_locust_processes(tmp_path):
    nfr = tmp_path / "custom.yaml"
    nfr.write_text(yaml.safe_dump(CUSTOM))
    opts = RunOptions(spec=RunSpec(profile=str(ROOT / "volume_profiles" / "foc.yaml")), out=tmp_path / "out", nfr=nfr)
    args = locust_args(opts, "http://127.0.0.1:1", tmp_path / "out")
    assert args[args.index("--nfr") + 1] == str(nfr.resolve())
    assert "--nfr" not in locust_args(RunOptions(spec=opts.spec, out=opts.out), "http://127.0.0.1:1", opts.out)
    nfr.write_text("schema_version: 2\nnfrs:\n  - {id: X, metric: ack_ms, max: 1}\n")  # no stat: refused up front
    with pytest.raises(InputError, match="custom.yaml"):
        _check_inputs(opts)


def test_live_line_judges_the_custom_thresholds(tmp_path, capsys):
    nfr = tmp_path / "custom.yaml"
    nfr.write_text(yaml.safe_dump(CUSTOM))
    env = Environment(user_classes=[Idle], events=Events(),
                      parsed_options=argparse.Namespace(headless=True, progress_interval=0.05, nfr=str(nfr)))
    env.create_local_runner()
    hooks.on_init(env)  # what Locust's init event does in each process
    env.events.test_start.fire(environment=env)
    for i in range(100):  # ack p95 200 ms: over the custom 150 ms (the shipped default allows 3 s); no failures
        env.stats.log_request("ACK", "4.6.1 ack", 100 if i < 90 else 200, 10)
    gevent.sleep(0.2)
    env.events.test_stop.fire(environment=env)
    env.events.quitting.fire(environment=env)  # closes the run context (its callback listener)
    gevent.sleep(0.01)  # let the progress greenlet's kill land before the captured stream closes
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("[dcc-capacity]")]
    assert lines, "no progress line"
    assert lines[-1].endswith("NFR 1 ok, 1 FAIL (CUSTOM-ACK-P95)")  # exactly the file's two NFRs, judged live
