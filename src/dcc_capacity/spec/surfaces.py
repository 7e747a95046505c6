"""The run spec's three surfaces, generated from its fields: ``run`` flags, run-configuration keys, Locust options.

Every field of every test type's spec class (:mod:`dcc_capacity.testtypes.registry`) is one :class:`Knob`; a
field two types share (stress and scale both step) is declared once, in a shared base, so the knob is the same.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any, Literal

from pydantic import Field

from dcc_capacity.spec.model import Knob, SpecBase, check_bounds, knobs_of, parse_duration
from dcc_capacity.testtypes.registry import NAMES, TYPES, spec_class, validate_spec

__all__ = ["GROUPS", "add_flags", "all_knobs", "arg_kwargs", "config_fields", "help_text", "spec_from_args"]

GROUPS: dict[str | None, str | None] = {
    None: None, "test": None,
    "steps": "stress / scale steps",
    "type": "spike / catch-up / noisy neighbour",
    "measure": "response times and run validity (docs/measurement.md)",
    "verdict": "scenario verdict limits (run.json limits; docs/report.md \"Scenario sections\")",
    "safety": "safety ceilings (also safety.* in --config)",
}


def all_knobs() -> dict[str, Knob]:
    """Field name -> knob over every registered test type (``test`` without a default: the type chooses it)."""
    out: dict[str, Knob] = {}
    for t in TYPES.values():
        for name, k in knobs_of(t.spec).items():
            if name == "test":
                k = replace(k, default=None, choices=NAMES)
            prev = out.setdefault(name, k)
            if prev != k:
                raise TypeError(f"spec field {name!r} is declared differently by {t.name}: declare it once")
    return out


def help_text(k: Knob) -> str:
    """The knob's help line: its doc and its default as the flag or option writes it (the same on both)."""
    shown = k.text(k.default)
    if k.kind == "bool" or shown in (None, ""):
        return k.doc
    return f"{k.doc} (default {shown})"


def arg_kwargs(k: Knob, default: Any) -> dict[str, Any]:
    """argparse keywords of the knob's flag or Locust option: action or type, default, metavar."""
    if k.kind == "bool":
        return {"action": "store_true", "default": default}
    kw: dict[str, Any] = {"default": default}
    if k.kind == "int":
        kw["type"] = int
    elif k.kind == "float":
        kw["type"] = float
    if k.metavar:
        kw["metavar"] = k.metavar
    return kw


def add_flags(p: argparse.ArgumentParser) -> None:
    """The spec's ``dcc-capacity run`` flags (``--test`` required; the others default to the spec's defaults)."""
    groups: dict[str | None, Any] = {}
    for k in all_knobs().values():
        if not k.cli:
            continue
        title = GROUPS.get(k.group)
        if title is None:
            target: Any = p
        else:
            target = groups.get(k.group) or groups.setdefault(k.group, p.add_argument_group(title))
        if k.name == "test":
            target.add_argument("--test", required=True, metavar="|".join(NAMES), help="the test to run")
            continue
        target.add_argument(k.flag, dest=k.dest, help=help_text(k), **arg_kwargs(k, k.text(k.default)))


def spec_from_args(args: argparse.Namespace, **set_by_run: Any) -> SpecBase:
    """The spec of the parsed ``run`` flags (after the configuration filled what no flag gave)."""
    cls = spec_class(args.test)
    values: dict[str, Any] = {"test": args.test}
    for name, k in knobs_of(cls).items():
        if k.cli and name != "test" and hasattr(args, k.dest):
            values[name] = getattr(args, k.dest)
    values.update({k: v for k, v in set_by_run.items() if k in cls.model_fields})
    for name, k in all_knobs().items():  # another type's flag is not used, but a bad value is still exit 2
        v = getattr(args, k.dest, None)
        if name not in cls.model_fields and k.cli and v is not None and not isinstance(v, bool):
            check_bounds(k, parse_duration(v, k.flag) if k.kind == "duration" else v)
    return validate_spec(values)


def config_fields(section: str) -> dict[str, Any]:
    """pydantic field definitions for the run configuration's ``section`` (``run``, ``safety``, ``""``: top level).

    Every key is optional (None: not in the file, so the flag's default stands); bounds and choices are the
    spec's own, so a file and a flag refuse the same values.
    """
    out: dict[str, Any] = {}
    for k in all_knobs().values():
        if k.config is None or not k.cli:
            continue
        sec, _, leaf = k.config.rpartition(".")
        if sec != section:
            continue
        typ: Any
        if k.choices:
            typ = Literal[k.choices]  # type: ignore[valid-type]
        else:
            typ = {"bool": bool, "int": int, "float": float, "duration": str | float, "list": list[str] | str,
                   "str": str}[k.kind]
        bounds: dict[str, Any] = {}
        if k.kind in ("int", "float"):
            if k.lo is not None:
                bounds["gt" if k.lo_open else "ge"] = k.lo
            if k.hi is not None:
                bounds["le"] = k.hi
        out[leaf] = (typ | None, Field(default=None, description=k.doc, **bounds))
    return out
