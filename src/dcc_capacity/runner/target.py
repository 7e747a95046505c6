"""What ``dcc-capacity run`` needs to know about the load side's TLS options (passed in ``extra_locust_args``).

The run command does not parse Locust's options; when a run passes the
``--tls-*`` / ``--callback-tls-*`` options through, the embedded emulator must
call back over https and the metrics poller must present the same client
certificate as the load. This reads just those options, with the names the
load side defines (dcc_capacity/adapters/options.py).
"""

from __future__ import annotations

import argparse
import ssl
from collections.abc import Sequence

from ..tls import ClientTls

__all__ = ["callback_scheme", "client_context"]


def _parse(args: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(add_help=False)
    for name in ("--tls-client-cert", "--tls-client-key", "--tls-key-password-env", "--tls-pkcs12", "--tls-ca",
                 "--callback-tls-cert"):
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
