"""The test plan of one System Capacity Test Phase (YAML), validated like profiles.

Why a plan file: the Test Assurance Board judges a phase (IOC, MOC, FOC) from
one completion report, not from loose run folders. The plan is the SP's test
specification for the phase (SCTAD 4.2: "all planned tests ... have been
executed"): the profile and NFR catalogue every run shares, the SCTAD 4.1
entry criteria with who confirmed each and when, and each test with its id,
the NFRs it proves and the ``dcc-capacity run`` options that execute it.

Every mistake is one :class:`~dcc_capacity.errors.InputError` naming the
file, the line and the key (exit 2), including a bad ``run`` option, which is
checked here with ``run``'s own argument parser, before any load is sent.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field

from dcc_capacity.config.validation import validate
from dcc_capacity.config.yamlsource import YamlSource, load_yaml
from dcc_capacity.errors import InputError
from dcc_capacity.model.cpmigration import cp_nfr_path
from dcc_capacity.model.nfr import TEST_TYPES as _TYPES
from dcc_capacity.model.nfr import NfrCatalogue, TestDef, default_nfr_path, load_catalogue

__all__ = ["PhasePlan", "PlanTest", "LoadedPlan", "load_plan_file", "run_argv", "FORBIDDEN_RUN_OPTIONS",
           "EntryCriterion", "RemovedTest"]

SCHEMA_VERSION = 1
_ID = r"[A-Za-z0-9][A-Za-z0-9_.-]*"

FORBIDDEN_RUN_OPTIONS = {
    "out": "the phase gives every test its own run folder",
    "test_id": "the test's id is the plan's `id`",
    "nfr": "the phase's NFR catalogue is the plan's `nfr`",
    "profile": "the phase's profile is the plan's `profile`",
    "sp": "the phase's Service Provider is the plan's `sp`",
    "web": "a phase runs headless", "web_port": "a phase runs headless", "web_linger": "a phase runs headless",
    "baseline": "give `baseline: <run_id>` on the test, not under `run`",
}
"""``run`` options a plan may not set inside ``run`` (the phase sets them) and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EntryCriterion(_Strict):
    """One SCTAD 4.1 entry criterion and its confirmation (who, when); unconfirmed ones are a risk."""

    id: str = Field(pattern=_ID)
    text: str = Field(min_length=1)
    source: str = ""
    confirmed_by: str | None = None
    confirmed_at: Annotated[dt.date, Field(strict=False)] | Annotated[dt.datetime, Field(strict=False)] | None = None
    evidence: str = ""


class RemovedTest(_Strict):
    """A planned test removed with the Test Assurance Board's approval (SCTAD 4.2, third exit criterion)."""

    id: str = Field(pattern=_ID)
    approved_by: str = Field(min_length=1)
    approved_at: Annotated[dt.date, Field(strict=False)] | None = None
    reason: str = ""


class PlanTest(_Strict):
    """One test of the plan: the catalogue test it is evidence for and the run that executes it."""

    id: str = Field(pattern=_ID)
    """Test id (the catalogue's scheme, e.g. LOAD): run.json ``test_id``, the matrix and ``#test-<id>``."""
    run_id: str | None = Field(default=None, pattern=_ID)
    """Name of this run (its folder under runs/); default ``id``. A test with several runs needs one each."""
    name: str = ""
    nfr_ids: list[str] | None = None
    """The NFRs this test proves; default: the catalogue's test of the same id."""
    baseline: str | None = None
    """``run_id`` of an earlier test of the plan to compare with (``run --baseline``), e.g. the baseline pair."""
    run: dict[str, Any] = Field(default_factory=dict)
    """``dcc-capacity run`` options without dashes: ``{test: load, slot: night, duration: 5s, rate: 20}``."""

    @property
    def folder(self) -> str:
        return self.run_id or self.id


class PhasePlan(_Strict):
    """The whole plan file (schema_version 1; docs/phase.md)."""

    schema_version: Literal[1]
    phase: str = Field(min_length=1)
    capability: Literal["IOC", "MOC", "FOC"]
    sp: Literal["DSP", "S1SP", "DCO", "CP"]
    profile: str = Field(min_length=1)
    nfr: str | None = None
    sut_version: str = ""
    """Version of the system under test (the embedded emulator: the suite's own); compared between phases."""
    entry_criteria: list[EntryCriterion] = Field(default_factory=list)
    defaults: dict[str, Any] = Field(default_factory=dict)
    """``run`` options every test gets unless its own ``run`` sets them (e.g. a short ``duration``)."""
    tests: list[PlanTest] = Field(min_length=1)
    removed_tests: list[RemovedTest] = Field(default_factory=list)


@dataclass
class LoadedPlan:
    """A validated plan with everything resolved: absolute paths, the phase catalogue, each test's argv."""

    path: Path
    sha256: str
    model: PhasePlan
    src: YamlSource
    profile_path: Path
    nfr_path: Path
    catalogue: NfrCatalogue
    """The NFR catalogue with the plan's tests merged in: what every run of the phase is judged against."""
    argv: dict[str, list[str]]
    """run_id -> ``dcc-capacity run`` arguments (without ``--out``, ``--baseline``)."""

    @property
    def tests(self) -> list[PlanTest]:
        return self.model.tests

    def line_of(self, key: str) -> int | None:
        return self.src.line_of(key)


class _Raise(argparse.ArgumentParser):
    """``run``'s parser, raising instead of exiting, so a plan's bad option becomes a plan error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ValueError(message)

    def exit(self, status: int = 0, message: str | None = None) -> None:  # type: ignore[override]
        raise ValueError(message or f"exit {status}")


def _run_parser() -> argparse.ArgumentParser:
    from dcc_capacity.cli import run as run_cli

    top = _Raise(prog="dcc-capacity")
    sub = top.add_subparsers(dest="command", parser_class=_Raise)
    return run_cli.add_parser(sub, "")


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {a.dest: a for a in parser._actions if a.option_strings and a.dest != "help"}


def run_argv(options: dict[str, Any], actions: dict[str, argparse.Action]) -> list[str]:
    """``{test: load, rate: 20, normal: true}`` -> ``["--test", "load", "--rate", "20", "--normal"]``."""
    argv: list[str] = []
    for key, value in options.items():
        action = actions[key.replace("-", "_")]
        flag = action.option_strings[-1] if action.option_strings[-1].startswith("--") else action.option_strings[0]
        if isinstance(action, argparse._StoreTrueAction):
            if value is True:
                argv.append(flag)
            elif value is not False:
                raise ValueError(f"true or false (got {value!r})")
            continue
        if isinstance(value, (dict, list)) or value is None:
            raise ValueError(f"a single value (got {value!r})")
        argv += [flag, str(value).lower() if isinstance(value, bool) else str(value)]
    return argv


def _resolve(base: Path, value: str, what: str, src: YamlSource, key: str) -> Path:
    """A path relative to the plan file; a bare ioc/moc/foc (profile) names the shipped example."""
    from dcc_capacity.paths import data_dir

    p = Path(value).expanduser()
    if not p.is_absolute():
        p = base / p
    if not p.is_file() and what == "profile" and value.lower() in ("ioc", "moc", "foc"):
        p = data_dir("volume_profiles") / f"{value.lower()}.yaml"
    if not p.is_file():
        raise src.error(key, f"no such file {value!r} (paths are relative to the plan file)")
    return p.resolve()


def _merged_catalogue(plan: PhasePlan, catalogue: NfrCatalogue, src: YamlSource) -> NfrCatalogue:
    """The catalogue's tests, each plan test's NFRs taking precedence, plus tests only the plan names."""
    nfr_ids = {n.id for n in catalogue.nfrs}
    tests: dict[str, TestDef] = {t.id: t for t in catalogue.tests}
    given: dict[str, tuple[str, ...]] = {}
    for i, t in enumerate(plan.tests):
        key = f"tests[{i}]"
        for j, ref in enumerate(t.nfr_ids or []):
            if ref not in nfr_ids:
                raise src.error(f"{key}.nfr_ids[{j}]", f"unknown NFR {ref!r} (not in the NFR catalogue)")
        test_type = str(t.run.get("test", ""))
        if t.nfr_ids is not None:
            ids = tuple(t.nfr_ids)
            if t.id in given and given[t.id] != ids:
                raise src.error(f"{key}.nfr_ids", f"test {t.id} is given other nfr_ids by an earlier run of it")
            given[t.id] = ids
        if t.id in tests:
            old = tests[t.id]
            tests[t.id] = TestDef(id=t.id, name=t.name or old.name, type=old.type,
                                  nfr_ids=given.get(t.id, old.nfr_ids))
        else:
            if t.nfr_ids is None:
                raise src.error(f"{key}.nfr_ids", f"test {t.id} is not in the NFR catalogue: give the NFRs it proves")
            kind = test_type if test_type in _TYPES else "load"  # one of TestDef.type's Literal values
            tests[t.id] = TestDef(id=t.id, name=t.name, type=cast(Any, kind), nfr_ids=given[t.id])
    return NfrCatalogue(schema_version=2, nfrs=list(catalogue.nfrs), tests=list(tests.values()),
                        issue_thresholds=dict(catalogue.issue_thresholds),
                        issue_thresholds_source=catalogue.issue_thresholds_source)




def load_plan_file(path: str | Path, base: Path | None = None) -> LoadedPlan:
    """Read and validate a phase plan; any problem is one InputError naming file, line and key.

    ``base``: the folder its relative paths are relative to (default: the plan's own), so a phase folder's
    copy of a plan resolves its profile as the original did.
    """
    from dcc_capacity.testtypes.registry import NAMES as TESTS

    src = load_yaml(path)
    if not isinstance(src.data, dict):
        raise src.error(None, "must be a mapping with schema_version, phase, capability, sp, profile and tests")
    plan = validate(PhasePlan, src, hint=lambda key, kind, value: (
        f"must be {SCHEMA_VERSION} (this suite reads plan schema {SCHEMA_VERSION})" if key == "schema_version"
        else None))
    plan_path = src.path if src.path is not None else Path(path)  # read from a file: its path
    base = base or plan_path.resolve().parent
    profile = _resolve(base, plan.profile, "profile", src, "profile")
    from dcc_capacity.model.profiles import load_profile

    prof = load_profile(profile)  # its own errors name the profile file
    if prof.capability != plan.capability:
        raise src.error("capability", f"{plan.capability} but the profile {profile.name} is for {prof.capability}")
    # No `nfr`: the shipped catalogue; a CP phase's is the CP's own (its migration NFRs, docs/running.md "CP mode")
    nfr_path = (_resolve(base, plan.nfr, "nfr", src, "nfr") if plan.nfr
                else cp_nfr_path() if plan.sp == "CP" else default_nfr_path())
    catalogue = _merged_catalogue(plan, load_catalogue(nfr_path), src)

    parser = _run_parser()
    actions = _options(parser)
    argv: dict[str, list[str]] = {}
    seen: dict[str, int] = {}
    for key_name, options in [("defaults", plan.defaults)] + [(f"tests[{i}].run", t.run)
                                                              for i, t in enumerate(plan.tests)]:
        for opt in options:
            dest = opt.replace("-", "_")
            if dest in FORBIDDEN_RUN_OPTIONS:
                raise src.error(f"{key_name}.{opt}", f"not allowed here: {FORBIDDEN_RUN_OPTIONS[dest]}")
            if dest not in actions:
                near = sorted(d for d in actions if d not in FORBIDDEN_RUN_OPTIONS)
                raise src.error(f"{key_name}.{opt}", f"unknown run option (allowed: {', '.join(near)})")
    for i, t in enumerate(plan.tests):
        key = f"tests[{i}]"
        if t.folder in seen:
            raise src.error(f"{key}.run_id" if t.run_id else f"{key}.id",
                            f"run {t.folder!r} is already tests[{seen[t.folder]}]: give each run of a test its "
                            "own run_id")
        seen[t.folder] = i
        if t.baseline is not None and (t.baseline not in seen or seen[t.baseline] == i):
            raise src.error(f"{key}.baseline", f"{t.baseline!r} is not the run_id of an earlier test of the plan")
        options = {**plan.defaults, **t.run}
        test = options.get("test")
        if test not in TESTS:
            raise src.error(f"{key}.run.test", f"must be one of {', '.join(TESTS)} (got {test!r})")
        if not re.fullmatch(_ID, t.folder):
            raise src.error(f"{key}.id", "letters, digits, '.', '_' or '-' only")
        try:
            args = run_argv(options, actions)
            for name in ("config",):
                if name in options:
                    cfg = _resolve(base, str(options[name]), name, src, f"{key}.run.{name}")
                    args[args.index("--config") + 1] = str(cfg)
            full = ["run", *args, "--profile", str(profile), "--sp", plan.sp, "--test-id", t.id, "--out", "x"]
            ns = parser.parse_args(full[1:])
            from dcc_capacity.spec.model import parse_duration

            for dur in ("duration", "step_duration"):
                value = getattr(ns, dur)
                parse_duration(getattr(value, "value", value), f"--{dur.replace('_', '-')}")
        except InputError as exc:
            raise src.error(f"{key}.run", exc.detail if exc.key is None else f"{exc.key}: {exc.detail}") from None
        except ValueError as exc:
            raise src.error(f"{key}.run", str(exc).strip()) from None
        argv[t.folder] = full[:-2]
    for i, r in enumerate(plan.removed_tests):
        if r.id not in {x.id for x in catalogue.tests}:
            raise src.error(f"removed_tests[{i}].id", f"{r.id!r} is not a test of the catalogue or the plan")
    sha = hashlib.sha256(plan_path.read_bytes()).hexdigest()
    return LoadedPlan(path=plan_path.resolve(), sha256=sha, model=plan, src=src, profile_path=profile,
                      nfr_path=Path(nfr_path).resolve(), catalogue=catalogue, argv=argv)
