"""The locustfile behind ``dcc-capacity run`` and ``locust -f locustfiles/dcc.py``.

Registers the DUIS user classes, the volume-model shape (:class:`DccShape`)
and the options that choose the load. With plain Locust::

    locust -f locustfiles/dcc.py --headless --host http://127.0.0.1:8080 \\
        --volume-profile volume_profiles/foc.yaml --sp DSP --slot night --dcc-test load \\
        --dcc-duration 60s --run-dir results/x --callback-port 9001

(``--profile`` is Locust's own option, hence ``--volume-profile``; Locust's
``-t``/``--run-time`` bounds the test over ``--dcc-duration``.) The SUT must
POST async responses to this process's ``--callback-host``/``--callback-port``;
without ``--host`` the embedded emulator starts, wired to it (load/embedded.py).
"""

from __future__ import annotations

import gc
from typing import Any

from locust import events
from locust.runners import MasterRunner, WorkerRunner

from dcc_capacity import webui  # registers the Capacity tab's Locust options (--ui-*)
from dcc_capacity.duis.mix import BauMix
from dcc_capacity.load.controlled_shape import attach
from dcc_capacity.load.embedded import start_if_no_host
from dcc_capacity.load.shape import DccShape
from dcc_capacity.load.users.classes import (
    Bau,
    MeterReads,
    NoisyNeighbour,
    S1MigrationCredit,
    S1MigrationPrepay,
    S2IcCredit,
    S2IcPrepay,
    Secmp0192Schedules,
)
from dcc_capacity.load.users.cp import CpMigrationFiles
from dcc_capacity.load.users.kit import get_kit
from dcc_capacity.load.users.rows import ROW_CLASSES
from dcc_capacity.model.nfr import load_nfrs
from dcc_capacity.spec.safety import refuse_unconfirmed_host
from dcc_capacity.testtypes.negative.users import NegativeCases
from dcc_capacity.webui.guard import install_start_guard

__all__ = ["Bau", "CpMigrationFiles", "DccShape", "MeterReads", "NegativeCases", "NoisyNeighbour", "S1MigrationCredit",
           "S1MigrationPrepay",
           "S2IcCredit", "S2IcPrepay", "Secmp0192Schedules"]


@events.init_command_line_parser.add_listener
def _options(parser: Any, **_: Any) -> None:
    g = parser.add_argument_group("dcc-capacity load (volume model)")
    g.add_argument("--volume-profile", default="volume_profiles/foc.yaml", help="Volume profile YAML.")
    g.add_argument("--sp", default="DSP", help="Service Provider: DSP, S1SP, DCO or CP.")
    g.add_argument("--slot", default="", help="night, day or evening (default: the SP's busiest slot).")
    g.add_argument("--s1sp", default="", help="With --sp S1SP: one S1SP of the profile's s1sp_shares (name or 1..N).")
    g.add_argument("--dcc-test", default="load", help="load, stress, soak, spike, catchup,"
                   " noisy-neighbour or negative.")
    g.add_argument("--dcc-rate", type=float, default=0.0, help="Total SRV/s, overriding the profile (mix kept).")
    g.add_argument("--dcc-duration", default="60s", help="Test duration (stress: the upper bound).")
    g.add_argument("--normal", action="store_true", default=False, help="load: the slot's average, not its peak.")
    g.add_argument("--secmp0192-share", type=float, default=0.02, help="Share of BAU sent as SECMP0192 5.1.")
    g.add_argument("--stress-step", type=float, default=0.1, help="stress: step size as a fraction of the peak.")
    g.add_argument("--step-duration", default="60s", help="stress: duration of each step.")
    g.add_argument("--stress-start", type=float, default=1.0, help="stress: first step's factor of the peak.")
    g.add_argument("--stress-max", type=float, default=3.0, help="stress: ceiling factor.")
    g.add_argument("--stress-max-error-rate", type=float, default=0.01, help="stress: stop above this error rate.")
    g.add_argument("--dcc-interactive", action="store_true", default=False,
                   help="stress: steer the steps from the web UI's Capacity tab (default with the web UI on one "
                        "process; give it to master and workers when distributed).")
    g.add_argument("--stress-max-p95-ms", type=float, default=1000.0, help="stress: stop above this ack p95 (0: off).")
    g.add_argument("--spike-factor", type=float, default=3.0, help="spike: multiple of the base rate.")
    g.add_argument("--burst-factor", type=float, default=2.0, help="noisy-neighbour: burst as a multiple of the rest.")
    g.add_argument("--client-hold", action="store_true", default=False,
                   help="catchup: Service Users hold traffic in the outage and resend it (SUT without an outage).")
    g.add_argument("--dcc-exclude", default="", help="User classes (or 'smets1') not sent, comma separated.")
    g.add_argument("--fleet-seed", type=int, default=20240601, help="Fleet seed (same seed, same devices).")
    g.add_argument("--fleet-size", type=int, default=1_000_000, help="Installations in the fleet.")
    g.add_argument("--pool-size", type=int, default=1024, help="Installations per (SMETS, payment mode) pool.")
    g.add_argument("--pki-dir", default="", help="Test PKI folder (default: $DCC_CAPACITY_PKI or the cache).")
    g.add_argument("--callback-registry", default="",
                   help="Folder where each process writes its callback URL (for a relay in front of workers).")
    g.add_argument("--step-retries", type=int, default=0, help="Extra attempts of a failed SRV before a journey ends.")
    r = parser.add_argument_group("dcc-capacity real environment (docs/real-environment.md)")
    r.add_argument("--signing-keys", default="", help="JSON file of the Service Users' own signing keys (paths, "
                   "EUIs, roles, password environment variables) instead of the test PKI.")
    r.add_argument("--path-s", default="/api/v1/serviceS", help="Send Command Service path (CV 1, 3, 5, 7).")
    r.add_argument("--path-t", default="/api/v1/serviceT", help="Transform Service path (CV 4).")
    r.add_argument("--path-d", default="/api/v1/serviceD", help="Non-Device Service path (CV 2, 6, 8).")
    r.add_argument("--max-rate", type=float, default=0.0, help="Hard ceiling on the total SRV/s offered (0: none).")
    r.add_argument("--max-duration", default="", help="Hard ceiling on the test's length, e.g. 2h (default none).")
    # On the parser itself (not a group) so that Locust draws it in the web UI's Start form: the operator ticks it
    # there to confirm a non-loopback host (webui/guard.py).
    parser.add_argument("--confirm-non-loopback", action="store_true", default=False, include_in_web_ui=True,
                        help="Confirm: the --host that is not loopback is a test environment you may load "
                             "(dcc-capacity run --yes).")


@events.init.add_listener
def _init(environment: Any, **_: Any) -> None:
    DccShape.options = environment.parsed_options
    opts = environment.parsed_options
    if opts is not None and not isinstance(environment.runner, WorkerRunner):
        refuse_unconfirmed_host(opts)  # exits 2 before any user, shape or connection exists
    if opts is not None and not opts.headless and opts.dcc_test == "stress" and not isinstance(
            environment.runner, MasterRunner | WorkerRunner):
        opts.dcc_interactive = True  # a one-process web UI stress test is steered from the Capacity tab
    if opts is not None and opts.dcc_interactive:
        attach(environment)  # the interactive stress test's ControlledShape: workers listen for the master's rates
    if not isinstance(environment.runner, MasterRunner) and environment.parsed_options is not None:
        # PKI, fleet pools, templates: built now, not in the first user's __init__ after the test clock started.
        get_kit(environment.parsed_options)
        BauMix.load()
        start_if_no_host(environment)  # plain `locust -f` without --host: the embedded emulator (load/embedded.py)
    if opts is not None and not getattr(opts, "headless", False):
        # The Capacity tab (plan, live offered vs achieved, NFRs, SUT resources); workers install it too so
        # their per-class counts reach the master.
        webui.install(environment, plan=opts.volume_profile or None, sp=opts.sp or None, slot=opts.slot or None,
                      row_classes=ROW_CLASSES, nfrs=load_nfrs(getattr(opts, "nfr", "") or None))
        install_start_guard(environment)  # Start to a non-loopback host needs the form's confirm-non-loopback


@events.test_start.add_listener
def _freeze(environment: Any, **_: Any) -> None:
    gc.collect()
    gc.freeze()  # setup objects (PKI, templates, pools) leave the GC's tracked set: cheaper collections under load
