"""The web UI's Start button asks for explicit confirmation before it loads a host that is not loopback.

Headless and ``--autostart`` runs are refused at start-up without
``--confirm-non-loopback`` (spec/safety.py). In Locust's own web UI the
operator may type any host into the Start form, so the check happens there,
at the moment of starting: the form's custom parameter
``confirm-non-loopback`` (a checkbox Locust draws for the option) must be
ticked for a non-loopback host, or Locust's form shows why it did not start.
Nothing is spawned and nothing is sent until then.
"""

from __future__ import annotations

from typing import Any

from dcc_capacity.spec.safety import is_loopback

__all__ = ["install_start_guard", "start_refusal"]


def start_refusal(host: str | None, confirmed_in_form: bool, confirmed_at_launch: bool) -> str | None:
    """Why a Start with ``host`` must not go ahead, or None when it may."""
    if not host or confirmed_in_form or confirmed_at_launch or is_loopback(host):
        return None
    return (f"{host} is not a loopback address: starting would send load to it. If it is a test environment you "
            "may load, tick confirm-non-loopback under Custom parameters and press Start again.")


def install_start_guard(environment: Any) -> bool:
    """Refuse the web UI's Start (Locust's ``/swarm``) for an unconfirmed non-loopback host; False without a UI."""
    web_ui = getattr(environment, "web_ui", None)
    if web_ui is None:
        return False
    from flask import jsonify, request

    @web_ui.app.before_request
    def _confirm_real_target() -> Any:
        if request.method != "POST" or not request.path.rstrip("/").endswith("/swarm"):
            return None
        host = request.form.get("host") or environment.host
        # The form's checkbox decides when the form has it (Locust pre-ticks it for --confirm-non-loopback).
        ticked = request.form.get("confirm_non_loopback")
        launched = bool(getattr(environment.parsed_options, "confirm_non_loopback", False))
        why = start_refusal(host, ticked == "true", launched and ticked is None)
        if why is None:
            return None
        return jsonify({"success": False, "message": why, "host": environment.host})

    return True
