"""Locustfile for the open-model tests: classes whose rates/behaviour come from environment variables.

OM_CLASSES picks which classes run (comma-separated); OM_RATE sets Steady's SRV/s.
"""

from __future__ import annotations

import itertools
import os

from dcc_capacity.load.openmodel import OpenModelUser, Step

_ids = itertools.count(1)


def _rid() -> str:
    return f"00-00-00-00-00-00-00-01:00-00-00-00-00-00-00-02:{os.getpid()}{next(_ids):012d}"


class Steady(OpenModelUser):
    """One-step arrivals at OM_RATE SRV/s, sync ack only."""

    rate = float(os.environ.get("OM_RATE", "100"))

    def arrival(self):
        yield Step("4.6.1", "/api/v1/serviceS", body=b"<x/>" * 50, srv_variant="4.6.1")


class _Callback(OpenModelUser):
    abstract = True
    delay = "0.1"
    silent = False

    def arrival(self):
        rid = _rid()
        headers = {"X-Callback-URL": self.ctx.callbacks.url, "X-Request-ID": rid, "X-Callback-Delay": self.delay}
        if self.silent:
            headers["X-No-Callback"] = "1"
        yield Step(type(self).__name__, "/api/v1/serviceS", body=b"<x/>", headers=headers, request_id=rid,
                   expect_callback=True, srv_variant="4.6.1")


class Prompt(_Callback):
    rate = 20.0
    delay = "0.3"


class Slow(_Callback):
    rate = 5.0
    delay = "1.2"


class Silent(_Callback):
    rate = 5.0
    silent = True


class Journey(OpenModelUser):
    """Two sequential steps; the second waits for the first's async response."""

    rate = 10.0
    srvs_per_arrival = 2

    def arrival(self):
        for label in ("J1", "J2"):
            rid = _rid()
            res = yield Step(label, "/api/v1/serviceS", body=b"<x/>", request_id=rid, expect_callback=True,
                             headers={"X-Callback-URL": self.ctx.callbacks.url, "X-Request-ID": rid,
                                      "X-Callback-Delay": "0.2"})
            if not res.ok:
                return


_wanted = set(filter(None, os.environ.get("OM_CLASSES", "Steady").split(",")))
for _name in ("Steady", "Prompt", "Slow", "Silent", "Journey"):
    if _name not in _wanted:
        globals()[_name].abstract = True


if os.environ.get("OM_SHAPE_RATE"):
    from dcc_capacity.load.shapes import LoadShape

    class OmShape(LoadShape):
        """Drives Steady at OM_SHAPE_RATE SRV/s for OM_SHAPE_S seconds (cluster-wide)."""

        rates = {"Steady": float(os.environ["OM_SHAPE_RATE"])}
        duration_s = float(os.environ.get("OM_SHAPE_S", "5"))


if os.environ.get("OM_STRESS_RATE"):
    from dcc_capacity.load.shapes import StressShape

    class OmStress(StressShape):
        """Steady at 0.8, 1.0, 1.2, ... x OM_STRESS_RATE, 3 s a step, until >1% errors."""

        rates = {"Steady": float(os.environ["OM_STRESS_RATE"])}
        start_factor = 0.8
        step_fraction = 0.2
        step_s = 3.0
        max_factor = 2.0
