"""Shared helpers for the DUIS request tests (imported by name; conftest.py is not ours to edit)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from lxml import etree

from dcc_capacity.duis.factory import RequestFactory, single_user_factory
from dcc_capacity.duis.pki import load_credential
from dcc_capacity.duis.requestid import RequestIdAllocator
from dcc_capacity.duis.schema import load_schema
from dcc_capacity.model.catalogue import ROLES
from dcc_capacity.model.fleet import Fleet

JAVA_HARNESS = Path(__file__).parent / "java" / "ValidateMany.java"
DCC_BOXED_USER = "90-B3-D5-1F-30-01-00-00"
SECMP0192_SCHEDULED = ("4.3", "4.4.3")
"""Scheduled variants the official V5.1 schema does not list yet (SECMP0192 adds them)."""


def dcc_boxed_factory(sign_wrap, fleet: Fleet) -> RequestFactory:
    """Signs as DCC Boxed's test user 90-B3-D5-1F-30-01-00-00 with its published key.

    Roles are widened to every role: this checks schema and signature conformance with DCC Boxed's
    Validate for every template, not access control (tested separately).
    """
    cred = load_credential(sign_wrap.user_key(), sign_wrap.user_cert(), DCC_BOXED_USER)
    return single_user_factory(cred, fleet, roles=frozenset(ROLES), allocator=RequestIdAllocator(slot=8))


def installations_for(fleet: Fleet, count: int = 3) -> list[int]:
    """A few installation indexes covering prepay/credit, dual/electricity-only, SMETS1/SMETS2."""
    wanted: dict[tuple[bool, bool, int], int] = {}
    for inst in fleet:
        wanted.setdefault((inst.prepay, inst.dual_fuel, inst.smets), inst.index)
        if len(wanted) == 8:
            break
    return sorted(wanted.values())[: max(count, 1) * 3]


def strip_signature(signed: bytes) -> bytes:
    """The canonical unsigned bytes a signed request was made from (declaration and Signature removed)."""
    doc = signed.split(b"\n", 1)[1]
    return doc[: doc.index(b"<ds:Signature")] + b"</sr:Request>"


def signxml_verify(signed: bytes, cert_pem: bytes) -> None:
    """Verify with signxml, allowing exactly what DUIS uses (raises on any failure)."""
    from signxml import SignatureConfiguration, SignatureMethod, XMLVerifier

    config = SignatureConfiguration(signature_methods=frozenset({SignatureMethod.ECDSA_SHA256}))
    XMLVerifier().verify(signed, x509_cert=cert_pem.decode(), expect_config=config)


def validate_many(sign_wrap, paths: list[Path]) -> dict[str, str]:
    """DCC Boxed's Validate on many files in one JVM: {path: ResultCode name}."""
    java = shutil.which("java")
    assert java, "Java is needed to run DCC Boxed's Validate"
    proc = subprocess.run([java, "-cp", str(sign_wrap.jar), str(JAVA_HARNESS), *map(str, paths)],
                          capture_output=True, text=True, timeout=300)
    results = dict(re.findall(r"^@@RESULT (.+) (\w+)$", proc.stdout, flags=re.M))
    assert len(results) == len(paths), proc.stderr[-2000:]
    return results


def secmp0192_schema(sign_wrap, folder: Path) -> etree.XMLSchema:
    """The official schema with SECMP0192's extension of 5.1: 4.3 and 4.4.3 may be DSP-scheduled.

    SECMP0192 (4.1.1) says the DUIS schema "will need to be modified to add SRV 4.3 and SRV 4.4.3 to
    the list of Service Requests accepted by SRV 5.1". This overlay does exactly that and nothing else,
    so the 5.1 template's SECMP0192 branches are checked against everything else in the real schema.
    """
    src = sign_wrap.xsd.parent
    for name in ("MMC Schema V5.1.xsd", "xmldsig-core-schema.xsd", "XMLSchema.dtd", "datatypes.dtd"):
        if (src / name).exists():
            shutil.copy(src / name, folder / name)
    text = sign_wrap.xsd.read_text(encoding="utf-8")
    ref = '<xs:simpleType name="DSPScheduledServiceReference">\n        <xs:restriction base="xs:string">'
    var = '<xs:simpleType name="DSPScheduledServiceReferenceVariant">\n        <xs:restriction base="xs:string">'
    block = '<xs:element name="DSPRecordNetworkDataGAS" type="sr:RecordNetworkDataGAS"/>'
    for needle in (ref, var, block):
        assert text.count(needle) == 1, needle
    text = text.replace(ref, ref + '<xs:enumeration value="4.3"/><xs:enumeration value="4.4"/>')
    text = text.replace(var, var + '<xs:enumeration value="4.3"/><xs:enumeration value="4.4.3"/>')
    text = text.replace(block, block + '<xs:element name="DSPReadInstantaneousPrepayValues" type="sr:DSPReadData"/>'
                        '<xs:element name="DSPRetrieveBillingCalendarTriggeredBillingDataLog"'
                        ' type="sr:ReadLogPeriodOffset"/>')
    path = folder / "DUIS Schema V5.1.xsd"
    path.write_text(text, encoding="utf-8")
    return load_schema(path)


def without_template(monkeypatch, tmp_path: Path, variant: str) -> None:
    """The template index reads a copy of srv_templates/ without ``variant``'s template: the folder a user who
    deleted one would have (it is theirs to edit), now that every catalogue SRV has a template."""
    from dcc_capacity.duis import templates
    from dcc_capacity.paths import data_dir

    folder = tmp_path / "srv_templates"
    shutil.copytree(data_dir("srv_templates"), folder)
    (folder / f"{variant}{templates.SUFFIX}").unlink()
    index = templates._index  # noqa: SLF001 - the module's own cache, read from another folder
    monkeypatch.setattr(templates, "_index", lambda directory=None: index(directory or str(folder)))
