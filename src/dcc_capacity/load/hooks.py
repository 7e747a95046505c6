"""The measurement's Locust hooks: its command-line options, and the init listener of every process.

Registered on import (:mod:`dcc_capacity.load.openmodel` imports this module,
so any locustfile with open-model users has them): ``init`` installs the
process's :class:`~dcc_capacity.load.runcontext.RunContext` and, on a headless
master or single process, the live progress line. Kept apart from the run
context so that the progress line can read the context without the two
modules importing each other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from locust import events as global_events
from locust.runners import WorkerRunner

from dcc_capacity.load.progress import Progress
from dcc_capacity.load.runcontext import install
from dcc_capacity.model.nfr import load_catalogue

if TYPE_CHECKING:
    from locust.env import Environment

__all__ = ["on_init"]


@global_events.init_command_line_parser.add_listener
def _add_options(parser: Any, **_: Any) -> None:
    g = parser.add_argument_group("dcc-capacity measurement")
    g.add_argument("--run-dir", default="", help="Folder for this run's records (one file per process).")
    g.add_argument("--callback-host", default="127.0.0.1", help="Interface of each process's callback listener.")
    g.add_argument("--callback-port", type=int, default=0, help="Callback listener port (0: ephemeral).")
    g.add_argument("--trt-late", type=float, default=30.0, help="Async response later than this (s) is 'late'.")
    g.add_argument("--trt-missing", type=float, default=120.0, help="No async response after this (s): 'missing'.")
    g.add_argument("--drain", type=float, default=None,
                   help="Seconds to wait at stop for awaited responses, then record them missing (default: "
                        "--trt-missing).")
    g.add_argument("--max-in-flight", type=int, default=0,
                   help="Open HTTP exchanges per user class and process; past it arrivals are dropped (default 1000).")
    g.add_argument("--max-parked-journeys", type=int, default=100_000,
                   help="Journeys per process waiting for a response their next step needs (default 100000).")
    g.add_argument("--nfr", default="", help="NFR file for the live progress line (default: the shipped one).")
    g.add_argument("--progress-interval", type=float, default=10.0,
                   help="Headless: seconds between progress lines (0: none).")


@global_events.init.add_listener
def on_init(environment: Environment, **_: Any) -> None:
    """Every process: its run context; headless and not a worker: the live progress line."""
    install(environment)
    opts = environment.parsed_options
    interval = float(getattr(opts, "progress_interval", 0) or 0)
    if opts is not None and getattr(opts, "headless", False) and interval > 0 and not isinstance(
            environment.runner, WorkerRunner):
        cat = load_catalogue(getattr(opts, "nfr", "") or None)
        nfrs = cat.nfrs
        from dcc_capacity.testtypes.registry import TYPES

        kind = TYPES.get(str(getattr(opts, "dcc_test", "")))
        if kind is not None and kind.live_nfr_test:  # negative: error answers are the point; judge its own NFRs
            ids = {n for t in cat.tests if t.id == kind.live_nfr_test for n in t.nfr_ids}
            nfrs = [n for n in cat.nfrs if n.id in ids] or nfrs
        Progress(environment, nfrs, interval=interval).install()
