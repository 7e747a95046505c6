"""`dcc-capacity emulator`: run the embedded system under test in the foreground.

Options override the config file, which overrides the documented defaults
(docs/emulator.md). Stops cleanly on SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_parser", "run"]


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a share is between 0 and 1 (got {value})")
    return value


def _window(text: str) -> dict[str, float]:
    try:
        start, duration = (float(x) for x in text.split(":", 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected START_S:DURATION_S, got {text!r}") from None
    return {"start_s": start, "duration_s": duration}


def add_parser(subparsers: Any, help_text: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser("emulator", help=help_text, description=help_text)
    p.add_argument("--host", help="listen address (loopback only; default 127.0.0.1)")
    p.add_argument("--port", type=int, help="HTTP port (default 8080; 0 picks a free one)")
    p.add_argument("--sp", choices=["DSP", "S1SP", "DCO", "CP"], help="Service Provider played (CP adds SFTP)")
    p.add_argument("--config", metavar="FILE", help="YAML, JSON or TOML config (see docs/emulator.md)")
    p.add_argument("--tps", type=float, help="capacity: transactions per second (default 1350)")
    p.add_argument("--workers", type=int, help="capacity: worker pool size (default 64)")
    p.add_argument("--queue-limit", type=int, help="capacity: queued requests before E48 (default 5000)")
    p.add_argument("--device-latency", choices=["dcc-test", "fast"],
                   help="device latency preset: dcc-test (realistic; the default) or fast (sub-second, for demos "
                        "and tests); docs/emulator.md")
    p.add_argument("--throttle-tps", type=float, help="SECMP0067 admitted rate shared by users (default 1.25 x tps)")
    p.add_argument("--no-throttle", action="store_true", help="turn SECMP0067 traffic management off")
    p.add_argument("--schema", metavar="XSD", help="validate requests against this DUIS schema")
    p.add_argument("--trust-cert", metavar="PATH", action="append", default=[],
                   help="also trust this signing certificate (repeatable)")
    p.add_argument("--pki-dir", metavar="DIR", help="test PKI folder (default $DCC_CAPACITY_PKI or the cache)")
    p.add_argument("--user-preset", choices=["dcc-boxed", "suite"],
                   help="who holds which role: DCC Boxed's test users (default) or exactly the suite's users")
    p.add_argument("--users-file", metavar="CSV",
                   help="eui,roles,certificate,name CSV of Service Users (roles ';'-separated; certificates trusted)")
    p.add_argument("--callback-url", metavar="URL", help="default callback for async responses and alerts")
    p.add_argument("--max-body", type=int, metavar="BYTES", help="request body limit (default 262144)")
    p.add_argument("--smets1-prefix", action="append", metavar="EUI_PREFIX",
                   help="device EUIs starting with this are SMETS1 (repeatable; default 00-DB-51)")
    p.add_argument("--device-registry", metavar="CSV", help="device_id,smets CSV (SMETS1/SMETS2)")
    p.add_argument("--alert-rate", type=float, metavar="PER_S", help="device alerts per second (0 = off)")
    p.add_argument("--counter-window", type=float, metavar="S",
                   help="seconds a request may arrive after one with a higher RequestID counter (default 2; "
                        "0 = strictly increasing); replays are always refused")
    f = p.add_argument_group("failure modes")
    f.add_argument("--error-burst", metavar="SHARE", type=_share,
                   help="share of device requests failing (E20) during bursts")
    f.add_argument("--error-burst-every", type=float, metavar="S", help="seconds between burst starts (default 60)")
    f.add_argument("--error-burst-duration", type=float, metavar="S", help="burst length (default 5)")
    f.add_argument("--missing-response-code", metavar="SHARE", type=_share,
                   help="share of async responses without a ResponseCode")
    f.add_argument("--outage", metavar="START_S:DURATION_S", type=_window, action="append",
                   help="outage window (repeatable): requests queue, then the backlog drains")
    f.add_argument("--migration-fallout", metavar="SHARE", type=_share,
                   help="share of migrated devices failing (CP); resubmission succeeds")
    f.add_argument("--tamper-responses", metavar="SHARE", type=_share,
                   help="share of signed answers changed after signing (clients checking signatures refuse them)")
    f.add_argument("--no-ppmid-join-limit", action="store_true",
                   help="accept SR 8.11 with JoinTimePeriod > 255 s (the fixed behaviour)")
    t = p.add_argument_group("TLS (see docs/emulator.md)")
    t.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS with this certificate (chain) ...")
    t.add_argument("--tls-key", metavar="PEM", help="... and this private key")
    t.add_argument("--tls-client-ca", metavar="PEM", help="require client certificates issued by this CA (mutual TLS)")
    t.add_argument("--callback-client-cert", metavar="PEM", help="client certificate for https callback deliveries")
    t.add_argument("--callback-client-key", metavar="PEM", help="its private key")
    t.add_argument("--callback-ca", metavar="PEM", help="CA bundle the callback listener's certificate is checked with")
    p.add_argument("--sftp-port", type=int, help="CP: SFTP port (default 0 = free port)")
    p.add_argument("--cp-root", metavar="DIR", help="CP: folder served over SFTP")
    p.add_argument("--ready-file", metavar="FILE", help=argparse.SUPPRESS)
    p.set_defaults(handler=run)
    return p


def _overrides(a: argparse.Namespace) -> dict[str, Any]:
    o: dict[str, Any] = {}

    def put(path: str, value: Any) -> None:
        if value is None:
            return
        node = o
        *parents, last = path.split(".")
        for k in parents:
            node = node.setdefault(k, {})
        node[last] = value

    put("host", a.host)
    put("port", a.port)
    put("sp", a.sp)
    put("capacity.tps", a.tps)
    put("capacity.workers", a.workers)
    put("capacity.queue_limit", a.queue_limit)
    put("capacity.device_latency.preset", a.device_latency)
    put("throttle.total_tps", a.throttle_tps)
    if a.no_throttle:
        put("throttle.enabled", False)
    put("schema_path", a.schema)
    if a.trust_cert:
        put("trust_certs", a.trust_cert)
    put("pki_dir", a.pki_dir)
    put("user_roles.preset", a.user_preset)
    put("user_roles.file", a.users_file)
    put("callback_url", a.callback_url)
    put("max_body_bytes", a.max_body)
    put("devices.smets1_prefixes", a.smets1_prefix)
    put("devices.registry", a.device_registry)
    put("counter_window_s", a.counter_window)
    if a.alert_rate is not None:
        put("alerts.enabled", a.alert_rate > 0)
        put("alerts.rate_per_s", a.alert_rate)
    if a.error_burst is not None:
        put("faults.error_bursts.enabled", True)
        put("faults.error_bursts.share", a.error_burst)
    put("faults.error_bursts.every_s", a.error_burst_every)
    put("faults.error_bursts.duration_s", a.error_burst_duration)
    if a.missing_response_code is not None:
        put("faults.missing_response_code.enabled", True)
        put("faults.missing_response_code.share", a.missing_response_code)
    if a.outage:
        put("faults.outage.enabled", True)
        put("faults.outage.windows", a.outage)
    if a.migration_fallout is not None:
        put("faults.migration_fallout.enabled", True)
        put("faults.migration_fallout.share", a.migration_fallout)
    if a.no_ppmid_join_limit:
        put("faults.ppmid_join.enabled", False)
    if a.tamper_responses is not None:
        put("faults.tamper_responses.enabled", True)
        put("faults.tamper_responses.share", a.tamper_responses)
    put("tls.cert", a.tls_cert)
    put("tls.key", a.tls_key)
    put("tls.client_ca", a.tls_client_ca)
    put("callback_tls.client_cert", a.callback_client_cert)
    put("callback_tls.client_key", a.callback_client_key)
    put("callback_tls.ca", a.callback_ca)
    put("cp.sftp_port", a.sftp_port)
    put("cp.root", a.cp_root)
    return o


def run(args: argparse.Namespace) -> int:
    from dcc_capacity.emulator.config import load_config
    from dcc_capacity.emulator.server import serve

    cfg = load_config(args.config, _overrides(args))
    if cfg.schema_path:
        from dcc_capacity.duis.schema import load_schema

        load_schema(cfg.schema_path)  # fail fast (exit 2) on a bad schema path
    for path in cfg.trust_certs:
        from dcc_capacity.duis.pki import load_certificate

        load_certificate(path)
    from dcc_capacity.duis.userroles import role_model

    role_model(cfg.user_roles.preset, cfg.user_roles.file)  # fail fast (exit 2) on a bad users file
    from dcc_capacity.emulator.app import callback_tls
    from dcc_capacity.emulator.server import server_tls

    server_tls(cfg)  # fail fast (exit 2) on a bad certificate or key
    callback_tls(cfg)
    return serve(cfg, ready_file=args.ready_file)
