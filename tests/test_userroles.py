"""The user-role model behind E1/E2: the DCC Boxed preset, users files, and the catalogue's role corrections."""

from __future__ import annotations

import csv
import json

import httpx
import pytest

from _duis_helpers import strip_signature
from _emulator_helpers import PKI_DIR, CallbackListener, pki, post, sign, signed_request, unsigned_request
from dcc_capacity.duis.factory import RequestFactory
from dcc_capacity.duis.responses import parse_response
from dcc_capacity.duis.userroles import load_users_file, role_model
from dcc_capacity.emulator import start_emulator
from dcc_capacity.errors import InputError
from dcc_capacity.model.catalogue import DCC_EUI, catalogue
from dcc_capacity.model.fleet import Fleet
from dcc_capacity.paths import data_dir

SUPPLIER_B = "90-B3-D5-1F-30-04-00-00"


def test_dcc_boxed_preset_is_the_default_and_reflects_its_test_users():
    model = role_model()
    assert model.preset == "dcc-boxed"
    assert model.roles("90-B3-D5-1F-30-01-00-00") == {"IS", "ES", "GS", "OU"}
    assert model.roles("90-B3-D5-1F-30-02-00-00") == {"ED", "GT"}
    assert {"IS", "GS", "OU", "RSA"} <= model.roles("90-B3-D5-1F-30-03-00-00")  # DCC Boxed's 2nd supplier + ours
    assert model.roles("90-B3-D5-1F-30-01-00-08") == {"LC"}  # DCC Boxed's Load Controller: 7.16's sender
    assert model.roles(DCC_EUI) == frozenset()  # the DCC is never a Service User
    assert model.roles("90-B3-D5-1F-30-09-00-00") is None
    assert all(u.source for u in model.users.values())
    assert role_model("suite").roles("90-B3-D5-1F-30-01-00-00") == {"IS", "GS"}


def test_users_file_overrides_the_preset(tmp_path):
    (tmp_path / "u.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    path = tmp_path / "users.csv"
    path.write_text("eui,roles,certificate,name\n90-b3-d5-1f-30-04-00-00,ES,,export only\n"
                    "90-B3-D5-1F-30-09-00-00,ED;GT,u.pem,DNO\n")
    model = role_model(users_file=path)
    assert model.roles(SUPPLIER_B) == {"ES"}
    assert model.roles("90-B3-D5-1F-30-09-00-00") == {"ED", "GT"}
    assert model.certificates() == [("90-B3-D5-1F-30-09-00-00", tmp_path / "u.pem")]


@pytest.mark.parametrize("text,message", [
    ("eui\n90-B3-D5-1F-30-04-00-00\n", "header needs eui,roles"),
    ("eui,roles\n90-B3-D5-1F-30-04\n", "is not an EUI-64"),
    ("eui,roles\n90-B3-D5-1F-30-04-00-00,XX\n", "unknown: XX"),
    ("eui,roles\n90-B3-D5-1F-30-04-00-00,\n", "none given"),
    (f"eui,roles\n{DCC_EUI},IS\n", "is the DCC"),
    ("eui,roles\n90-B3-D5-1F-30-04-00-00,IS\n90-B3-D5-1F-30-04-00-00,GS\n", "listed twice"),
    ("eui,roles,certificate\n90-B3-D5-1F-30-04-00-00,IS,nope.pem\n", "not found"),
])
def test_bad_users_file_names_file_and_line(tmp_path, text, message):
    path = tmp_path / "users.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=message) as err:
        load_users_file(path)
    assert str(path) in str(err.value)


def test_emulator_applies_the_users_file(tmp_path):
    """End to end: a users file that makes Supplier B export-only turns its 4.6.1 from accepted into E2."""
    path = tmp_path / "users.csv"
    path.write_text(f"eui,roles\n{SUPPLIER_B},ES\n")
    listener = CallbackListener()
    try:
        codes = []
        for users_file in (None, str(path)):
            cfg = {"port": 0, "pki_dir": str(PKI_DIR), "callback_url": listener.url,
                   "user_roles": {"file": users_file}}
            with start_emulator(cfg) as emu, httpx.Client(timeout=10) as client:
                req = signed_request("4.6.1", originator=SUPPLIER_B, body="<sr:RetrieveImportDailyReadLog/>")
                r = post(client, emu, "S", req)
                codes.append(parse_response(r.content).response_code)
    finally:
        listener.close()
    assert codes == ["I99", "E2"]


def test_a_bau_mix_naming_7_16_sends_it_from_the_load_controller():
    """The test PKI has a Load Controller (LC), so a generator holding every test user sends 7.16 from it (no
    installation user may), and the emulator with the DCC Boxed preset accepts it; the same 7.16 from the
    supplier is E2."""
    p = pki()
    factory = RequestFactory.from_pki(p, Fleet(seed=1, size=100))
    lc = factory.build("7.16", 5)
    assert (lc.originator, lc.command_variant) == ("90-B3-D5-1F-30-01-00-08", 4)
    assert p.credential(lc.originator).roles == {"LC"}
    body = lc.body.replace(lc.originator.encode(), b"90-B3-D5-1F-30-01-00-00", 1)
    from_supplier = sign(strip_signature(body), p.credential("90-B3-D5-1F-30-01-00-00"))
    listener = CallbackListener()
    try:
        with start_emulator({"port": 0, "pki_dir": str(PKI_DIR), "callback_url": listener.url}) as emu, \
                httpx.Client(timeout=10) as client:
            codes = [parse_response(post(client, emu, "T", b).content).response_code for b in (lc.body, from_supplier)]
    finally:
        listener.close()
    assert codes == ["I0", "E2"]


def test_a_request_from_the_dccs_own_eui_is_e1_and_answers_echo_the_version(tmp_path):
    """The DCC is not a Service User, whatever key signed it (here the test PKI's DCC key, which is trusted)."""
    p = pki()
    listener = CallbackListener()
    try:
        with start_emulator({"port": 0, "pki_dir": str(PKI_DIR), "callback_url": listener.url}) as emu, \
                httpx.Client(timeout=10) as client:
            body = sign(unsigned_request("11.2", originator=DCC_EUI, schema_version="5.4"), p.dcc)
            dcc = parse_response(post(client, emu, "S", body).content)
            ours = post(client, emu, "S", signed_request("11.2", schema_version="5.4"))
    finally:
        listener.close()
    assert dcc.response_code == "E1"
    assert b'schemaVersion="5.4"' in ours.content and parse_response(ours.content).response_code == "I99"


@pytest.mark.peer
def test_catalogue_is_the_dccs_matrix_plus_the_noted_corrections():
    """Every catalogue fact is duis-parser's DUIS request matrix, except the corrections listed (with sources) in
    srv_templates/catalogue_corrections.csv; a correction the matrix no longer needs fails here."""
    from peers import duis_parser

    matrix = {r["Service Reference Variant"]: r
              for r in json.loads((duis_parser() / "dist" / "duis-request-matrix.json").read_text())}
    with (data_dir("srv_templates") / "catalogue_corrections.csv").open(newline="") as fh:
        fixes = {(r["variant"], r["field"]): r for r in csv.DictReader(fh)}
    assert all(r["source"].strip() for r in fixes.values())
    cat = catalogue()
    assert set(cat) == set(matrix)
    for variant, srv in cat.items():
        m = matrix[variant]
        facts = {"service_reference": (m["Service Reference"], srv.reference),
                 "eligible_roles": (";".join(sorted(m["Eligible User Roles"])), ";".join(sorted(srv.eligible_roles))),
                 "critical": (m["Critical"] == "Yes", srv.critical),
                 "non_device": (m["Non-Device Request"] == "Yes", srv.non_device)}
        for name, (theirs, ours) in facts.items():
            fix = fixes.pop((variant, name), None)
            if fix is None:
                assert ours == theirs, (variant, name)
            else:
                assert theirs == ";".join(sorted(fix["matrix_value"].split(";"))) if name == "eligible_roles" \
                    else theirs == fix["matrix_value"], (variant, name, "the matrix changed: review the correction")
                assert str(ours) == ";".join(sorted(fix["catalogue_value"].split(";"))) if name == "eligible_roles" \
                    else ours == fix["catalogue_value"], (variant, name)
    assert not fixes, f"corrections for unknown facts: {sorted(fixes)}"
