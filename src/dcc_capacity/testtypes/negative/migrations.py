"""``run --test negative``: the embedded emulator's faults for it, and the migration cases over the CP's SFTP.

Why the migration cases run here and not in Locust: SMETS1 migration files
move over SFTP, not DUIS, and the only SFTP client at hand is asyncssh
(asyncio), which does not belong in a gevent-patched Locust process. This
process (the run command) is not patched, so one thread runs an asyncio loop
that uploads a migration every ``every_s`` seconds, reads the Commissioning
Outcome File, re-sends the devices that fell out, and writes the verdicts of
NEG-FALLOUT and NEG-REPROCESS next to the Locust processes' ones.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import threading
import time
from pathlib import Path
from typing import Any

from dcc_capacity.model.cpmigration import csv_file
from dcc_capacity.testtypes.negative.build import NO_CODE_VARIANT, S1SP_CV9_VARIANTS
from dcc_capacity.testtypes.negative.cases import Verdict, VerdictWriter

__all__ = ["FALLOUT_SHARE", "MigrationCases", "emulator_settings"]

FALLOUT_SHARE = 0.25
"""Share of migrated devices the embedded CP fails with MIGRATION_FALLOUT in the negative run."""
NO_CODE_SHARE = 0.5
"""Share of NEG-NO-CODE's async responses the embedded emulator sends without a ResponseCode."""


def emulator_settings(cp_root: Path) -> dict[str, Any]:
    """The embedded emulator's config for the negative run (merged over the usual one).

    The DUIS side stays the DSP's; ``sp: CP`` adds the CP's SFTP server.
    Faults switched on: migration fallout (reprocessing succeeds), missing
    response codes on NEG-NO-CODE's SRV only (so no other case's answer is
    touched), the SR 8.11 join-time check (on by default, set explicitly),
    SECMP0192, and an S1SP without CV 9 standing data for 4.14 (NEG-S1-COMBO).
    """
    return {
        "sp": "CP",
        "cp": {"root": str(cp_root)},
        "faults": {
            "migration_fallout": {"enabled": True, "share": FALLOUT_SHARE, "reprocess_succeeds": True},
            "missing_response_code": {"enabled": True, "share": NO_CODE_SHARE, "variants": [NO_CODE_VARIANT]},
            "ppmid_join": {"enabled": True, "max_join_s": 255, "share": 1.0, "smets1_only": True},
        },
        "secmp0192": {"enabled": True, "s1sp_cv9_variants": list(S1SP_CV9_VARIANTS)},
    }


def _mpxn(inst: Any, device_type: str) -> str:
    return inst.mpan if device_type == "ESME" else (inst.mprn or "") if device_type == "GSME" else ""


class MigrationCases(threading.Thread):
    """Uploads SMETS1 migrations to the CP's SFTP for ``duration_s``; judges fallout and reprocessing."""

    def __init__(self, port: int, run_dir: Path, installations: list[Any], duration_s: float, *,
                 every_s: float = 2.0, per_migration: int = 2, timeout_s: float = 10.0,
                 username: str = "cp", password: str = "cp") -> None:  # noqa: S107 - the emulator's test login
        super().__init__(daemon=True, name="negative-migrations")
        self.port, self.run_dir, self.installations = port, run_dir, installations
        self.duration_s, self.every_s, self.per_migration, self.timeout_s = duration_s, every_s, per_migration, \
            timeout_s
        self.username, self.password = username, password
        self._stop_evt = threading.Event()
        self.error = ""
        self.migrations = 0

    def stop(self, timeout: float = 15.0) -> None:
        self._stop_evt.set()
        self.join(timeout)

    def run(self) -> None:
        writer = VerdictWriter(self.run_dir, tag="cp")
        try:
            asyncio.run(self._main(writer))
        except Exception as exc:  # noqa: BLE001 - the SFTP side failed: NEG-FALLOUT shows what came, and fails
            self.error = f"{type(exc).__name__}: {exc}"
            writer.sent("NEG-FALLOUT", "")
            writer.verdict(Verdict("NEG-FALLOUT", "the CP's SFTP interface answering", f"SFTP: {self.error}"[:300],
                                   False, ts=time.time()))
        finally:
            writer.close()

    async def _main(self, writer: VerdictWriter) -> None:
        import asyncssh

        logging.getLogger("asyncssh").setLevel(logging.WARNING)
        deadline = time.monotonic() + self.duration_s
        async with asyncssh.connect("127.0.0.1", self.port, username=self.username, password=self.password,
                                    known_hosts=None) as conn, conn.start_sftp_client() as sftp:
            k = 0
            while not self._stop_evt.is_set() and time.monotonic() < deadline and k * self.per_migration < len(
                    self.installations):
                t0 = time.monotonic()
                await self._one(sftp, k, writer)
                k += 1
                self.migrations = k
                while time.monotonic() < min(t0 + self.every_s, deadline) and not self._stop_evt.is_set():
                    await asyncio.sleep(0.05)

    def _devices(self, k: int) -> list[tuple[str, str, str]]:
        out = []
        for inst in self.installations[k * self.per_migration:(k + 1) * self.per_migration]:
            out += [(d.eui, d.type, _mpxn(inst, d.type)) for d in inst.devices()]
        return out

    async def _one(self, sftp: Any, k: int, writer: VerdictWriter) -> None:
        mid = f"NEG{int(time.time())}-{k:04d}"
        devices = self._devices(k)
        writer.sent("NEG-FALLOUT", mid)
        rows, upload_ms, total_ms, problem = await self._migrate(sftp, mid, devices)
        failed = [r["device_id"] for r in rows if r.get("outcome") == "FAILED"]
        expected = "every device listed; FAILED only with MIGRATION_FALLOUT"
        if problem:
            got, ok = problem, False
        else:
            listed = sorted(r["device_id"] for r in rows) == sorted(d[0] for d in devices)
            coded = all((r["outcome"], r["reason"]) in (("COMMISSIONED", ""), ("FAILED", "MIGRATION_FALLOUT"))
                        for r in rows)
            reasons = sorted({f"{r['outcome']}/{r['reason'] or '-'}" for r in rows})
            got = f"{len(rows)} of {len(devices)} devices listed: {', '.join(reasons)}"
            ok = listed and coded
        writer.verdict(Verdict("NEG-FALLOUT", expected, got, ok, mid, upload_ms, total_ms, exercised=bool(failed),
                               ts=time.time()))
        if not failed:
            return
        back = {d[0]: d for d in devices}
        again = [back[d] for d in failed if d in back]
        rid = f"{mid}-R"
        writer.sent("NEG-REPROCESS", rid)
        rows, upload_ms, total_ms, problem = await self._migrate(sftp, rid, again)
        outcomes = sorted({f"{r['outcome']}/{r['reason'] or '-'}" for r in rows})
        ok = not problem and len(rows) == len(again) and all(r["outcome"] == "COMMISSIONED" for r in rows)
        writer.verdict(Verdict("NEG-REPROCESS", "every device COMMISSIONED",
                               problem or f"{len(rows)} of {len(again)} devices: {', '.join(outcomes)}", ok, rid,
                               upload_ms, total_ms, ts=time.time()))

    async def _migrate(self, sftp: Any, mid: str,
                       devices: list[tuple[str, str, str]]) -> tuple[list[dict[str, str]], float, float | None, str]:
        """(outcome rows, upload ms, upload-to-outcome ms, problem) of one migration."""
        mcf = csv_file(("migration_id", "device_id", "device_type", "mpxn", "smets_version"),
                   [(mid, eui, kind, mpxn, "SMETS1") for eui, kind, mpxn in devices])
        s1cf = csv_file(("migration_id", "device_id", "s1sp_status"), [(mid, eui, "READY") for eui, _, _ in devices])
        t0 = time.time()
        for name, data in ((f"MCF_{mid}.csv", mcf), (f"S1CF_{mid}.csv", s1cf)):
            async with sftp.open(f"/in/{name}", "wb") as f:
                await f.write(data)
        upload_ms = (time.time() - t0) * 1000
        end = time.monotonic() + self.timeout_s
        while time.monotonic() < end:
            for name in (f"COF_{mid}.csv", f"ERR_{mid}.txt"):
                if await sftp.exists(f"/out/{name}"):
                    async with sftp.open(f"/out/{name}", "rb") as f:
                        data = await f.read()
                    total_ms = (time.time() - t0) * 1000
                    if name.startswith("ERR_"):
                        return [], upload_ms, total_ms, f"ERR file: {data.decode(errors='replace')[:200]}"
                    rows = list(csv.DictReader(io.StringIO(data.decode())))
                    return rows, upload_ms, total_ms, ""
            await asyncio.sleep(0.02)
        return [], upload_ms, None, f"no outcome file within {self.timeout_s:g} s"
