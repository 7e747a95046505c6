"""Example: the open-model user against any HTTP host (a template for the real DUIS user classes).

    locust -f locustfiles/_example_open_model.py --headless -u 1 -t 30s --host http://127.0.0.1:8080 \\
        --example-rate 50 --run-dir results/example

One scheduler user (``-u 1``) sends ``--example-rate`` POSTs per second to
``--example-path`` whatever the host does; ack times count from the planned
send time. Records go to ``--run-dir``; with several classes or a
:class:`~dcc_capacity.load.shapes.RateShape` in the file, rates come from the shape
instead (then Locust's -u/-t are not needed).

A journey yields several steps and reads each result; to wait for the async
response, give the step a ``request_id`` and ``expect_callback=True`` and make
the SUT POST it to ``self.ctx.callbacks.url``::

    def arrival(self):
        res = yield Step("6.15.1 CV4", "/api/v1/serviceT", body=cv4, request_id=rid, expect_callback=True)
        if res.ok:
            yield Step("6.15.1 CV5", "/api/v1/serviceS", body=sign(res.callback_body), request_id=rid,
                       expect_callback=True)
"""

from __future__ import annotations

from locust import events

from dcc_capacity.load.openmodel import OpenModelUser, Step


@events.init_command_line_parser.add_listener
def _options(parser, **_):
    parser.add_argument("--example-rate", type=float, default=10.0, help="Requests/s the example user offers.")
    parser.add_argument("--example-path", default="/", help="Path the example user POSTs to.")


class ExampleUser(OpenModelUser):
    """POSTs a small static body at ``--example-rate`` req/s."""

    body = b"<Request>" + b"x" * 200 + b"</Request>"

    def target_rate(self, t: float) -> float:
        return float(self.environment.parsed_options.example_rate)

    def arrival(self):
        yield Step("example", self.environment.parsed_options.example_path, body=self.body,
                   headers={"Content-Type": "application/xml"})
