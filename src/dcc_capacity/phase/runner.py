"""`phase run PLAN --out DIR`: every test of a plan, in order, each into its own run folder.

Why a subprocess per test (``python -m dcc_capacity run``): a test that
crashes, fails its NFRs or is cut off by its own time limit must not stop the
others, and each run then is exactly what a user would have got from ``run``
(same folder, same report, same exit status). Each child dies with this
process (``PR_SET_PDEATHSIG``), so killing ``phase run`` leaves no load behind.

Resumable: a run folder whose run.json says ``complete`` and which has its
summary.json is never rerun; any other folder (killed, failed, half written)
is moved to ``attempts/`` (kept for the audit trail) and the test runs again.
``phase.json`` records what happened to each test and is rewritten
atomically after every step, so a kill at any moment leaves it readable.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from dcc_capacity import __version__
from dcc_capacity.errors import InputError
from dcc_capacity.phase.plan import LoadedPlan, load_plan_file

__all__ = ["run_phase", "run_is_complete", "PHASE_FILE", "RUNS_DIR"]

PHASE_FILE = "phase.json"
RUNS_DIR = "runs"
SRC_DIR = Path(__file__).resolve().parents[2]


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _say(msg: str) -> None:
    print(f"dcc-capacity phase: {msg}", file=sys.stderr, flush=True)


def run_is_complete(folder: Path) -> bool:
    """A finished, valid run with its report: run.json ``complete`` and a summary.json not saying ``valid: false``.

    An INVALID run (its measurement cannot be trusted, e.g. the load generator fell behind) is no evidence,
    so a resumed phase runs it again.
    """
    try:
        run = json.loads((folder / "run.json").read_text())
        summary = json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError):
        return False
    return (isinstance(run, dict) and run.get("status") == "complete" and isinstance(summary, dict)
            and summary.get("valid") is not False)


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _catalogue_yaml(plan: LoadedPlan) -> str:
    """The phase catalogue as an NFR file (schema 2) every run is given with ``--nfr``."""
    cat = plan.catalogue
    doc = {"schema_version": 2,
           "nfrs": [n.model_dump(exclude_defaults=True) | {"id": n.id, "metric": n.metric} for n in cat.nfrs],
           "tests": [{"id": t.id, "name": t.name, "type": t.type, "nfr_ids": list(t.nfr_ids)} for t in cat.tests],
           "issue_thresholds": {int(k): int(v) for k, v in cat.issue_thresholds.items()}}
    if cat.issue_thresholds_source:
        doc["issue_thresholds_source"] = cat.issue_thresholds_source
    head = (f"# The NFR catalogue of phase {plan.model.phase}: {plan.nfr_path} with the tests of plan {plan.path}.\n"
            "# Written by `dcc-capacity phase run`; every run of the phase is judged against it.\n")
    return head + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=110)


def _manifest(plan: LoadedPlan, out: Path, previous: dict[str, Any] | None) -> dict[str, Any]:
    from dcc_capacity.model.provenance import plan_provenance
    from dcc_capacity.model.volume import load_plan

    vplan = load_plan(plan.profile_path)
    prov = plan_provenance(vplan, plan.profile_path)
    import hashlib

    doc = {
        "schema_version": 1,
        "phase": plan.model.phase, "capability": plan.model.capability, "sp": plan.model.sp,
        "plan": {"path": str(plan.path), "sha256": plan.sha256, "copy": "plan.yaml"},
        "profile": {"path": str(plan.profile_path), "sha256": hashlib.sha256(plan.profile_path.read_bytes())
                    .hexdigest(), "name": vplan.profile.name, "example": prov["example_profile"]},
        "nfr": {"path": str(plan.nfr_path), "sha256": hashlib.sha256(plan.nfr_path.read_bytes()).hexdigest(),
                "phase_catalogue": "nfr.yaml"},
        "sut_version": plan.model.sut_version,
        "versions": {"dcc_capacity": __version__, "python": sys.version.split()[0]},
        "inputs": prov["inputs"],
        "volume": {**vplan.to_dict(), "A7_rows": prov["A7_rows"]},
        "started": (previous or {}).get("started") or _now(),
        "tests": (previous or {}).get("tests") or {},
    }
    return doc


def run_phase(plan_path: str | Path, out: str | Path) -> int:
    """Run every test of the plan into ``out/runs/<run_id>``; return 0 when every test ran to completion.

    1: at least one test ended with failed NFRs (its folder is complete evidence nonetheless);
    3: at least one test did not complete (its folder is moved to attempts/ on the next run).
    """
    plan = load_plan_file(plan_path)
    out = Path(out)
    manifest_path = out / PHASE_FILE
    previous = None
    if manifest_path.exists():
        try:
            previous = json.loads(manifest_path.read_text())
        except ValueError:
            raise InputError("not a phase folder (phase.json is not JSON)", file=manifest_path) from None
        if previous.get("plan", {}).get("sha256") != plan.sha256:
            raise InputError("holds a phase of another plan (or this plan was edited since): use a new --out",
                             file=out, key="--out")
    elif out.exists() and any(out.iterdir()):
        raise InputError("exists, is not empty and is not a phase folder (no phase.json)", file=out, key="--out")
    (out / RUNS_DIR).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(plan.path, out / "plan.yaml")
    (out / "nfr.yaml").write_text(_catalogue_yaml(plan), encoding="utf-8")
    doc = _manifest(plan, out, previous)
    _write_json(manifest_path, doc)
    n = len(plan.tests)
    worst = 0
    env = {**os.environ, "PYTHONPATH": str(SRC_DIR) + (os.pathsep + os.environ["PYTHONPATH"]
                                                         if os.environ.get("PYTHONPATH") else "")}
    for k, test in enumerate(plan.tests, start=1):
        folder = out / RUNS_DIR / test.folder
        entry = doc["tests"].setdefault(test.folder, {"id": test.id, "attempts": 0})
        if run_is_complete(folder):
            _say(f"test {k} of {n}: {test.folder} ({test.id}) already complete, not rerun")
            entry.setdefault("status", "complete")
            worst = max(worst, 1 if entry.get("exit_code") == 1 else 0)
            continue
        if folder.exists():
            keep = out / "attempts" / f"{test.folder}.{entry['attempts']}"
            keep.parent.mkdir(exist_ok=True)
            if keep.exists():
                shutil.rmtree(keep)
            os.replace(folder, keep)
            entry.setdefault("earlier_attempts", []).append(str(keep.relative_to(out)))
            _say(f"test {k} of {n}: {test.folder}: an unfinished earlier attempt was moved to {keep}")
        argv = [*plan.argv[test.folder], "--nfr", str(out / "nfr.yaml"), "--out", str(folder)]
        if test.baseline:
            argv += ["--baseline", str(out / RUNS_DIR / test.baseline)]
        entry.update(attempts=entry["attempts"] + 1, started=_now(), status="running", argv=argv)
        entry.pop("ended", None)
        _write_json(manifest_path, doc)
        shown = " ".join(plan.argv[test.folder]) + (f" (baseline: {test.baseline})" if test.baseline else "")
        _say(f"test {k} of {n}: {test.folder} ({test.id}): dcc-capacity {shown}")
        t0 = time.monotonic()
        code = _run_child(argv, env)
        entry.update(ended=_now(), exit_code=code, wall_s=round(time.monotonic() - t0, 1),
                     status="complete" if run_is_complete(folder) else "not complete")
        _write_json(manifest_path, doc)
        verdict = {0: "all NFRs met", 1: "NFRs not met", 2: "bad input", 3: "the run failed"}.get(code, f"exit {code}")
        _say(f"test {k} of {n}: {test.folder} done in {entry['wall_s']:g} s: {verdict}")
        if code == 130:
            raise KeyboardInterrupt
        worst = max(worst, 3 if entry["status"] != "complete" else (1 if code else 0))
    doc["ended"] = _now()
    _write_json(manifest_path, doc)
    done = sum(1 for t in plan.tests if run_is_complete(out / RUNS_DIR / t.folder))
    _say(f"{done} of {n} tests complete; next: dcc-capacity phase report {out}")
    return worst


def _run_child(argv: list[str], env: dict[str, str]) -> int:
    """One ``dcc-capacity run``; a Ctrl-C reaches it too (same process group), and we wait for its report."""
    from dcc_capacity.orchestrate.resilience import die_with_parent

    proc = subprocess.Popen([sys.executable, "-m", "dcc_capacity", *argv], env=env, preexec_fn=die_with_parent)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        try:
            proc.wait(60)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            proc.kill()
            proc.wait()
        return 130
