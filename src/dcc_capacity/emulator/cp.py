"""The CP's SFTP interface for SMETS1 migration: migration files in, acknowledgements and outcomes out.

In production, migration files move over SFTP, not the DUIS gateway; so does
this emulator (asyncssh, password auth, a chrooted folder). SCTAD 3.4(b) names
what the CP processes: Commissioning Requests (acknowledged), the Migration
Common File, the S1SP Commissioning File, the audit file (installation start
and completion times) and the Commissioning Outcome File it writes. Here a
Commissioning Request ``in/CR_<id>.csv`` is answered with ``out/ACK_<id>.csv``;
when a migration's MCF and S1CF are both in ``in/`` (with its audit file
``AUDIT_<id>.csv``, checked when present) the CP writes
``out/COF_<migration_id>.csv``, or ``out/ERR_<migration_id>.txt`` /
``out/ERR_<file name>.txt`` listing what is wrong with a file it cannot
accept. Formats (most fields assumed: no public source gives them):
docs/emulator.md.

The migration-fallout failure mode fails a (deterministic, configurable)
share of devices with reason ``MIGRATION_FALLOUT``; resubmitting those devices
in a new migration succeeds, as reprocessing did in the live service.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import re
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import asyncssh

from dcc_capacity.emulator.config import CPConfig
from dcc_capacity.emulator.faults import Faults
from dcc_capacity.errors import ProtocolError

__all__ = ["ACK_COLUMNS", "AUDIT_COLUMNS", "COUNTS", "CPServer", "CR_COLUMNS", "MCF_COLUMNS", "S1CF_COLUMNS",
           "COF_COLUMNS", "acknowledge", "process_migration", "FileRejected"]

log = logging.getLogger("dcc_capacity.emulator.cp")

MCF_COLUMNS = ("migration_id", "device_id", "device_type", "mpxn", "smets_version")
S1CF_COLUMNS = ("migration_id", "device_id", "s1sp_status")
COF_COLUMNS = ("migration_id", "device_id", "outcome", "reason")
CR_COLUMNS = ("migration_id", "device_id", "device_type")
ACK_COLUMNS = ("migration_id", "device_id", "ack_status", "acknowledged_at")
AUDIT_COLUMNS = ("migration_id", "device_id", "installation_start", "installation_end")
DEVICE_TYPES = frozenset({"ESME", "GSME", "CHF", "GPF", "PPMID", "HCALCS", "IHD"})
_EUI = re.compile(r"^[0-9A-F]{2}(-[0-9A-F]{2}){7}$")
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_NAME = re.compile(r"^(CR|MCF|S1CF|AUDIT)_([A-Za-z0-9_-]{1,64})\.csv$")
MAX_FILE_BYTES = 50 * 1024 * 1024
COUNTS = ("commissioning_requests", "acknowledged_devices", "migrations", "devices", "commissioned", "failed",
          "fallout", "rejected_files")
MAX_ROWS = 1_000_000


class FileRejected(ProtocolError):
    """A migration file the CP cannot accept; the message lists the problems."""


def _rows(data: bytes, columns: tuple[str, ...], migration_id: str) -> list[dict[str, str]]:
    if len(data) > MAX_FILE_BYTES:
        raise FileRejected(f"file larger than {MAX_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise FileRejected("not UTF-8 text") from None
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != columns:
        raise FileRejected(f"header must be {','.join(columns)} (got {','.join(reader.fieldnames or [])})")
    rows, problems = [], []
    for line, row in enumerate(reader, start=2):
        if line > MAX_ROWS + 1:
            raise FileRejected(f"more than {MAX_ROWS} rows")
        if None in row or any(v is None for v in row.values()):
            problems.append(f"line {line}: wrong number of fields")
            continue
        row = {k: v.strip() for k, v in row.items()}
        row["device_id"] = row["device_id"].upper()
        if row["migration_id"] != migration_id:
            problems.append(f"line {line}: migration_id {row['migration_id']!r} is not {migration_id!r}")
        if not _EUI.match(row["device_id"]):
            problems.append(f"line {line}: device_id {row['device_id']!r} is not an EUI-64")
        rows.append(row)
        if len(problems) >= 50:
            break
    if not rows and not problems:
        problems.append("no devices")
    seen: set[str] = set()
    for row in rows:
        if row["device_id"] in seen:
            problems.append(f"device {row['device_id']} listed twice")
        seen.add(row["device_id"])
    if problems:
        raise FileRejected("; ".join(problems[:50]))
    return rows


def _check_mcf(rows: list[dict[str, str]]) -> None:
    problems = []
    for row in rows:
        if row["device_type"] not in DEVICE_TYPES:
            problems.append(f"{row['device_id']}: device_type {row['device_type']!r} not one of "
                            f"{', '.join(sorted(DEVICE_TYPES))}")
        if row["smets_version"] != "SMETS1":
            problems.append(f"{row['device_id']}: only SMETS1 devices migrate (got {row['smets_version']!r})")
        if row["device_type"] in ("ESME", "GSME") and not 1 <= len(row["mpxn"]) <= 13:
            problems.append(f"{row['device_id']}: meters need an MPxN of 1-13 characters")
    if problems:
        raise FileRejected("; ".join(problems[:50]))


def _iso_time(value: str) -> datetime | None:
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo is not None else None


def _check_audit(rows: list[dict[str, str]], devices: set[str]) -> None:
    """Every row names a migrated device and an installation that ended no earlier than it started (UTC)."""
    problems = []
    for row in rows:
        start, end = _iso_time(row["installation_start"]), _iso_time(row["installation_end"])
        if row["device_id"] not in devices:
            problems.append(f"{row['device_id']}: not in the Migration Common File")
        if start is None or end is None:
            problems.append(f"{row['device_id']}: installation_start/installation_end must be ISO 8601 with a "
                            f"time zone (got {row['installation_start']!r}, {row['installation_end']!r})")
        elif end < start:
            problems.append(f"{row['device_id']}: installation_end is before installation_start")
    if problems:
        raise FileRejected("audit file: " + "; ".join(problems[:50]))


def acknowledge(migration_id: str, cr: bytes, now: datetime | None = None) -> list[dict[str, str]]:
    """The acknowledgement rows of one Commissioning Request; :class:`FileRejected` for an unacceptable file."""
    if not _ID.match(migration_id):
        raise FileRejected("migration_id must be 1-64 letters, digits, '-' or '_'")
    rows = _rows(cr, CR_COLUMNS, migration_id)
    bad = [f"{r['device_id']}: device_type {r['device_type']!r} unknown" for r in rows
           if r["device_type"] not in DEVICE_TYPES]
    if bad:
        raise FileRejected("; ".join(bad[:50]))
    at = (now or datetime.now(timezone.utc)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return [{"migration_id": migration_id, "device_id": r["device_id"], "ack_status": "ACCEPTED",
             "acknowledged_at": at} for r in rows]


def process_migration(migration_id: str, mcf: bytes, s1cf: bytes, faults: Faults,
                      audit: bytes | None = None) -> list[dict[str, str]]:
    """The Commissioning Outcome rows for one migration; :class:`FileRejected` for an unacceptable file."""
    if not _ID.match(migration_id):
        raise FileRejected("migration_id must be 1-64 letters, digits, '-' or '_'")
    devices = _rows(mcf, MCF_COLUMNS, migration_id)
    _check_mcf(devices)
    s1 = {r["device_id"]: r for r in _rows(s1cf, S1CF_COLUMNS, migration_id)}
    unknown = sorted(set(s1) - {d["device_id"] for d in devices})
    if unknown:
        raise FileRejected(f"S1SP Commissioning File names devices not in the Migration Common File: "
                           f"{', '.join(unknown[:10])}")
    if audit is not None:
        _check_audit(_rows(audit, AUDIT_COLUMNS, migration_id), {d["device_id"] for d in devices})
    out = []
    for d in devices:
        dev = d["device_id"]
        status = s1.get(dev, {}).get("s1sp_status", "")
        if status != "READY":
            outcome, reason = "FAILED", "S1SP_NOT_READY" if status else "MISSING_FROM_S1SP_FILE"
        elif faults.migration_fails(dev):
            outcome, reason = "FAILED", "MIGRATION_FALLOUT"
        else:
            outcome, reason = "COMMISSIONED", ""
        out.append({"migration_id": migration_id, "device_id": dev, "outcome": outcome, "reason": reason})
    return out


class CPServer:
    """asyncssh SFTP server rooted at ``root`` (``in/`` for uploads, ``out/`` for outcomes)."""

    def __init__(self, cfg: CPConfig, faults: Faults) -> None:
        self.cfg = cfg
        self.faults = faults
        self._tmp = None if cfg.root else tempfile.TemporaryDirectory(prefix="dcc-cp-")
        self.root = Path(cfg.root or self._tmp.name).resolve()  # type: ignore[union-attr]
        self.port = 0
        self._server: asyncssh.SSHAcceptor | None = None
        self._lock = asyncio.Lock()
        self.processed: list[str] = []
        self.counts: dict[str, int] = dict.fromkeys(COUNTS, 0)
        """The CP's own view for /metrics (``cp``): what it acknowledged, processed and rejected."""

    async def start(self, host: str = "127.0.0.1") -> None:
        (self.root / "in").mkdir(parents=True, exist_ok=True)
        (self.root / "out").mkdir(parents=True, exist_ok=True)
        key = asyncssh.generate_private_key("ssh-ed25519")
        cp = self

        class _Auth(asyncssh.SSHServer):
            def begin_auth(self, username: str) -> bool:
                return True

            def password_auth_supported(self) -> bool:
                return True

            def validate_password(self, username: str, password: str) -> bool:
                return username == cp.cfg.username and password == cp.cfg.password

        class _SFTP(asyncssh.SFTPServer):
            def __init__(self, chan: asyncssh.SSHServerChannel) -> None:
                super().__init__(chan, chroot=str(cp.root).encode())

            def close(self, file_obj: object) -> None:
                super().close(file_obj)  # type: ignore[arg-type]
                name = getattr(file_obj, "name", None)
                if isinstance(name, bytes | str):
                    asyncio.get_running_loop().create_task(cp.uploaded(Path(name if isinstance(name, str)
                                                                            else name.decode())))

        self._server = await asyncssh.create_server(
            _Auth, host if host != "localhost" else "127.0.0.1", self.cfg.sftp_port, server_host_keys=[key],
            sftp_factory=_SFTP, allow_scp=False, agent_forwarding=False, x11_forwarding=False)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._tmp is not None:
            self._tmp.cleanup()

    async def uploaded(self, path: Path) -> None:
        """An upload finished: when both files of its migration are in, write the outcome (or the error)."""
        async with self._lock:
            try:
                path = path.resolve()
                if path.parent != self.root / "in":
                    return
                m = _NAME.match(path.name)
                out = self.root / "out"
                if not m:
                    _write(out / f"ERR_{path.name}.txt", "file name must be CR_, MCF_, S1CF_ or AUDIT_ "
                                                          "followed by <migration_id>.csv\n")
                    return
                kind, mid = m.group(1), m.group(2)
                if kind == "CR":
                    try:
                        acked = acknowledge(mid, path.read_bytes())
                    except FileRejected as exc:
                        self.counts["rejected_files"] += 1
                        _write(out / f"ERR_{path.name}.txt", f"commissioning request {mid} rejected: {exc}\n")
                        return
                    _write(out / f"ACK_{mid}.csv", _csv(ACK_COLUMNS, acked))
                    self.counts["commissioning_requests"] += 1
                    self.counts["acknowledged_devices"] += len(acked)
                    return
                mcf, s1cf = self.root / "in" / f"MCF_{mid}.csv", self.root / "in" / f"S1CF_{mid}.csv"
                if kind == "AUDIT" or not (mcf.exists() and s1cf.exists()):
                    return  # the audit file is read with the migration it belongs to
                audit = self.root / "in" / f"AUDIT_{mid}.csv"
                try:
                    rows = process_migration(mid, mcf.read_bytes(), s1cf.read_bytes(), self.faults,
                                             audit.read_bytes() if audit.exists() else None)
                except FileRejected as exc:
                    self.counts["rejected_files"] += 1
                    _write(out / f"ERR_{mid}.txt", f"migration {mid} rejected: {exc}\n")
                    return
                _write(out / f"COF_{mid}.csv", _csv(COF_COLUMNS, rows))
                self.processed.append(mid)
                c = self.counts
                c["migrations"] += 1
                c["devices"] += len(rows)
                c["commissioned"] += sum(r["outcome"] == "COMMISSIONED" for r in rows)
                c["failed"] += sum(r["outcome"] == "FAILED" for r in rows)
                c["fallout"] += sum(r["reason"] == "MIGRATION_FALLOUT" for r in rows)
            except OSError as exc:  # a vanished or unreadable upload must not take the server down
                log.warning("CP could not process %s: %s", path, exc)


def _csv(columns: tuple[str, ...], rows: list[dict[str, str]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _write(path: Path, text: str) -> None:
    """Write atomically (temp name, then rename) so an SFTP client never reads half a file."""
    tmp = path.with_name("." + path.name + ".part")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
