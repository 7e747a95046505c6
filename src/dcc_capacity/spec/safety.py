"""Safety rails for runs against a real system: confirm a non-loopback target, hard rate and duration ceilings.

A capacity test is a deliberate overload. Pointed at the wrong URL it is an
attack on someone's production gateway, so ``run`` refuses a target that is
not loopback unless the user said ``--yes`` (or ``safety.confirm_non_loopback``
in the run configuration), and refuses BEFORE anything is started or sent.
The ceilings (``safety.max_rate``, ``safety.max_duration``) are checked
against what was asked for (exit 2) and enforced again inside every Locust
process by :func:`cap_rates` (the shape never offers more), so a stress step
or a spike cannot climb past them either. Free of Locust: the CLI imports it.
"""

from __future__ import annotations

import ipaddress
import signal
import sys
import threading
from typing import Any
from urllib.parse import urlsplit

from dcc_capacity.errors import InputError

__all__ = ["SignalGuard", "cap_rates", "check_ceilings", "check_target", "interrupt_on_signals", "is_loopback",
           "refuse_unconfirmed_host"]


def is_loopback(url: str) -> bool:
    """True for a URL whose host is 127.0.0.0/8, ::1 or ``localhost`` (no DNS: a name is not trusted)."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_target(host: str | None, confirmed: bool, *, web: bool = False) -> None:
    """InputError (exit 2, nothing sent) for a non-loopback ``host`` the user has not confirmed."""
    if host is None or confirmed or is_loopback(host):
        return
    where = "the web UI would start it at once" if web else "this would send load to it"
    raise InputError(f"{host} is not a loopback address and {where}; confirm it is a test environment you may "
                     "load with --yes (or safety.confirm_non_loopback = true in the run configuration)", key="--host")


def refuse_unconfirmed_host(opts: Any) -> None:
    """In a Locust process (plain ``locust -f locustfiles/dcc.py`` too): exit 2 for an unconfirmed real target.

    Applies when the test would start by itself (``--headless`` or ``--autostart``); in Locust's own web UI
    the operator's Start, with the host in the form, is the confirmation.
    """
    host = getattr(opts, "host", None)
    if not host or getattr(opts, "confirm_non_loopback", False) or is_loopback(host):
        return
    if not (getattr(opts, "headless", False) or getattr(opts, "autostart", False)):
        return
    print(f"dcc-capacity: --host {host} is not a loopback address and this would send load to it; confirm it is "
          "a test environment you may load with --confirm-non-loopback", file=sys.stderr, flush=True)
    raise SystemExit(2)


def check_ceilings(rate: float, duration_s: float, max_rate: float | None, max_duration_s: float | None,
                   *, file: str | None = None) -> None:
    """InputError when the requested total SRV/s or duration is above the configured ceiling."""
    if max_rate is not None and rate > max_rate + 1e-9:
        raise InputError(f"the requested rate {rate:.1f} SRV/s is above the ceiling safety.max_rate = {max_rate:g}; "
                         "lower --rate or raise the ceiling", file=file, key="safety.max_rate")
    if max_duration_s is not None and duration_s > max_duration_s + 1e-9:
        raise InputError(f"the requested duration {duration_s:g} s is above the ceiling safety.max_duration = "
                         f"{max_duration_s:g} s", file=file, key="safety.max_duration")


def cap_rates(rates: dict[str, float] | None, max_rate: float | None) -> dict[str, float] | None:
    """``rates`` scaled down (mix kept) so their sum is at most ``max_rate``; unchanged below it or without one."""
    if rates is None or not max_rate or max_rate <= 0:
        return rates
    total = sum(rates.values())
    if total <= max_rate:
        return rates
    f = max_rate / total
    return {k: v * f for k, v in rates.items()}


class SignalGuard:
    """SIGTERM (and Ctrl-C) during the load: raise KeyboardInterrupt so the run stops it and still reports.

    Python turns SIGINT into KeyboardInterrupt already; SIGTERM (a CI job
    cancelled, ``kill``) would otherwise end the process with no report.
    After the load (:meth:`defer`) both are noted and ignored until the
    report is written - building it is bounded - then :meth:`restore` puts
    the previous handlers back. Only the main thread can own signals; elsewhere
    this does nothing.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self._old: dict[int, Any] = {}
        self.active = threading.current_thread() is threading.main_thread()
        if self.active:
            for sig in self.SIGNALS:
                self._old[sig] = signal.signal(sig, self._interrupt)

    @staticmethod
    def _interrupt(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    @staticmethod
    def _note(signum: int, _frame: Any) -> None:
        print(f"dcc-capacity run: {signal.Signals(signum).name} received; the load has stopped, finishing the "
              "report first", file=sys.stderr, flush=True)

    def defer(self) -> None:
        if self.active:
            for sig in self.SIGNALS:
                signal.signal(sig, self._note)

    def restore(self) -> None:
        if self.active:
            for sig, old in self._old.items():
                signal.signal(sig, old)
            self.active = False


def interrupt_on_signals() -> SignalGuard:
    """Install a :class:`SignalGuard` for the load phase of a run."""
    return SignalGuard()
