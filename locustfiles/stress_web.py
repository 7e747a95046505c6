"""Interactive stress ramp-up from Locust's web UI: open the "Capacity" tab and steer the load.

    locust -f locustfiles/stress_web.py --host http://127.0.0.1:8080 --run-dir results/stress-web \\
        --stress-peak 100 --ui-profile volume_profiles/moc.yaml --ui-metrics-url http://127.0.0.1:8080/metrics.json

then browse to http://127.0.0.1:8089/capacity/ (or the "Capacity" tab of the Locust UI). The load starts at
``--stress-start`` x ``--stress-peak`` SRV/s and only changes when someone presses Step up / Step down /
Auto ramp. Every change lands in ``<run-dir>/operator_actions.jsonl``.

The user here is a stand-in that POSTs a small body to ``--stress-path`` and, if the SUT calls back (the test
sink does; see tests/_load_helpers.py), waits for the async response so the tab shows TRT too. Real DUIS
traffic uses the suite's DUIS user classes with the same shape and ``webui.install`` call.
"""

from __future__ import annotations

import itertools
import os

from locust import events

from dcc_capacity import webui
from dcc_capacity.load.controlled_shape import ControlledShape
from dcc_capacity.load.openmodel import OpenModelUser, Step

_ids = itertools.count(1)


@events.init_command_line_parser.add_listener
def _options(parser, **_):
    g = parser.add_argument_group("stress_web.py")
    g.add_argument("--stress-peak", type=float, default=100.0, help="Peak SRV/s (factor 1.0).")
    g.add_argument("--stress-start", type=float, default=0.5, help="Start at this fraction of the peak.")
    g.add_argument("--stress-step", type=float, default=0.1, help="Step size, as a fraction of the peak.")
    g.add_argument("--stress-hold", type=float, default=30.0, help="Automatic ramp: seconds per step.")
    g.add_argument("--stress-ceiling", type=float, default=3.0, help="Highest factor any step may reach.")
    g.add_argument("--stress-path", default="/api/v1/serviceS", help="Path the probe POSTs to.")
    g.add_argument("--stress-no-callback", action="store_true", help="Do not wait for async responses (ack only).")


class CapacityProbe(OpenModelUser):
    """One small POST per arrival; waits for the SUT's async response when the SUT sends one."""

    body = b"<Request>" + b"x" * 200 + b"</Request>"

    def arrival(self):
        rid = f"00-00-00-00-00-00-00-01:00-00-00-00-00-00-00-02:{os.getpid()}{next(_ids):012d}"
        headers = {"Content-Type": "application/xml", "X-Request-ID": rid, "X-Callback-Delay": "0.05"}
        opts = self.environment.parsed_options
        wait = self.ctx.callbacks is not None and not opts.stress_no_callback
        if wait:
            headers["X-Callback-URL"] = self.ctx.callbacks.url
        yield Step("probe", opts.stress_path, body=self.body, headers=headers, request_id=rid, expect_callback=wait,
                   srv_variant="probe")


class StressWeb(ControlledShape):
    """Starts at --stress-start x --stress-peak; the Capacity tab's controls do the rest."""

    rates = {"CapacityProbe": 100.0}


@events.init.add_listener
def _capacity_tab(environment, **_):
    opts = environment.parsed_options
    shape = environment.shape_class
    if isinstance(shape, StressWeb) and opts is not None:
        shape.rates = {"CapacityProbe": opts.stress_peak}
        shape.step_fraction, shape.hold_s, shape.max_factor = opts.stress_step, opts.stress_hold, opts.stress_ceiling
        shape.factor = shape.start_factor = opts.stress_start
    webui.install(environment)
