"""The DCC's published npm tools, fetched at test time as peers nobody here wrote.

``@smartdcc/duis-sign-wrap`` carries DCC Boxed's signing tool (tool.jar), the
official DUIS V5.1 schema and DCC Boxed's test users' keys. We never commit
them (they are the DCC's, GPL-licensed): ``npm install`` puts them under
``.peers/`` (git-ignored) and we unpack the jar beside it.
"""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEERS = ROOT / ".peers"
SIGN_WRAP = "@smartdcc/duis-sign-wrap@0.1.2"
PARSER = "@smartdcc/duis-parser"


@dataclass(frozen=True)
class DuisSignWrap:
    jar: Path
    unpacked: Path

    @property
    def xsd(self) -> Path:
        return self.unpacked / "DUIS Schema V5.1.xsd"

    def user_key(self, eui_hex: str = "90B3D51F30010000") -> Path:
        return self.unpacked / f"xml-sign-{eui_hex}-ds.key"

    def user_cert(self, eui_hex: str = "90B3D51F30010000") -> Path:
        return self.unpacked / f"xml-sign-{eui_hex}-ds.pem"

    def validate(self, signed: bytes, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
        """DCC Boxed's Validate: schema + signature; exit 0 when both pass."""
        return subprocess.run(["java", "-cp", str(self.jar), "uk.co.smartdcc.boxed.xmldsig.Validate", "-"],
                              input=signed, capture_output=True, timeout=timeout)

    def sign(self, unsigned: bytes, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
        """DCC Boxed's Sign: signs with the test user key named by the RequestID originator."""
        return subprocess.run(["java", "-cp", str(self.jar), "uk.co.smartdcc.boxed.xmldsig.Sign", "-"],
                              input=unsigned, capture_output=True, timeout=timeout)


def _npm_install(spec: str) -> Path:
    PEERS.mkdir(exist_ok=True)
    if not (PEERS / "package.json").exists():
        (PEERS / "package.json").write_text('{"name": "dcc-capacity-peers", "private": true}\n')
    name = spec.rsplit("@", 1)[0] if spec.count("@") > 1 else spec
    target = PEERS / "node_modules" / name
    if not target.exists():
        npm = shutil.which("npm")
        assert npm, "npm is needed to fetch the DCC's peer tools"
        subprocess.run([npm, "install", "--no-audit", "--no-fund", spec], cwd=PEERS, check=True,
                       capture_output=True, timeout=600)
    return target


def duis_sign_wrap() -> DuisSignWrap:
    pkg = _npm_install(SIGN_WRAP)
    jar = pkg / "dist" / "tool.jar"
    unpacked = PEERS / "tool-jar"
    if not (unpacked / "DUIS Schema V5.1.xsd").exists():
        with zipfile.ZipFile(jar) as zf:
            zf.extractall(unpacked)
    return DuisSignWrap(jar=jar, unpacked=unpacked)


def duis_parser() -> Path:
    """Folder of the installed @smartdcc/duis-parser package (run with node)."""
    return _npm_install(PARSER)


RTDS = "@smartdcc/duis-templates@0.7.0"
"""The DCC's Reference Test Data Set of DUIS requests (GPL-3.0): fetched with ``npm pack``, never committed."""


def _npm_pack(spec: str, prefix: str, wanted: str) -> Path:
    """``npm pack`` ``spec`` (only its tarball, none of its dependencies) and unpack the members under ``wanted``
    into ``.peers/<prefix>-<version>/``, once; returns the unpacked ``wanted`` path."""
    import tarfile

    version = spec.rsplit("@", 1)[1]
    folder = PEERS / f"{prefix}-{version}"
    target = folder / wanted
    if not target.exists():
        npm = shutil.which("npm")
        assert npm, f"npm is needed to fetch {spec}"
        folder.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run([npm, "pack", "--silent", spec], cwd=folder, check=True, capture_output=True,
                              text=True, timeout=600)
        with tarfile.open(folder / proc.stdout.strip().splitlines()[-1]) as tf:
            members = [m for m in tf.getmembers() if m.isfile() and (m.name == wanted or m.name.startswith(
                wanted + "/")) and ".." not in Path(m.name).parts and not m.name.startswith("/")]
            tf.extractall(folder, members=members)  # noqa: S202 - members checked above
    return target


def rtds_templates() -> Path:
    """Folder of the RTDS request templates (``templates/*.XML``), unpacked under ``.peers/`` from ``npm pack``."""
    return _npm_pack(RTDS, "rtds", "package/templates")


KEYSTORE = "@smartdcc/dccboxed-keystore@0.4.2"
"""The DCC's keystore for DCC Boxed (GPL-3.0-or-later): every DCC Boxed party's SMKI certificates and test keys."""
LOAD_CONTROLLER = "90-B3-D5-1F-30-01-00-08"
"""DCC Boxed's Load Controller: the RTDS's 7.16 originator, in the keystore as ``Z1-loadController-ds``."""


def dccboxed_keystore() -> dict:
    """``keystore.json`` of the DCC Boxed keystore, unpacked under ``.peers/`` from ``npm pack`` (never committed).

    Maps lower-case hex EUI-64 -> ``digitalSignature``/``keyAgreement`` -> serial -> {certificate, privateKey,
    name, role}.
    """
    import json

    return json.loads(_npm_pack(KEYSTORE, "keystore", "package/keystore.json").read_text())


def keystore_signing_entry(eui: str) -> dict:
    """The keystore's one digital-signature entry for ``eui`` (certificate PEM, private key PEM, name, role)."""
    entries = dccboxed_keystore()[eui.replace("-", "").lower()]["digitalSignature"]
    (entry,) = entries.values()
    return entry


def keystore_credential(eui: str = LOAD_CONTROLLER, roles: frozenset[str] = frozenset({"LC"})):  # noqa: ANN201
    """The keystore's signing key and certificate for ``eui`` as our :class:`Credential` (default: the LC)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from dcc_capacity.duis.pki import Credential

    entry = keystore_signing_entry(eui)
    return Credential(key=serialization.load_pem_private_key(entry["privateKey"].encode(), password=None),
                      cert=x509.load_pem_x509_certificate(entry["certificate"].encode()), eui=eui, roles=roles)


def sign_rtds_as(path: Path, credential, originator: str | None = None) -> bytes:  # noqa: ANN001 - a Credential
    """An RTDS template signed by our fast Signer with ``credential``, keeping its Header and schemaVersion.

    The placeholder ``ds:Signature`` is dropped and the rest brought to exclusive-C14N form (what the Signer
    hashes); ``originator`` replaces the RequestID's (to send the same body from another user).
    """
    from lxml import etree

    from dcc_capacity.duis import NS_DS, NS_SR
    from dcc_capacity.duis.signing import Signer

    root = etree.parse(str(path), etree.XMLParser(remove_blank_text=True, remove_comments=True)).getroot()
    root.remove(root.find(f"{{{NS_DS}}}Signature"))
    if originator is not None:
        rid = root.find(f"{{{NS_SR}}}Header/{{{NS_SR}}}RequestID")
        rid.text = ":".join([originator, *rid.text.split(":")[1:]])
    return Signer(credential).sign(etree.tostring(root, method="c14n", exclusive=True))


def node_parse_many(files: list[Path], timeout: float = 120) -> list[dict]:
    """@smartdcc/duis-parser's ``parseDuis('simplified', ...)`` on many files in one node process."""
    import json

    node = shutil.which("node")
    assert node, "node is needed to run the DCC's duis-parser"
    script = Path(__file__).parent / "node" / "parse_many.js"
    proc = subprocess.run([node, str(script), str(duis_parser()), *map(str, files)], capture_output=True, text=True,
                          timeout=timeout, check=True)
    out = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(out) == len(files), proc.stderr[-2000:]
    return out


def sign_many(sign_wrap: DuisSignWrap, files: list[str], out_dir: Path, timeout: float = 300) -> dict[str, bytes]:
    """DCC Boxed's Sign on many files in one JVM (tests/java/SignMany.java): {input path: signed bytes or b""}.

    A ``keep:`` prefix keeps the file's own RequestID counter; otherwise Sign writes the epoch millisecond,
    one per file. A file Sign has no key for comes back empty.
    """
    import re

    java = shutil.which("java")
    assert java, "Java is needed to run DCC Boxed's Sign"
    out_dir.mkdir(parents=True, exist_ok=True)
    harness = Path(__file__).parent / "java" / "SignMany.java"
    proc = subprocess.run([java, "-cp", str(sign_wrap.jar), str(harness), str(out_dir), *files],
                          capture_output=True, text=True, timeout=timeout)
    done = dict(re.findall(r"^@@RESULT (.+) (\w+)$", proc.stdout, flags=re.M))
    assert len(done) == len(files), proc.stderr[-2000:]
    return {f: (out_dir / Path(f.removeprefix("keep:")).name).read_bytes() for f in files}
