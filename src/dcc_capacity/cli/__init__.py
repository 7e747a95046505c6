"""`dcc-capacity` command line: one sub-module per sub-command.

Each sub-module exposes ``add_parser(subparsers)`` and ``run(args) -> int``.
Sub-modules are imported lazily so ``dcc-capacity plan`` does not pay for
Locust's gevent patching. Every :class:`~dcc_capacity.errors.InputError`
becomes one line on stderr and exit status 2; never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from dcc_capacity.errors import DccCapacityError, InputError

__all__ = ["main", "COMMANDS"]

COMMANDS: dict[str, str] = {
    "plan": "Tables A5-A7 and per-class target rates from a volume profile",
    "render": "signed sample DUIS requests and the signer certificate",
    "emulator": "the embedded system under test (DUIS gateway, callbacks, SFTP for CP)",
    "run": "a load, stress, soak, spike, catch-up or noisy-neighbour test",
    "report": "the HTML evidence report from a run folder",
    "phase": "a whole test phase: run a plan, its completion report, compare two phases",
}


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on bad options already; keep its message one clear line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def _build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    from dcc_capacity import __version__

    parser = _Parser(prog="dcc-capacity", description="SCTAD System Capacity Testing on Locust.")
    parser.add_argument("--version", action="version", version=f"dcc-capacity {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    # Only import the sub-command actually asked for (fast start, no gevent for `plan`).
    wanted = next((a for a in argv if a in COMMANDS), None)
    for name, help_text in COMMANDS.items():
        if wanted is not None and name != wanted:
            sub.add_parser(name, help=help_text)
            continue
        module = _load(name)
        if module is None:
            sub.add_parser(name, help=help_text + " (not available in this build)")
        else:
            module.add_parser(sub, help_text)
    return parser


def _load(name: str):  # noqa: ANN202 - a module or None
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"{__name__}.{name}":
            return None
        raise


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dcc-capacity`` console script."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = _build_parser(args_list)
    args = parser.parse_args(args_list)
    if not args.command:
        parser.print_help()
        return 2
    handler = getattr(args, "handler", None)
    if handler is None:
        print(f"dcc-capacity: '{args.command}' is not available in this build", file=sys.stderr)
        return 2
    try:
        return int(handler(args) or 0)
    except InputError as exc:
        print(f"dcc-capacity {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except DccCapacityError as exc:
        print(f"dcc-capacity {args.command}: failed: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"dcc-capacity {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
