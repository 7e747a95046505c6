"""Who holds which SEC role: the user-role model the emulator's access control (E1/E2) asks.

DUIS lets a Service User send an SRV only in a role eligible for it (the
catalogue's ``eligible_roles``); which roles a User holds is registration data
of the DCC, not in any certificate. So the model comes from one of two places:

* a **preset**. ``dcc-boxed`` (the default) is DCC Boxed, the DCC's own test
  system, whose published test users the suite's EUIs were chosen to match.
  It gives each of them the roles DCC Boxed answers for: the Reference Test
  Data Set (RTDS, npm ``@smartdcc/duis-templates``) sends templates from those
  users that DCC Boxed answers with success, so a gateway that refuses them
  disagrees with the DCC. ``suite`` is exactly the suite's own users
  (:data:`dcc_capacity.duis.pki.DEFAULT_USERS`), the stricter model the load
  generator assumes when it picks senders.
* a **users file** for a real configuration: CSV with the header
  ``eui,roles,certificate,name`` (roles ``;``-separated, certificate a PEM/DER
  path relative to the file, may be empty; name optional). Its users replace the
  preset's entry for the same EUI, and their certificates are trusted.

The DCC's own EUI (``90-B3-D5-1F-30-00-00-02``) is never a Service User in any
model: the DCC answers requests, it does not send them through the User
Gateway (docs/emulator.md, "The RTDS").
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from dcc_capacity.errors import InputError
from dcc_capacity.model.catalogue import DCC_EUI, ROLES

__all__ = ["PRESETS", "RoleModel", "UserEntry", "load_users_file", "role_model"]


@dataclass(frozen=True, slots=True)
class UserEntry:
    """One Service User of a role model: its EUI-64, SEC roles, and where the roles come from."""

    eui: str
    roles: frozenset[str]
    name: str = ""
    source: str = ""
    """Why the user has these roles (shown in docs and test failures)."""
    certificate: Path | None = None


_SUITE_OU = frozenset({"OU", "RSA"})

_DCC_BOXED: tuple[UserEntry, ...] = (
    UserEntry("90-B3-D5-1F-30-01-00-00", frozenset({"IS", "ES", "GS", "OU"}), "DCC Boxed supplier (GITTESTSUPPLIER)",
              "DCC Boxed's SMKI organisation certificate for this EUI is a Supplier one (OU=02); the RTDS sends "
              "import, gas and export SRVs (4.6.2, 6.20.2) and the Other User's 9.1 from it and DCC Boxed "
              "answers them with success"),
    UserEntry("90-B3-D5-1F-30-02-00-00", frozenset({"ED", "GT"}), "DCC Boxed network operator",
              "DCC Boxed's certificate for this EUI is a Network Operator one (OU=03); the RTDS sends ED and GT "
              "SRVs from it (4.2, 6.5, 14.1)"),
    UserEntry("90-B3-D5-1F-30-03-00-00", frozenset({"IS", "ES", "GS"}) | _SUITE_OU,
              "DCC Boxed second supplier (GITTESTSUPPLIER2); the suite's Other User",
              "DCC Boxed's certificate for this EUI is a Supplier one (OU=02, GITTESTSUPPLIER2) and the RTDS sends "
              "4.14 (URP) from it; the suite's fleet uses the same EUI as its Other User (OU, RSA), so both"),
    UserEntry("90-B3-D5-1F-30-01-00-08", frozenset({"LC"}), "DCC Boxed load controller",
              "the RTDS sends 7.16 Limit APC Level (ECS47e, APC input and output) only from this EUI, which the "
              "DCC's keystore for DCC Boxed (npm @smartdcc/dccboxed-keystore, keystore.json) holds as "
              "Z1-loadController-ds/-ka (GBCS remote-party role 8), installed on the ESME by the RTDS's CS02g "
              "(6.15.1); the suite's test PKI has the same EUI as its Load Controller"),
    UserEntry("90-B3-D5-1F-30-04-00-00", frozenset({"IS", "GS"}), "Supplier B (suite)",
              "not a DCC Boxed user: the suite's second supplier (pki.DEFAULT_USERS)"),
    UserEntry("90-B3-D5-1F-30-05-00-00", frozenset({"ES"}), "Export Supplier (suite)",
              "not a DCC Boxed user: the suite's export supplier (pki.DEFAULT_USERS)"),
)


def _suite() -> tuple[UserEntry, ...]:
    from dcc_capacity.duis.pki import DEFAULT_USERS

    return tuple(UserEntry(u.eui, u.roles, u.name, "pki.DEFAULT_USERS") for u in DEFAULT_USERS)


PRESETS: dict[str, str] = {
    "dcc-boxed": "DCC Boxed's test users with the roles DCC Boxed answers for (default)",
    "suite": "exactly the suite's own users (pki.DEFAULT_USERS)",
}


@dataclass(frozen=True, slots=True)
class RoleModel:
    """EUI-64 -> :class:`UserEntry`; ``roles(eui)`` is what the gateway's E1/E2 checks read."""

    users: dict[str, UserEntry]
    preset: str

    def roles(self, eui: str) -> frozenset[str] | None:
        """The roles ``eui`` holds, or None when the model does not know it (the DCC never has any)."""
        eui = eui.upper()
        if eui == DCC_EUI:
            return frozenset()
        user = self.users.get(eui)
        return user.roles if user is not None else None

    def certificates(self) -> list[tuple[str, Path]]:
        """(EUI, certificate path) of every user the users file gave a certificate."""
        return [(u.eui, u.certificate) for u in self.users.values() if u.certificate is not None]


def role_model(preset: str = "dcc-boxed", users_file: str | Path | None = None) -> RoleModel:
    """The preset's users, then the users file's (which win for the same EUI)."""
    if preset not in PRESETS:
        raise InputError(f"unknown user preset {preset!r} (one of {', '.join(PRESETS)})", key="user_roles.preset")
    base = _DCC_BOXED if preset == "dcc-boxed" else _suite()
    users = {u.eui: u for u in base}
    if users_file is not None:
        users.update(load_users_file(users_file))
    return RoleModel(users=users, preset=preset)


def _eui(text: str) -> str | None:
    parts = text.strip().upper().split("-")
    if len(parts) != 8 or any(len(p) != 2 or any(c not in "0123456789ABCDEF" for c in p) for p in parts):
        return None
    return "-".join(parts)


def load_users_file(path: str | Path) -> dict[str, UserEntry]:
    """Read a users file (module docstring); every problem is an InputError naming the file and line."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            rows = list(reader)
    except OSError as exc:
        raise InputError(f"cannot read users file: {exc.strerror}", file=path) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=path) from None
    missing = [c for c in ("eui", "roles") if c not in header]
    if missing:
        raise InputError(f"header needs eui,roles[,certificate,name] (missing {', '.join(missing)})", file=path,
                         line=1)
    out: dict[str, UserEntry] = {}
    for line, row in enumerate(rows, start=2):
        eui = _eui(row.get("eui") or "")
        if eui is None:
            raise InputError(f"eui {row.get('eui')!r} is not an EUI-64 like 90-B3-D5-1F-30-01-00-00", file=path,
                             line=line)
        if eui == DCC_EUI:
            raise InputError(f"{eui} is the DCC, which is not a Service User", file=path, line=line)
        roles = frozenset(r.strip().upper() for r in (row.get("roles") or "").split(";") if r.strip())
        bad = sorted(roles - set(ROLES))
        if bad or not roles:
            raise InputError(f"roles must be ';'-separated codes from {', '.join(ROLES)}"
                             + (f" (unknown: {', '.join(bad)})" if bad else " (none given)"), file=path, line=line)
        if eui in out:
            raise InputError(f"{eui} is listed twice", file=path, line=line)
        cert_text = (row.get("certificate") or "").strip()
        cert = (path.parent / cert_text) if cert_text else None
        if cert is not None and not cert.is_file():
            raise InputError(f"certificate {cert_text!r} not found (relative to the users file)", file=path,
                             line=line)
        out[eui] = UserEntry(eui, roles, (row.get("name") or "").strip(), f"{path.name}:{line}", cert)
    return out
