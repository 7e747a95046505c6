"""What ``dcc-capacity run`` needs to know about the load side's TLS options (passed in ``extra_locust_args``).

The run command does not parse Locust's options; when a run passes the
``--tls-*`` / ``--callback-tls-*`` options through, the embedded emulator must
call back over https and the metrics poller must present the same client
certificate as the load. With ``--workers N`` the callback relay, not the
workers, serves the callback TLS (orchestrate/relay.py): :func:`callback_server_tls`
gives its settings and :func:`without_callback_tls` the Locust options left
for the master and workers. This reads just those options, with the names
the load side defines (dcc_capacity/load/adapters/options.py).
"""

from __future__ import annotations

import argparse
import ssl
from collections.abc import Sequence

from dcc_capacity.config.tls import ClientTls, ServerTls

__all__ = ["CALLBACK_TLS_OPTIONS", "callback_scheme", "callback_server_tls", "client_context",
           "without_callback_tls"]

CALLBACK_TLS_OPTIONS = ("--callback-tls-cert", "--callback-tls-key", "--callback-tls-client-ca")
"""The callback listener's TLS options (each takes one value)."""


def _parse(args: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(add_help=False)
    for name in ("--tls-client-cert", "--tls-client-key", "--tls-key-password-env", "--tls-pkcs12", "--tls-ca",
                 *CALLBACK_TLS_OPTIONS):
        p.add_argument(name, default="")
    p.add_argument("--tls-no-verify", action="store_true", default=False)
    return p.parse_known_args(list(args))[0]


def callback_scheme(args: Sequence[str]) -> str:
    """``https`` when the load side's callback listener serves TLS, else ``http``."""
    return "https" if _parse(args).callback_tls_cert else "http"


def client_context(args: Sequence[str]) -> ssl.SSLContext | None:
    """The load side's client TLS context (its certificate, its CA), or None without TLS options."""
    tls = ClientTls.from_options(_parse(args))
    if not (tls.has_identity or tls.ca or not tls.verify):
        return None
    return tls.context()


def callback_server_tls(args: Sequence[str]) -> ServerTls | None:
    """The callback listener's TLS settings in ``args`` (None: plain HTTP), as the load side reads them.

    The same fields as ``MeasureConfig.from_options`` (runcontext.py): the key's password comes from the
    ``--tls-key-password-env`` variable, like the load side's.
    """
    a = _parse(args)
    if not a.callback_tls_cert:
        return None
    return ServerTls(a.callback_tls_cert, a.callback_tls_key or None, a.callback_tls_client_ca or None,
                     a.tls_key_password_env or None, option="--callback-tls-cert")


def without_callback_tls(args: Sequence[str]) -> list[str]:
    """``args`` without the ``--callback-tls-*`` options (both ``--opt value`` and ``--opt=value``)."""
    out: list[str] = []
    skip = False
    for a in args:
        if skip:
            skip = False
        elif a in CALLBACK_TLS_OPTIONS:
            skip = True
        elif not a.startswith(tuple(o + "=" for o in CALLBACK_TLS_OPTIONS)):
            out.append(a)
    return out
