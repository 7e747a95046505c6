"""`run --users-file` (or ``run.users_file``): the embedded emulator's access control uses the user's role model.

One short run with a users file. A Service User the file gives the roles its SRVs need
has every request accepted; one the file leaves without them has each SRV none of its roles may send refused
with E2 (role not permitted for the SRV), and only those. The users file replaces the DCC Boxed preset for the
EUIs it lists and leaves the rest.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from _lanes import background, cli
from dcc_capacity.duis.userroles import role_model
from dcc_capacity.load.records import load_records
from dcc_capacity.model.catalogue import get_srv

ROOT = Path(__file__).resolve().parents[1]
SUPPLIER_A, SUPPLIER_B = "90-B3-D5-1F-30-01-00-00", "90-B3-D5-1F-30-04-00-00"
# The roles are what is judged, not the generator's timing: a busy box must not make these runs INVALID.
RUN = ["--test", "load", "--rate", "30", "--duration", "4s", "--device-latency", "fast", "--fleet-size", "2000",
       "--max-send-lag", "1000"]


def _run(tmp_path: Path, users: dict[str, str], *, via_config: bool):  # noqa: ANN202 - a job (tests/_lanes.py)
    """One short run with ``users`` (EUI -> roles) as the users file: (originator, SRV, outcome) per request,
    the outcome "E2" or "accepted" (or another code)."""
    tmp_path.mkdir()
    rows = "".join(f"{eui},{roles},,\n" for eui, roles in users.items())
    (tmp_path / "users.csv").write_text("eui,roles,certificate,name\n" + rows)
    out = tmp_path / "run"
    if via_config:  # run.users_file, relative to the configuration's folder
        (tmp_path / "run.toml").write_text('[run]\nusers_file = "users.csv"\n')
        extra = ["--config", str(tmp_path / "run.toml")]
    else:
        extra = ["--users-file", str(tmp_path / "users.csv")]
    p = yield cli(["run", *RUN, *extra], out, timeout=100)
    assert p.returncode in (0, 1), p.stderr[-3000:]  # 1: refused requests fail the error-rate NFR
    emu = json.loads((out / "logs" / "emulator-config.json").read_text())
    assert emu["user_roles"]["file"] == str((tmp_path / "users.csv").resolve())
    req = load_records(out / "records")
    req = req[req["kind"] == "request"]
    codes = req["error"].where(req["error"] != "", req["response_code"])
    return [(rid.split(":")[0], variant, "accepted" if code in ("I0", "") else code)
            for rid, variant, code in zip(req["request_id"], req["srv_variant"], codes, strict=True)]


def _check(requests: list[tuple[str, str, str]], roles: dict[str, str]) -> dict[str, dict[str, int]]:
    """Every request is E2 exactly when its originator's roles (the users file's, else the DCC Boxed preset's)
    include none of the SRV's eligible roles; returns {originator: {outcome: requests}}."""
    model = role_model()
    held = {eui: frozenset(r.split(";")) for eui, r in roles.items()}
    wrong, counts = [], {}
    for eui, variant, outcome in requests:
        srv = get_srv(variant)
        assert srv is not None
        mine = held.get(eui, model.roles(eui) or frozenset())
        want = "accepted" if mine & srv.eligible_roles else "E2"
        if outcome != want:
            wrong.append((eui, variant, outcome, want))
        by = counts.setdefault(eui, {})
        by[outcome] = by.get(outcome, 0) + 1
    assert not wrong, wrong
    return counts


USERS = {SUPPLIER_A: "IS;GS", SUPPLIER_B: "ES"}


@pytest.mark.slow
@pytest.mark.timeout(300)
@background(lambda tmp: _run(tmp / "config", USERS, via_config=True))
def test_the_users_file_decides_which_supplier_may_send(background_run):
    """One run with ``run.users_file`` (the ``--users-file`` flag takes the same path: orchestrate/configmap.py
    ``_users_file``): Supplier A holds IS and GS (what its SRVs need), Supplier B only ES (few SRVs allow it);
    every EUI the file does not list (the other suppliers, the network operators) keeps the DCC Boxed preset's
    roles."""
    users = USERS
    a = _check(background_run, users)
    assert set(a[SUPPLIER_A]) == {"accepted"} and a[SUPPLIER_A]["accepted"] >= 20, a
    assert a[SUPPLIER_B].get("E2", 0) >= 20, a
    preset = [eui for eui in a if eui not in users]  # other senders, if the mix drew any in 4 s: preset roles
    assert all(set(a[eui]) == {"accepted"} for eui in preset), a


def test_a_bad_users_file_is_exit_2_naming_file_and_line(tmp_path):
    bad = tmp_path / "users.csv"
    bad.write_text("eui,roles\n90-B3-D5-1F-30-01-00-00,XX\n")
    p = subprocess.run([sys.executable, "-m", "dcc_capacity", "run", *RUN, "--users-file", str(bad),
                        "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=60, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "users.csv" in p.stderr and ":2" in p.stderr, p.stderr
    assert not (tmp_path / "run").exists()


def test_a_users_file_with_host_is_exit_2(tmp_path):
    """The users file sets the embedded emulator's roles; against a --host there is none to set."""
    users = tmp_path / "users.csv"
    users.write_text("eui,roles\n90-B3-D5-1F-30-01-00-00,IS\n")
    p = subprocess.run([sys.executable, "-m", "dcc_capacity", "run", *RUN, "--users-file", str(users),
                        "--host", "http://127.0.0.1:9", "--out", str(tmp_path / "run")], capture_output=True,
                       text=True, timeout=60, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert p.returncode == 2 and "Traceback" not in p.stderr and "--users-file" in p.stderr, p.stderr
