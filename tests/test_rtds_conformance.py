"""Conformance with the DCC's Reference Test Data Set (RTDS): real Service User traffic nobody here wrote.

The RTDS (npm ``@smartdcc/duis-templates``, GPL-3.0, fetched at test time and never committed) holds ~300
DUIS requests, one or more per SRV and GBCS use case. Each is signed by DCC Boxed's own Sign tool (all in
one JVM: tests/java/SignMany.java), which looks the key up by the RequestID's originator and, as DCC
Boxed does, writes an epoch-millisecond counter. The signed requests go to the emulator with the official
DUIS V5.1 XSD on and with the structural checks, and DCC Boxed's test certificates trusted. Every template
a Service User sends must be accepted; every synchronous answer and asynchronous response must be valid
against the XSD, parse with the DCC's ``@smartdcc/duis-parser``, carry the payload type DUIS gives that
SRV, and echo the request's schemaVersion. The templates the emulator refuses on purpose are those the
DCC itself originates (E1, docs/emulator.md "The RTDS"). 7.16's two templates come from DCC Boxed's Load
Controller, which DCC Boxed's tool has no key for: they are signed by our own signer with the Load
Controller's key from the DCC's keystore for DCC Boxed (npm ``@smartdcc/dccboxed-keystore``, fetched at test
time too), keeping their Header, and its certificate is trusted like DCC Boxed's.
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from lxml import etree

from _emulator_helpers import PKI_DIR, CallbackListener, service_for
from dcc_capacity.duis.responses import parse_response
from dcc_capacity.emulator import start_emulator
from dcc_capacity.emulator.payloads import expected_payload
from dcc_capacity.model.catalogue import DCC_EUI, get_srv
from peers import (
    LOAD_CONTROLLER,
    keystore_credential,
    keystore_signing_entry,
    node_parse_many,
    rtds_templates,
    sign_many,
    sign_rtds_as,
)

pytestmark = [pytest.mark.peer, pytest.mark.quiet]  # Java beside a run would starve it (tests/_lanes.py)

_RID = re.compile(rb"<sr:RequestID>([^<]+)</sr:RequestID>")
_CV = re.compile(rb"<sr:CommandVariant>(\d)</sr:CommandVariant>")
_SRV = re.compile(rb"<sr:ServiceReferenceVariant>([^<]+)</sr:ServiceReferenceVariant>")
_VERSION = re.compile(rb'<sr:Request [^>]*schemaVersion="([^"]+)"')
FAST = {"device": {"mean_ms": 5}, "critical": {"mean_ms": 5}}
DCC_BOXED_CERTS = ("xml-sign-90B3D51F30010000-ds.pem", "xml-sign-90B3D51F30020000-ds.pem", "Z1-supplier2-ds.pem",
                   "dsp-xml-sign-90B3D51F30000002-ds.pem")
"""DCC Boxed's certificates for the RTDS originators: both test users, the second supplier, and the DSP."""


@dataclass
class Template:
    """One RTDS template as signed by DCC Boxed's tool."""

    name: str
    signed: bytes
    variant: str = ""
    cv: int = 0
    request_id: str = ""
    originator: str = ""
    version: str = ""

    def __post_init__(self) -> None:
        if self.signed:
            self.request_id = _RID.search(self.signed).group(1).decode()  # type: ignore[union-attr]
            self.cv = int(_CV.search(self.signed).group(1))  # type: ignore[union-attr]
            self.variant = _SRV.search(self.signed).group(1).decode()  # type: ignore[union-attr]
            self.version = _VERSION.search(self.signed).group(1).decode()  # type: ignore[union-attr]
            self.originator = self.request_id.split(":")[0].upper()


@dataclass
class Run:
    """What one emulator answered to every signed template: sync answers and callbacks, by template."""

    schema: bool
    sync: dict[str, bytes] = field(default_factory=dict)
    callbacks: dict[str, bytes] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    parsed: dict[str, dict] = field(default_factory=dict)


@pytest.fixture(scope="module")
def lc_cert(tmp_path_factory) -> Path:
    """The Load Controller's certificate from DCC Boxed's keystore, as a file to trust."""
    path = tmp_path_factory.mktemp("keystore") / "Z1-loadController-ds.pem"
    path.write_text(keystore_signing_entry(LOAD_CONTROLLER)["certificate"])
    return path


@pytest.fixture(scope="module")
def signed(sign_wrap, tmp_path_factory) -> dict[str, Template]:
    """Every RTDS template, signed by DCC Boxed's Sign in one JVM (name -> Template); the Load Controller's,
    which Sign has no key for (it writes nothing), by our signer with the keystore's LC key."""
    folder = rtds_templates()
    files = sorted(str(p) for p in folder.glob("*.XML"))
    assert len(files) == 297, f"RTDS 0.7.0 has 297 templates, found {len(files)}"
    # Two templates again with their own counters (DUIS counters are not 32-bit: 3 x 2^32 and 6 x 2^32), and two
    # that share the RTDS placeholder counter 1001, for the counter test; copies, so their signed names differ.
    keep_dir = tmp_path_factory.mktemp("rtds-keep")
    keep = []
    for name in ("CS01a_2.2_SUCCESS_REQUEST_DUIS.XML", "CS01b_2.2_SUCCESS_REQUEST_DUIS.XML",
                 "CS03B_8.7.2_SUCCESS_REQUEST_DUIS.XML", "CS03CNonCritical_8.7.2_SUCCESS_REQUEST_DUIS.XML"):
        shutil.copy(folder / name, keep_dir / f"keep-{name}")
        keep.append(f"keep:{keep_dir / f'keep-{name}'}")
    out = sign_many(sign_wrap, files + keep, tmp_path_factory.mktemp("rtds-signed"))
    unsigned = sorted(Path(f).name for f, data in out.items() if not data)
    assert unsigned == ["ECS47e_7.16_APC_INPUT_SUCCESS_REQUEST_DUIS.XML",
                        "ECS47e_7.16_APC_OUTPUT_SUCCESS_REQUEST_DUIS.XML"]  # Sign has no LC key
    for f in files:
        if not out[f]:
            out[f] = sign_rtds_as(Path(f), keystore_credential())
    return {Path(f.removeprefix("keep:")).name: Template(Path(f.removeprefix("keep:")).name, data)
            for f, data in out.items()}


def _main(signed: dict[str, Template]) -> list[Template]:
    """The RTDS templates in signing (= counter) order, without the counter-test copies."""
    return [t for name, t in signed.items() if not name.startswith("keep-")]


def _emulator_cfg(sign_wrap, listener: CallbackListener, schema: bool, lc_cert: Path) -> dict:
    return {"port": 0, "pki_dir": str(PKI_DIR), "callback_url": listener.url,
            "capacity": {"device_delay": FAST}, "throttle": {"enabled": False},
            "schema_path": str(sign_wrap.xsd) if schema else None,
            "trust_certs": [str(sign_wrap.unpacked / c) for c in DCC_BOXED_CERTS] + [str(lc_cert)]}


def _send_all(sign_wrap, templates: list[Template], schema: bool, folder: Path, lc_cert: Path) -> Run:
    """Send every signed template to a fresh emulator; wait for the callbacks; parse all answers with duis-parser."""
    run = Run(schema=schema)
    listener = CallbackListener()
    try:
        with start_emulator(_emulator_cfg(sign_wrap, listener, schema, lc_cert)) as emu, \
                httpx.Client(timeout=30) as client:
            for t in templates:
                if not t.signed:
                    continue
                r = client.post(emu.path(service_for(t.cv)), content=t.signed,
                                headers={"Content-Type": "application/xml"})
                run.sync[t.name] = r.content
            acked = sum(parse_response(b).response_code == "I99" for b in run.sync.values())
            bodies = listener.wait_for(acked, timeout=30)
    finally:
        listener.close()
    assert len(bodies) == acked, f"{acked} acknowledged, {len(bodies)} callbacks"
    by_rid = {t.request_id: t.name for t in templates if t.signed}
    for body in bodies:
        rid = parse_response(body).request_id
        run.callbacks[by_rid[rid]] = body
    for kind, answers in (("sync", run.sync), ("async", run.callbacks)):
        for name, body in answers.items():
            path = folder / f"{kind}-{name}"
            path.write_bytes(body)
            run.files[f"{kind}/{name}"] = path
    keys = list(run.files)
    for key, res in zip(keys, node_parse_many([run.files[k] for k in keys]), strict=True):
        run.parsed[key] = res
    return run


@pytest.fixture(scope="module", params=[True, False], ids=["xsd", "structural"])
def run(request, sign_wrap, signed, tmp_path_factory, lc_cert) -> Run:
    return _send_all(sign_wrap, _main(signed), request.param, tmp_path_factory.mktemp("rtds-answers"), lc_cert)


def _expected_refusal(t: Template) -> str | None:
    """Why the emulator refuses this template (the DUIS code), or None when it must accept it."""
    return "E1" if t.originator == DCC_EUI else None


def test_every_service_user_template_is_accepted(run, signed):
    templates = _main(signed)
    assert all(t.signed for t in templates)
    wrong = {}
    accepted = 0
    for t in templates:
        if not t.signed:
            continue
        code = parse_response(run.sync[t.name]).response_code
        want = _expected_refusal(t) or ("I99" if t.cv == 1 else "I0")
        if code != want:
            wrong[t.name] = f"{code} (want {want})"
        elif want in ("I0", "I99"):
            accepted += 1
            if want == "I99":
                final = parse_response(run.callbacks[t.name]).response_code
                if final != "I0":
                    wrong[t.name] = f"async {final}"
    assert not wrong, wrong
    service_user = [t for t in templates if t.originator != DCC_EUI]
    assert (accepted, len(service_user)) == (294, 294)  # every Service User template: 297 - 3 sent by the DCC (E1)
    assert {t.originator for t in service_user if t.variant == "7.16"} == {LOAD_CONTROLLER}


def test_dcc_originated_templates_are_refused_with_e1(run, signed):
    dcc = [t for t in _main(signed) if t.originator == DCC_EUI]
    assert sorted(t.variant for t in dcc) == ["11.2", "6.24.1", "8.12.2"]
    for t in dcc:
        assert parse_response(run.sync[t.name]).response_code == "E1", t.name


def test_every_answer_is_valid_against_the_official_schema(run, duis_xsd):
    bad = {}
    for key, path in run.files.items():
        doc = etree.parse(str(path))
        if not duis_xsd.validate(doc):
            bad[key] = str(duis_xsd.error_log.last_error)
    assert not bad, bad


def test_every_answer_parses_with_the_dccs_parser_and_carries_the_srvs_payload(run, signed):
    by_name = {t.name: t for t in _main(signed)}
    wrong = {}
    for key, res in run.parsed.items():
        kind, name = key.split("/", 1)
        t = by_name[name]
        if not res["ok"] or res["kind"] != "response":
            wrong[key] = res.get("error") or res["kind"]
            continue
        code = res["code"]
        if code not in ("I0", "I99"):
            continue  # refusals carry status only
        srv = get_srv(t.variant)
        assert srv is not None
        want = "NoBody" if code == "I99" else expected_payload(t.variant, t.cv, srv.non_device) or "NoBody"
        if res["payload"] != want:
            wrong[key] = f"{res['payload']} (want {want})"
        if res["requestId"].upper() != t.request_id.upper():
            wrong[key] = f"RequestID {res['requestId']} (sent {t.request_id})"
    assert not wrong, wrong


def test_answers_echo_the_requests_schema_version(run, signed):
    by_name = {t.name: t for t in _main(signed)}
    assert {t.version for t in by_name.values() if t.signed} == {"5.4"}
    for key, path in run.files.items():
        version = etree.parse(str(path)).getroot().get("schemaVersion")
        assert version == by_name[key.split("/", 1)[1]].version, key


def test_rtds_counters_are_handled(sign_wrap, signed, lc_cert):
    """The RTDS's own counters: 3 x 2^32 and 6 x 2^32 (2.2 Top Up) are accepted; its placeholder 1001, shared by
    many templates of one originator, is a replay the second time (the RTDS counters are placeholders, which is
    why DCC Boxed's Sign rewrites them)."""
    a, b = signed["keep-CS01a_2.2_SUCCESS_REQUEST_DUIS.XML"], signed["keep-CS01b_2.2_SUCCESS_REQUEST_DUIS.XML"]
    first = signed["keep-CS03B_8.7.2_SUCCESS_REQUEST_DUIS.XML"]
    dup = signed["keep-CS03CNonCritical_8.7.2_SUCCESS_REQUEST_DUIS.XML"]
    assert a.request_id.endswith(":12884901888") and b.request_id.endswith(":25769803776")
    assert first.request_id.split(":")[2] == dup.request_id.split(":")[2] == "1001"
    listener = CallbackListener()
    try:
        with start_emulator(_emulator_cfg(sign_wrap, listener, False, lc_cert)) as emu, \
                httpx.Client(timeout=30) as client:
            codes = [parse_response(client.post(emu.path(service_for(t.cv)), content=t.signed).content).response_code
                     for t in (first, dup, a, b)]
            time.sleep(0.05)
    finally:
        listener.close()
    assert codes == ["I99", "E44", "I99", "I99"]


def test_7_16_is_the_load_controllers_alone(sign_wrap, lc_cert):
    """DCC Boxed preset, XSD on: the RTDS's 7.16 (both) from the Load Controller, signed with its keystore key, are
    accepted; the same 7.16 from DCC Boxed's supplier (its published key) is E2, and so is a 4.6.1 from the Load
    Controller (LC is eligible for 7.16 only). The LC's 4.6.1 goes first: its RTDS counter is below 9001."""
    from dcc_capacity.duis.pki import load_credential

    folder = rtds_templates()
    supplier = load_credential(sign_wrap.user_key(), sign_wrap.user_cert())
    out_716 = folder / "ECS47e_7.16_APC_OUTPUT_SUCCESS_REQUEST_DUIS.XML"
    requests = [sign_rtds_as(folder / "GCS16a_4.6.1_SUCCESS_REQUEST_DUIS.XML", keystore_credential(), LOAD_CONTROLLER),
                sign_rtds_as(out_716, keystore_credential()),
                sign_rtds_as(folder / "ECS47e_7.16_APC_INPUT_SUCCESS_REQUEST_DUIS.XML", keystore_credential()),
                sign_rtds_as(out_716, supplier, supplier.eui)]
    listener = CallbackListener()
    try:
        with start_emulator(_emulator_cfg(sign_wrap, listener, True, lc_cert)) as emu, \
                httpx.Client(timeout=30) as client:
            codes = [parse_response(client.post(emu.path(service_for(int(_CV.search(r).group(1)))),  # type: ignore[union-attr]
                                                content=r).content).response_code for r in requests]
    finally:
        listener.close()
    assert supplier.eui == "90-B3-D5-1F-30-01-00-00"
    assert codes == ["E2", "I0", "I0", "E2"]
