"""Locust web UI extension for interactive stress ramp-ups: the "Capacity" tab and its stress controls.

Call :func:`install` from an ``init`` event listener (``dcc-capacity run --web``
does; so does ``locustfiles/stress_web.py``)::

    from locust import events
    from dcc_capacity import webui

    @events.init.add_listener
    def _capacity_tab(environment, **_):
        webui.install(environment, plan="volume_profiles/moc.yaml", nfrs=load_nfrs())

It must run in every process (master, workers, local): workers report their
per-class counts to the master through Locust's worker report; only a
process with a web UI mounts the routes. With a
:class:`~dcc_capacity.load.controlled_shape.ControlledShape` in the locustfile the
tab's buttons steer the running load; with any other shape the tab is
read-only. See docs/web-ui.md.
"""

from __future__ import annotations

import sys
import weakref
from pathlib import Path
from typing import Any

from locust import events

from dcc_capacity.errors import InputError
from dcc_capacity.load.controlled_shape import attach
from dcc_capacity.model.nfr import load_nfrs
from dcc_capacity.model.volume import load_plan
from dcc_capacity.webui.app import TAB_KEY, CapacityUI
from dcc_capacity.webui.views import plan_view

__all__ = ["CapacityUI", "TAB_KEY", "install", "plan_view"]

_installed: weakref.WeakKeyDictionary[Any, CapacityUI] = weakref.WeakKeyDictionary()


def install(environment: Any, plan: Any = None, nfrs: Any = None, *, sp: str | None = None, slot: str | None = None,
            row_classes: dict[str, str] | None = None, metrics_url: str | None = None) -> CapacityUI:
    """Add the Capacity tab to ``environment`` (once; a second call returns the first one's UI).

    ``plan``: a VolumePlan or a volume-profile path (None: no plan panel);
    ``sp``/``slot``: which A7 cell to show (default DSP, its busiest slot);
    ``row_classes``: volume row -> user class name; ``nfrs``: Nfr models or
    ``{id, metric, stat, threshold}`` dicts; ``metrics_url``: the SUT's
    ``/metrics`` JSON. Unset ones fall back to the ``--ui-*`` Locust options
    and ``--nfr`` (else the shipped NFRs).

    A bad profile, SP, slot or NFR file raises :class:`~dcc_capacity.errors.InputError`;
    when they came from Locust's command line, it prints that one line and exits 2.
    """
    ui = _installed.get(environment)
    if ui is not None:
        return ui
    opts = environment.parsed_options
    from_options = plan is None and nfrs is None
    try:
        if plan is None and getattr(opts, "ui_profile", None):
            plan = opts.ui_profile
        if isinstance(plan, (str, Path)):
            plan = load_plan(plan)
        if nfrs is None:
            nfrs = load_nfrs(getattr(opts, "nfr", "") or None)
        sp = sp or getattr(opts, "ui_sp", "") or None
        slot = slot or getattr(opts, "ui_slot", "") or None
        if plan is not None:
            try:  # an unknown SP or slot is the user's mistake: say so now, not in the page
                plan_view(plan, sp, slot)
            except InputError as e:
                raise InputError(f"--ui-sp/--ui-slot: {e.detail}" if from_options else e.detail) from None
    except InputError as e:
        if not from_options:
            raise
        # From Locust's own command line (an init listener): one line and exit 2, as the suite's CLI does.
        sys.stderr.write(f"error: {e}\n")
        raise SystemExit(2) from None
    metrics_url = metrics_url or getattr(opts, "ui_metrics_url", "") or None
    attach(environment)
    ui = CapacityUI(environment, plan, nfrs, sp=sp, slot=slot, row_classes=row_classes, metrics_url=metrics_url)
    _installed[environment] = ui
    return ui


@events.init_command_line_parser.add_listener
def _add_options(parser: Any, **_: Any) -> None:
    g = parser.add_argument_group("dcc-capacity web UI (Capacity tab)")
    g.add_argument("--ui-profile", default="", help="Volume profile whose plan the Capacity tab shows.")
    g.add_argument("--ui-sp", default="", help="Service Provider of the plan shown (default DSP).")
    g.add_argument("--ui-slot", default="", help="Slot of the plan shown (default: the SP's busiest).")
    g.add_argument("--ui-metrics-url", default="", help="SUT /metrics JSON URL polled for the resources panel.")
