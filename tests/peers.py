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
