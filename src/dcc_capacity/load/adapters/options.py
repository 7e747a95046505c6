"""Locust options for reaching a real target: the adapter, mutual TLS, and checking the DCC's signatures.

Registered on import (``dcc_capacity.load.openmodel`` imports this module), so
every locustfile built on the open model has them. The option names are a
contract: ``dcc-capacity run`` and the run configuration file map onto them.
Bad values stop the process at start-up with one line naming the option and
file, exit status 2, before any request is sent.
"""

from __future__ import annotations

import sys
from typing import Any

from locust import events

from dcc_capacity.errors import InputError

__all__ = ["check_options"]


@events.init_command_line_parser.add_listener
def _options(parser: Any, **_: Any) -> None:
    g = parser.add_argument_group("dcc-capacity target (adapter, TLS, response signatures)")
    g.add_argument("--adapter", default="duis-http",
                   help="How requests reach the SUT: duis-http, cp-sftp or module:Class (docs/adapters.md).")
    g.add_argument("--tls-client-cert", default="", help="Client certificate (PEM) presented to an https SUT.")
    g.add_argument("--tls-client-key", default="", help="Its private key (PEM; default: in the certificate file).")
    g.add_argument("--tls-key-password-env", default="",
                   help="Name of the environment variable holding the key or PKCS#12 password.")
    g.add_argument("--tls-pkcs12", default="", help="Client certificate and key as one PKCS#12 file.")
    g.add_argument("--tls-ca", default="", help="CA bundle the SUT's certificate is checked against.")
    g.add_argument("--tls-no-verify", action="store_true", default=False,
                   help="Do not verify the SUT's certificate (verification is on by default).")
    g.add_argument("--callback-tls-cert", default="", help="Serve the callback listener over HTTPS with this cert.")
    g.add_argument("--callback-tls-key", default="", help="Key of --callback-tls-cert (PEM).")
    g.add_argument("--callback-tls-client-ca", default="",
                   help="Require client certificates from this CA at the callback listener (mutual TLS).")
    g.add_argument("--response-cert", action="append", default=[],
                   help="DCC signing certificate (repeatable): verify every response's and alert's signature.")
    g.add_argument("--sftp-password-env", default="DCC_CAPACITY_SFTP_PASSWORD",
                   help="cp-sftp: environment variable holding the SFTP password (or put it in the host URL).")
    g.add_argument("--sftp-known-hosts", default="",
                   help="cp-sftp: known_hosts file for the server key (default: any key, loopback only).")


def check_options(opts: Any) -> None:
    """Load every certificate, key and adapter the options name (InputError for the first bad one)."""
    from dcc_capacity.config.tls import ClientTls
    from dcc_capacity.load.adapters import adapter_class
    from dcc_capacity.load.response_check import response_trust
    from dcc_capacity.load.runcontext import MeasureConfig

    adapter_class(getattr(opts, "adapter", None))
    response_trust(getattr(opts, "response_cert", None) or ())
    tls = ClientTls.from_options(opts)
    if tls.has_identity or tls.ca:
        tls.context()
    cfg = MeasureConfig.from_options(opts)
    if cfg.callback_tls is not None:
        cfg.callback_tls.context()


@events.init.add_listener
def _check(environment: Any, **_: Any) -> None:
    opts = environment.parsed_options
    if opts is None or not hasattr(opts, "adapter"):
        return
    try:
        check_options(opts)
    except InputError as exc:
        print(f"dcc-capacity: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
