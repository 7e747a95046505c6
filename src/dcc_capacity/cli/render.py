"""`dcc-capacity render VARIANT`: write signed sample DUIS requests and the signer's certificate.

What a tester hands to a real DCC test environment (or to DCC Boxed) to check
that the suite's requests are accepted before a load test: N requests of one
SRV for reproducible fleet devices, each signed, plus the certificate(s) to
verify them and a manifest (``requests.csv``) saying which file is which
RequestID. With ``--signing-key/--signing-cert`` the requests are signed as
the user's own Service User (the same settings a run configuration holds);
otherwise with the generated test PKI.

``--from-rtds DIR`` takes the bodies from the DCC's Reference Test Data Set
that the user installed (``duis/rtds.py``): VARIANT (or ``all``) selects its
templates, and each request gets our originator, RequestID and signature.
"""

from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path

from dcc_capacity.errors import InputError

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction, help_text: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser("render", help=help_text,
                              description="Write signed sample DUIS requests and the signer's certificate.")
    p.add_argument("variant", metavar="VARIANT", help="SRV variant, e.g. 4.6.1 ('all' with --from-rtds)")
    p.add_argument("--count", type=int, metavar="N",
                   help="number of requests (default 1; with --from-rtds one per template)")
    p.add_argument("--from-rtds", type=Path, metavar="DIR",
                   help="take the bodies from the DCC's RTDS templates (npm @smartdcc/duis-templates) in DIR")
    p.add_argument("--out", required=True, type=Path, metavar="DIR",
                   help="folder to write the requests and certificate into")
    p.add_argument("--signing-key", type=Path, metavar="PATH",
                   help="Service User's ECDSA P-256 private key (PEM or DER)")
    p.add_argument("--signing-cert", type=Path, metavar="PATH", help="its X.509 certificate (PEM or DER)")
    p.add_argument("--originator", metavar="EUI-64", help="Service User EUI-64 to sign as (default: who would send it)")
    p.add_argument("--roles", metavar="ROLES",
                   help="SEC roles of the originator when it is not a known test user, e.g. IS,GS")
    p.add_argument("--seed", type=int, metavar="N", default=1, help="fleet seed (same seed, same devices; default 1)")
    p.add_argument("--fleet-size", type=int, metavar="N", default=10_000,
                   help="installations in the fleet (default 10000)")
    p.add_argument("--pki", type=Path, metavar="DIR", help="test PKI folder (default: the shared cache)")
    p.add_argument("--command-variant", type=int, metavar="CV", help="CommandVariant (default: from the catalogue)")
    p.add_argument("--execution-datetime", metavar="DATETIME",
                   help="future-date the requests (xs:dateTime, e.g. 2030-01-15T09:00:00Z)")
    p.add_argument("--scheduled-variant", metavar="VARIANT", default="4.6.1",
                   help="for 5.1 Create Schedule: the SRV to schedule")
    p.set_defaults(handler=run)
    return p


def _factory(args: argparse.Namespace):  # noqa: ANN202 - a RequestFactory
    from dcc_capacity.duis.factory import RequestFactory, single_user_factory
    from dcc_capacity.duis.pki import DEFAULT_USERS, TestPKI, load_credential
    from dcc_capacity.model.fleet import Fleet

    fleet = Fleet(seed=args.seed, size=args.fleet_size)
    if (args.signing_key is None) != (args.signing_cert is None):
        raise InputError("give both --signing-key and --signing-cert (or neither, for the test PKI)",
                         key="signing-key" if args.signing_key is None else "signing-cert")
    if args.signing_key is not None:
        originator = args.originator.upper() if args.originator else None
        credential = load_credential(args.signing_key, args.signing_cert, originator)
        if not credential.eui:
            raise InputError("the certificate carries no EUI-64: give --originator", key="originator")
        roles = frozenset(r.strip().upper() for r in args.roles.split(",") if r.strip()) if args.roles else None
        if roles is None:
            roles = next((u.roles for u in DEFAULT_USERS if u.eui == credential.eui.upper()), None)
        if not roles:
            raise InputError(f"roles of Service User {credential.eui} are unknown: give --roles (e.g. IS,GS)",
                             key="roles")
        return single_user_factory(credential, fleet, roles=roles)
    return RequestFactory.from_pki(TestPKI.load_or_create(args.pki), fleet)


def _installation(fleet, info, rng: random.Random):  # noqa: ANN001, ANN202 - Fleet, TemplateInfo -> Installation
    """A random installation that has the device the SRV targets (a gas-only SRV needs a dual-fuel one)."""
    kinds = info.subject if info.targets == ("DCC",) else info.targets
    inst = fleet.sample(rng)
    for _ in range(1000):
        if inst.first_device(kinds) is not None:
            break
        inst = fleet.sample(rng)
    return inst


def _rtds_requests(args: argparse.Namespace, factory) -> list:  # noqa: ANN001 - RequestFactory
    """Requests built from the user's RTDS templates: one per template, or ``--count`` cycling through them."""
    from dcc_capacity.duis.rtds import build_from_rtds, load_rtds

    for flag, value in (("--execution-datetime", args.execution_datetime), ("--command-variant", args.command_variant)):
        if value is not None:
            raise InputError("not used with --from-rtds (the template says)", key=flag)
    found = load_rtds(args.from_rtds, None if args.variant == "all" else [args.variant])
    templates = [t for v in sorted(found, key=lambda s: [int(x) for x in s.split(".")]) for t in found[v]]
    if not templates:
        raise InputError(f"no RTDS template for SRV {args.variant}", file=args.from_rtds, key="--from-rtds")
    if args.variant == "all" and args.originator is None:
        # One request per template, skipping those none of our users may send (they would stop the batch).
        usable = [t for t in templates if any(r & t.srv.eligible_roles for r in factory.roles.values())]
        skipped = sorted({t.variant for t in templates} - {t.variant for t in usable})
        if skipped:
            print(f"skipped SRV {', '.join(skipped)}: none of the signing users holds an eligible role")
        templates = usable
    count = args.count if args.count is not None else len(templates)
    if count < 1 or not templates:
        raise InputError(f"must be at least 1 (got {count})", key="--count")
    return [(t.variant, build_from_rtds(factory, t, originator=args.originator), t.name)
            for t in (templates[i % len(templates)] for i in range(count))]


def run(args: argparse.Namespace) -> int:
    from dcc_capacity.duis.templates import template_info
    from dcc_capacity.model.catalogue import get_srv

    if args.from_rtds is not None and args.variant == "all":
        pass
    elif get_srv(args.variant) is None:
        raise InputError(f"'{args.variant}' is not a DUIS SRV variant", key="VARIANT")
    elif args.from_rtds is None:
        template_info(args.variant)  # names the templated variants when this one has none
    if args.from_rtds is None and args.count is None:
        args.count = 1
    if args.count is not None and args.count < 1:
        raise InputError(f"must be at least 1 (got {args.count})", key="--count")
    if args.fleet_size < 1:
        raise InputError(f"must be at least 1 (got {args.fleet_size})", key="--fleet-size")
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise InputError("exists and is not a folder", file=out, key="--out")
    factory = _factory(args)
    if args.from_rtds is not None:
        built = _rtds_requests(args, factory)
    else:
        rng = random.Random(args.seed)
        info = template_info(args.variant)
        built = [(args.variant, factory.build(args.variant, _installation(factory.fleet, info, rng),
                                              originator=args.originator,
                                              command_variant=args.command_variant,
                                              execution_datetime=args.execution_datetime,
                                              scheduled_variant=args.scheduled_variant), "")
                 for _ in range(args.count)]
    requests = [req for _, req, _ in built]
    try:
        out.mkdir(parents=True, exist_ok=True)
        width = max(4, len(str(len(built))))
        with (out / "requests.csv").open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            header = ["file", "request_id", "variant", "command_variant", "originator", "target", "path"]
            writer.writerow(header + (["rtds_template"] if args.from_rtds is not None else []))
            for n, (variant, req, source) in enumerate(built, start=1):
                name = f"{variant}_{n:0{width}d}.xml"
                (out / name).write_bytes(req.body)
                row = [name, req.request_id, req.variant, req.command_variant, req.originator, req.target, req.path]
                writer.writerow(row + ([source] if args.from_rtds is not None else []))
        signers = sorted({r.originator for r in requests})
        for eui in signers:
            pem = factory.signers[eui].credential.cert_pem()
            (out / f"signer-{eui.replace('-', '')}.pem").write_bytes(pem)
            if len(signers) == 1:
                (out / "signer.pem").write_bytes(pem)
    except OSError as exc:
        raise InputError(f"cannot write: {exc.strerror}", file=exc.filename or out, key="--out") from None
    what = "RTDS" if args.from_rtds is not None else args.variant
    print(f"wrote {len(requests)} signed {what} request(s) to {out} "
          f"(signed by {', '.join(signers)}; certificate: "
          f"{'signer.pem' if len(signers) == 1 else 'signer-<EUI>.pem'})")
    return 0
