"""The locustfile behind ``dcc-capacity run`` and ``locust -f locustfiles/dcc.py``.

Registers the DUIS user classes, the volume-model shape (:class:`DccShape`)
and the options that choose the load: ``--dcc-spec FILE`` (the ``spec.json``
``dcc-capacity run`` writes), or one ``--dcc-*`` option per run-spec field,
generated from the spec model (spec/surfaces.py). With plain Locust::

    locust -f locustfiles/dcc.py --headless --host http://127.0.0.1:8080 \\
        --dcc-profile volume_profiles/foc.yaml --dcc-sp DSP --dcc-slot night --dcc-test load \\
        --dcc-duration 60s --run-dir results/x --callback-port 9001

The SUT must POST async responses to this process's ``--callback-host``/``--callback-port``;
Locust's ``-t``/``--run-time`` bounds the test over ``--dcc-duration``; without ``--host`` the embedded
emulator starts, wired to it (load/embedded.py).
"""

from __future__ import annotations

import gc
from typing import Any

from locust import events
from locust.runners import MasterRunner, WorkerRunner

# isort: off
from dcc_capacity.load.users import spec_hook  # noqa: F401 - first: its init listener loads the spec
# isort: on
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
from dcc_capacity.load.users.negative import NegativeCases
from dcc_capacity.model.nfr import load_nfrs
from dcc_capacity.model.srvmix import ROW_CLASSES
from dcc_capacity.spec.options import add_locust_options, spec_from_options
from dcc_capacity.spec.safety import refuse_unconfirmed_host
from dcc_capacity.webui.guard import install_start_guard

__all__ = ["Bau", "CpMigrationFiles", "DccShape", "MeterReads", "NegativeCases", "NoisyNeighbour", "S1MigrationCredit",
           "S1MigrationPrepay",
           "S2IcCredit", "S2IcPrepay", "Secmp0192Schedules"]


@events.init_command_line_parser.add_listener
def _options(parser: Any, **_: Any) -> None:
    add_locust_options(parser)  # --dcc-spec, and one --dcc-* option per run-spec field (spec/surfaces.py)
    g = parser.add_argument_group("dcc-capacity load")
    g.add_argument("--pki-dir", default="", help="Test PKI folder (default: $DCC_CAPACITY_PKI or the cache).")
    g.add_argument("--callback-registry", default="",
                   help="Folder where each process writes its callback URL (for a relay in front of workers).")
    r = parser.add_argument_group("dcc-capacity real environment (docs/real-environment.md)")
    r.add_argument("--signing-keys", default="", help="JSON file of the Service Users' own signing keys (paths, "
                   "EUIs, roles, password environment variables) instead of the test PKI.")
    r.add_argument("--path-s", default="/api/v1/serviceS", help="Send Command Service path (CV 1, 3, 5, 7).")
    r.add_argument("--path-t", default="/api/v1/serviceT", help="Transform Service path (CV 4).")
    r.add_argument("--path-d", default="/api/v1/serviceD", help="Non-Device Service path (CV 2, 6, 8).")
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
    spec = spec_from_options(opts) if opts is not None else None
    if spec is not None and "interactive" in type(spec).model_fields and not opts.headless and not isinstance(
            environment.runner, MasterRunner | WorkerRunner):
        spec.interactive = True  # type: ignore[attr-defined]  # a one-process web UI stress test is steered from the Capacity tab
        opts.dcc_interactive = True
    if spec is not None and getattr(spec, "interactive", False):
        attach(environment)  # the interactive stress test's ControlledShape: workers listen for the master's rates
    if not isinstance(environment.runner, MasterRunner) and environment.parsed_options is not None:
        # PKI, fleet pools, templates: built now, not in the first user's __init__ after the test clock started.
        get_kit(environment.parsed_options)
        BauMix.load()
        start_if_no_host(environment)  # plain `locust -f` without --host: the embedded emulator (load/embedded.py)
    if opts is not None and not getattr(opts, "headless", False):
        # The Capacity tab (plan, live offered vs achieved, NFRs, SUT resources); workers install it too so
        # their per-class counts reach the master.
        webui.install(environment, plan=spec.profile if spec else None, sp=spec.sp if spec else None,
                      slot=spec.slot if spec else None,
                      row_classes=ROW_CLASSES, nfrs=load_nfrs(getattr(opts, "nfr", "") or None))
        install_start_guard(environment)  # Start to a non-loopback host needs the form's confirm-non-loopback


@events.test_start.add_listener
def _freeze(environment: Any, **_: Any) -> None:
    gc.collect()
    gc.freeze()  # setup objects (PKI, templates, pools) leave the GC's tracked set: cheaper collections under load
