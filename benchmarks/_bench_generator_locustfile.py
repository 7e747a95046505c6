"""Users for bench_generator.py: BENCH_CLASS=Plain (FastHttpUser, static body) or Signed (DUIS 4.6.1, open model)."""

from __future__ import annotations

import gc
import os
import resource

from locust import FastHttpUser, constant, events, task

from dcc_capacity.load.openmodel import Step
from dcc_capacity.load.users.base import DuisUser
from dcc_capacity.load.users.kit import get_kit

BODY = b"<sr:Request>" + b"x" * 1500 + b"</sr:Request>"
HEADERS = {"Content-Type": "application/xml"}


class Plain(FastHttpUser):
    """Closed loop, no think time: as many POSTs of a static body as one process can make."""

    wait_time = constant(0)

    @task
    def post(self) -> None:
        self.client.post("/api/v1/serviceS", data=BODY, headers=HEADERS)


class Signed(DuisUser):
    """Open model at BENCH_RATE SRV/s: render, sign, send and record a 4.6.1 for a fleet installation.

    The sink answers the I99 ack and never calls back, so the step is done at its ack.
    """

    rate = float(os.environ.get("BENCH_RATE", "8000"))

    def journey(self):  # noqa: ANN201
        kit = self.kit
        inst = kit.installation(self.rng)
        req = kit.factory.build("4.6.1", inst)
        yield Step("4.6.1", kit.paths["S"], body=req.body, headers=HEADERS, request_id=req.request_id,
                   srv_variant="4.6.1", smets=inst.smets, prepay=inst.prepay)  # recorded, as DuisUser.srv does


if os.environ.get("BENCH_CLASS", "Signed") == "Plain":
    Signed.abstract = True
else:
    Plain.abstract = True


@events.init.add_listener
def _warm(environment, **_) -> None:  # noqa: ANN001
    if os.environ.get("BENCH_CLASS", "Signed") != "Plain":
        get_kit(environment.parsed_options)


_cpu: dict[str, float] = {}


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


@events.test_start.add_listener
def _freeze(**_) -> None:  # noqa: ANN003
    gc.collect()
    gc.freeze()
    _cpu["start"] = _cpu_s()


@events.test_stop.add_listener
def _cpu_used(**_) -> None:  # noqa: ANN003
    """CPU seconds this process spent during the test (start-up excluded): a per-CPU-second rate is much
    steadier than a per-wall-second one on a machine other jobs share."""
    path = os.environ.get("BENCH_CPU_FILE")
    if path and "start" in _cpu:
        with open(path, "a") as fh:
            fh.write(f"{_cpu_s() - _cpu['start']}\n")
