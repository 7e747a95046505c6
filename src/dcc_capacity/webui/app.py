"""The Flask blueprint behind the Capacity tab: the console page, its JSON feed and the stress controls.

Mounted on Locust's own Flask app (``environment.web_ui.app``), so it is
served by the same port, honours ``--web-login`` and works wherever Locust's
web UI does (``locust -f ...`` and ``dcc-capacity run --web``). Routes:

- ``GET  /capacity/``            the console (plain HTML + JS, no build step)
- ``GET  /capacity/api/state``   everything the console shows, polled every second
- ``POST /capacity/api/control`` ``{"action": ..., "who": ...}``: step_up, step_down, hold,
  set (``factor``), auto (``criterion``), configure (``settings``), mark_knee, stop

Locust's own tab bar gets a "Capacity" tab too, through its supported
``extended_tabs``/``extended_tables`` template args: a live table (offered vs
achieved per class, NFRs, the shape's state), fed by ``extended_stats`` added
to ``/stats/requests``. Locust's stock tabs can only hold a table, so a small
script added to Locust's index page lays the full console (in an iframe)
over that tab while it is selected; without the script the table remains.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.request
from pathlib import Path
from typing import Any

import gevent
from flask import Blueprint, Response, jsonify, request, send_from_directory
from locust.runners import MasterRunner

from dcc_capacity.load.controlled_shape import ControlledShape, controlled_of
from dcc_capacity.webui.live import LiveStats
from dcc_capacity.webui.views import judge_nfrs, normalise_nfrs, plan_view

__all__ = ["CapacityUI", "TAB_KEY"]

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"
TAB_KEY = "capacity"
_TAB_SCRIPT = '<script src="./capacity/static/locust-tab.js"></script>'
_TABLE = [{"key": "item", "title": "Item"}, {"key": "now", "title": "Now"},
          {"key": "target", "title": "Target / threshold"}, {"key": "status", "title": "Status"}]


class CapacityUI:
    """One per environment: live sampler everywhere; on a process with a web UI also the routes and the tab."""

    def __init__(self, environment: Any, plan: Any = None, nfrs: Any = None, *, sp: str | None = None,
                 slot: str | None = None, row_classes: dict[str, str] | None = None,
                 metrics_url: str | None = None) -> None:
        self.environment = environment
        self.live = LiveStats(environment)
        self.nfrs = normalise_nfrs(nfrs)
        try:
            self.plan = plan_view(plan, sp, slot, row_classes)
        except Exception as e:  # a bad plan must not take the web UI down: show why instead
            log.warning("Capacity tab: cannot show the plan: %s", e)
            self.plan = {"error": str(e)}
        self.metrics_url = metrics_url
        self._metrics: tuple[float, Any] = (0.0, None)
        self._sampler: gevent.Greenlet | None = None
        if environment.web_ui is not None:
            self._mount(environment.web_ui)

    @property
    def shape(self) -> ControlledShape | None:
        return controlled_of(self.environment.shape_class)

    # -- data ----------------------------------------------------------------------------
    def resources(self) -> dict[str, Any] | None:
        """The SUT's /metrics JSON (cached 1 s); None when no metrics URL is configured."""
        if not self.metrics_url:
            return None
        at, cached = self._metrics
        if time.time() - at < 1.0 and cached is not None:
            return cached
        try:
            with urllib.request.urlopen(self.metrics_url, timeout=1.0) as resp:  # noqa: S310 - operator's own URL
                data = json.loads(resp.read())
            out = {"url": self.metrics_url, "ok": True,
                   "gauges": {k: v for k, v in data.items() if isinstance(v, (int, float)) and k != "time"},
                   "by_code": data.get("by_code", {}), "totals": data.get("totals", {})}
        except Exception as e:  # the SUT being down is exactly what an operator may need to see
            out = {"url": self.metrics_url, "ok": False, "error": f"{type(e).__name__}: {e}"}
        self._metrics = (time.time(), out)
        return out

    def telemetry(self) -> dict[str, Any] | None:
        """The run's resource collector's latest figures per host (telemetry-live.json in --run-dir), if any."""
        from dcc_capacity.telemetry import read_live

        return read_live(getattr(self.environment.parsed_options, "run_dir", None))

    def state(self) -> dict[str, Any]:
        runner = self.environment.runner
        live = self.live.snapshot()
        shape = self.shape
        return {"time": time.time(),
                "runner": {"state": getattr(runner, "state", None),
                           "workers": runner.worker_count if isinstance(runner, MasterRunner) else 0,
                           "user_count": getattr(runner, "user_count", 0), "host": self.environment.host},
                "shape": shape.state() if shape is not None else None,
                "plan": self.plan, "live": live, "nfrs": judge_nfrs(self.nfrs, live), "resources": self.resources(),
                "telemetry": self.telemetry()}

    def control(self, body: dict[str, Any]) -> dict[str, Any]:
        shape = self.shape
        if shape is None:
            raise ValueError("the running shape is not a ControlledShape: nothing to steer")
        who = str(body.get("who") or "operator")[:80]
        action = body.get("action")
        if action == "step_up":
            shape.step_up(who)
        elif action == "step_down":
            shape.step_down(who)
        elif action == "hold":
            shape.hold(who)
        elif action == "set":
            shape.set_factor(float(body["factor"]), who)
        elif action == "auto":
            if body.get("settings"):
                shape.configure(who, **dict(body["settings"]))
            shape.start_auto(who, body.get("criterion") or None)
        elif action == "configure":
            shape.configure(who, **dict(body.get("settings") or {}))
        elif action == "mark_knee":
            shape.mark_knee(who)
        elif action == "stop":
            shape.stop(who)
        else:
            raise ValueError(f"unknown action {action!r}")
        return shape.state()

    def tab_rows(self) -> list[dict[str, Any]]:
        """Rows of the table in Locust's own "Capacity" tab."""
        st = self.state()
        rows: list[dict[str, Any]] = []
        shape = st["shape"]
        if shape is not None:
            rows.append({"item": "load", "now": f"{shape['total_rate']:.1f} SRV/s (x{shape['factor']:.2f} peak)",
                         "target": f"ceiling x{shape['max_factor']:.2f}", "status": shape["mode"]})
            knee = shape.get("knee")
            if knee:
                rows.append({"item": "knee", "now": f"{knee['total_rate']:.1f} SRV/s", "target": "",
                             "status": "marked"})
        targets = shape["rates"] if shape else {}
        for cls, c in st["live"]["classes"].items():
            off, ach = c.get("offered_rate"), c.get("achieved_rate")
            rows.append({"item": f"{cls} offered / achieved",
                         "now": f"{off or 0:.1f} / {ach or 0:.1f} /s",
                         "target": f"{targets[cls]:.1f} /s" if cls in targets else "", "status": ""})
        for n in st["nfrs"]:
            v = n["value"]
            rows.append({"item": n["id"], "now": "" if v is None else f"{v:.4g}",
                         "target": f"{'<=' if n['bound'] == 'max' else '>='} {n['threshold']:g}",
                         "status": {True: "OK", False: "FAIL", None: "-"}[n["ok"]]})
        for r in (st.get("telemetry") or {}).get("rows", []):  # the SUT's hosts (run's resource collector)
            figs = [f"{lab} {r[k]:.0f}%" for k, lab in (("cpu_percent", "cpu"), ("mem_percent", "mem"),
                                                       ("process_cpu_percent", "proc cpu")) if k in r]
            rows.append({"item": f"{r['host']} resources", "now": " ".join(figs) if r.get("up") else r.get("error"),
                         "target": "", "status": "" if r.get("up") else "GAP"})
        rows.append({"item": "controls", "now": "open ./capacity/", "target": "", "status": ""})
        return rows

    # -- wiring ----------------------------------------------------------------------------
    def _mount(self, web_ui: Any) -> None:
        base = (getattr(self.environment.parsed_options, "web_base_path", None) or "").rstrip("/")
        bp = Blueprint("dcc_capacity", __name__, url_prefix=f"{base}/capacity")
        guard = web_ui.auth_required_if_enabled

        @bp.route("/")
        @guard
        def page() -> Response:
            return send_from_directory(STATIC, "capacity.html")

        @bp.route("/static/<path:name>")
        @guard
        def assets(name: str) -> Response:
            return send_from_directory(STATIC, name)

        @bp.route("/api/state")
        @guard
        def api_state() -> Response:
            return jsonify(self.state())

        @bp.route("/api/control", methods=["POST"])
        @guard
        def api_control() -> Any:
            body = request.get_json(silent=True) or {}
            try:
                return jsonify({"ok": True, "shape": self.control(body)})
            except (ValueError, TypeError, KeyError) as e:
                return jsonify({"ok": False, "error": str(e)}), 400

        web_ui.app.register_blueprint(bp)
        args = web_ui.template_args
        args["extended_tabs"] = [*args.get("extended_tabs", []), {"title": "Capacity", "key": TAB_KEY}]
        args["extended_tables"] = [*args.get("extended_tables", []), {"key": TAB_KEY, "structure": _TABLE}]
        args["extended_csv_files"] = [*args.get("extended_csv_files", []),
                                      {"href": "./capacity/", "title": "Capacity console (stress controls)"}]

        @web_ui.app.after_request
        def extend_stats(response: Response) -> Response:
            if request.endpoint == "locust.index" and response.mimetype == "text/html" \
                    and not response.direct_passthrough:
                html = response.get_data(as_text=True)
                if "</body>" in html and "locust-tab.js" not in html:
                    response.set_data(html.replace("</body>", f"{_TAB_SCRIPT}</body>", 1))
                return response
            if request.path.endswith("/stats/requests") and response.is_json:
                try:
                    data = response.get_json()
                    extended = [e for e in data.get("extended_stats", []) if e.get("key") != TAB_KEY]
                    data["extended_stats"] = [*extended, {"key": TAB_KEY, "data": self.tab_rows()}]
                    response.set_data(json.dumps(data))
                except Exception:  # never break Locust's own stats feed
                    log.exception("Capacity tab: could not extend /stats/requests")
            return response

        self._sampler = gevent.spawn(self._sample_loop)

    def _sample_loop(self) -> None:
        while True:
            try:
                self.live.sample()
            except Exception:
                log.exception("Capacity tab: sampling failed")
            gevent.sleep(1.0)
