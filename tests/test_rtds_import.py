"""`render --from-rtds`: the user's own copy of the DCC's RTDS as extra request templates, with our signing.

Every RTDS template a user can send is imported through the CLI, signed with DCC Boxed's published test
user key, and must then pass DCC Boxed's own Validate (one JVM for all), validate against the official
XSD, and be accepted by the emulator (with the XSD on) under our RequestIDs and counters.
"""

from __future__ import annotations

import csv

import httpx
import pytest
from lxml import etree

from _duis_helpers import DCC_BOXED_USER, validate_many
from _emulator_helpers import PKI_DIR, CallbackListener
from dcc_capacity.duis.responses import parse_response
from dcc_capacity.duis.rtds import load_rtds
from dcc_capacity.emulator import start_emulator
from dcc_capacity.errors import InputError
from dcc_capacity.model.catalogue import ROLES
from peers import rtds_templates

pytestmark = [pytest.mark.peer, pytest.mark.quiet]  # Java beside a run would starve it (tests/_lanes.py)


@pytest.fixture(scope="module")
def imported(sign_wrap, tmp_path_factory):
    """``dcc-capacity render all --from-rtds`` over the whole RTDS, signed as DCC Boxed's test user."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("rtds-import")
    proc = subprocess.run([sys.executable, "-m", "dcc_capacity", "render", "all", "--from-rtds",
                           str(rtds_templates().parent), "--signing-key", str(sign_wrap.user_key()),
                           "--signing-cert", str(sign_wrap.user_cert()), "--roles", ",".join(ROLES), "--out",
                           str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    with (out / "requests.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return out, rows


def test_every_sendable_template_is_imported(imported):
    _, rows = imported
    assert len(rows) == 297  # every template: the user holds every role, LC (7.16's) included
    assert {r["originator"] for r in rows} == {DCC_BOXED_USER}
    counters = [int(r["request_id"].rsplit(":", 1)[1]) for r in rows]
    assert counters == sorted(counters) and len(set(counters)) == len(counters)  # ours, not the RTDS placeholders
    assert all(r["rtds_template"].endswith("_REQUEST_DUIS.XML") for r in rows)


def test_imported_requests_pass_dcc_boxed_validate_and_the_xsd(imported, sign_wrap, duis_xsd):
    out, rows = imported
    paths = [out / r["file"] for r in rows]
    bad = [p.name for p in paths if not duis_xsd.validate(etree.parse(str(p)))]
    assert not bad
    # DCC Boxed's Validate (schema + signature) on one request per SRV: its cost is per file, ~30 ms.
    first = {}
    for r in rows:
        first.setdefault(r["variant"], out / r["file"])
    assert len(first) == 129
    results = validate_many(sign_wrap, list(first.values()))
    assert results == {str(p): "SUCCESS" for p in first.values()}


def test_emulator_accepts_every_imported_request(imported, sign_wrap, tmp_path):
    """With a users file giving DCC Boxed's user every role (a real configuration's way to say who may send what)."""
    out, rows = imported
    users = tmp_path / "users.csv"
    users.write_text(f"eui,roles,certificate\n{DCC_BOXED_USER},{';'.join(ROLES)},{sign_wrap.user_cert()}\n")
    listener = CallbackListener()
    try:
        cfg = {"port": 0, "pki_dir": str(PKI_DIR), "callback_url": listener.url, "schema_path": str(sign_wrap.xsd),
               "throttle": {"enabled": False}, "user_roles": {"file": str(users)}}
        with start_emulator(cfg) as emu, httpx.Client(timeout=30) as client:
            codes = {r["file"]: parse_response(client.post(emu.url + r["path"],
                                                           content=(out / r["file"]).read_bytes()).content
                                               ).response_code for r in rows}
    finally:
        listener.close()
    want = {r["file"]: "I99" if r["command_variant"] == "1" else "I0" for r in rows}
    assert codes == want


def test_from_rtds_bad_input_names_the_folder_or_file(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no RTDS request templates") as err:
        load_rtds(empty)
    assert str(empty) in str(err.value)
    (empty / "X_4.6.1_REQUEST_DUIS.XML").write_text("<not-duis/>")
    with pytest.raises(InputError, match="X_4.6.1_REQUEST_DUIS.XML: root element is not sr:Request"):
        load_rtds(empty)
    with pytest.raises(InputError, match="not a folder"):
        load_rtds(tmp_path / "missing")
