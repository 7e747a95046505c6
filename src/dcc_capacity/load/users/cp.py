"""CP mode: the suite plays the DSP, the S1SP and the installers around a Commissioning Party under test.

SCTAD 3.4(b) tests the CP "in migrations per day" with "simulated DSP, S1SP
and a Secure File Transfer Protocol (SFTP) server ... to simulate and process
Commissioning Requests/ acknowledgement, Migration Common File and S1SP
Commissioning File, audit file (which contain the timestamps for the start
and completion of installations) and Commissioning Outcome File". One arrival
of :class:`CpMigrationFiles` is one migration of ``--cp-batch`` SMETS1
installations over the CP's SFTP (the ``cp-sftp`` adapter, paramiko):

1. the DSP's Commissioning Request ``CR_<id>.csv``, done when the CP's
   acknowledgement ``ACK_<id>.csv`` is read back;
2. the Migration Common File ``MCF_<id>.csv``;
3. the audit file ``AUDIT_<id>.csv``: each installation's start (the
   request's send time) and completion (the acknowledgement's arrival);
4. the S1SP Commissioning File ``S1CF_<id>.csv``, done when the CP's
   Commissioning Outcome File ``COF_<id>.csv`` is read back;
5. devices that fell out (``MIGRATION_FALLOUT``) are reprocessed once as
   ``<id>-R`` (steps 2-4 for them alone) and counted.

The class's rate is installations/s (model/cpmigration.py), so arrivals/s =
rate / batch. Each device's outcome per attempt, with the measured send and
arrival times, goes to ``<run>/cp/devices-<host>-<pid>.csv`` (report/cp.py
reads it; rows are first written ``PENDING`` when an answer is awaited and
again with the outcome, the last row of a device and attempt counting); the
uploads themselves are ordinary request records. Each migration's devices
get EUIs of their own (``00-DB-51`` + process slot + counter; device types
and MPxNs from the fleet): a device migrates once.
File formats: docs/emulator.md ("CP").
"""

from __future__ import annotations

import csv
import io
import itertools
import os
import socket
import time
from pathlib import Path
from typing import Any, ClassVar

from dcc_capacity.load.openmodel import OpenModelUser, Step, StepResult
from dcc_capacity.load.users.base import Journey
from dcc_capacity.load.users.kit import Kit, get_kit
from dcc_capacity.model.cpmigration import CP_CLASS, DEFAULT_BATCH, csv_file

__all__ = ["DEVICE_LOG_COLUMNS", "CpMigrationFiles"]

DEVICE_LOG_COLUMNS = ("migration_id", "attempt", "device_id", "device_type", "installation", "cr_sent_ts",
                      "ack_ts", "upload_ts", "cof_ts", "outcome", "reason")
"""One row per device and attempt (0 first, 1 reprocessing) and stage (``PENDING`` before an awaited answer, then the
outcome: the last row counts); times are epoch seconds as measured here (NaN: not reached)."""
_MCF = ("migration_id", "device_id", "device_type", "mpxn", "smets_version")


_NAN = float("nan")


def _pending(devices: list[tuple[str, str, str, str]]) -> dict[str, tuple[str, str]]:
    """Outcome rows written before an answer is awaited: a run that ends first still shows the devices sent."""
    return {d[0]: ("PENDING", "") for d in devices}


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


class _DeviceLog:
    """This process's device outcome file (appended whole lines, flushed per migration)."""

    def __init__(self, run_dir: Path | None) -> None:
        self.fh = None
        if run_dir is not None:
            folder = Path(run_dir) / "cp"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"devices-{socket.gethostname()}-{os.getpid()}.csv"
            self.fh = path.open("a", encoding="utf-8", newline="")
            if path.stat().st_size == 0:
                self.fh.write(",".join(DEVICE_LOG_COLUMNS) + "\n")

    def write(self, rows: list[tuple[Any, ...]]) -> None:
        if self.fh is None or self.fh.closed:
            return
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(rows)
        self.fh.write(buf.getvalue())
        self.fh.flush()


class CpMigrationFiles(OpenModelUser):
    """One migration per arrival: CR -> ACK, MCF, audit, S1CF -> COF, then the fallout reprocessed."""

    abstract = False
    target_adapter: ClassVar[str | None] = "cp-sftp"
    rate_key = CP_CLASS
    _logs: ClassVar[dict[str, _DeviceLog]] = {}
    """One device log per run folder and process (an in-process test may run Locust twice)."""

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        opts = environment.parsed_options
        self.kit: Kit = get_kit(opts)
        self.batch = max(1, int(getattr(opts, "dcc_cp_batch", DEFAULT_BATCH) or DEFAULT_BATCH))
        self.srvs_per_arrival = float(self.batch)  # type: ignore[misc]  # arrivals/s = installations/s / batch
        self._seq = itertools.count(1)
        self._eui = itertools.count(1)
        slot = getattr(getattr(self.kit.factory, "allocator", None), "slot", 0) or 0
        self._prefix = f"00-DB-51-{int(slot) & 0xFF:02X}"
        run_dir = getattr(opts, "run_dir", None) or ""
        if run_dir not in self._logs:
            self._logs[run_dir] = _DeviceLog(Path(run_dir) if run_dir else None)
        self._log = self._logs[run_dir]

    def _devices(self) -> list[tuple[str, str, str, str]]:
        """(EUI, device type, MPxN, "<place in batch>/<fleet index>") for ``batch`` installations of SMETS1."""
        out = []
        for k in range(self.batch):
            inst = self.kit.installation(self._rng, smets=1)
            for d in inst.devices():
                n = next(self._eui)
                eui = f"{self._prefix}-{n >> 24 & 0xFF:02X}-{n >> 16 & 0xFF:02X}-{n >> 8 & 0xFF:02X}-{n & 0xFF:02X}"
                mpxn = inst.mpan if d.type == "ESME" else (inst.mprn or "") if d.type == "GSME" else ""
                out.append((eui, d.type, mpxn, f"{k}/{inst.index}"))
        return out

    def arrival(self) -> Journey:
        mid = f"P{os.getpid()}-{next(self._seq):06d}"
        devices = self._devices()
        cr = csv_file(("migration_id", "device_id", "device_type"), [(mid, e, t) for e, t, _, _ in devices])
        cr_sent = time.time()
        self._record(mid, 0, devices, cr_sent, _NAN, _NAN, _NAN, _pending(devices), "")
        res = yield Step("CP CR", f"/in/CR_{mid}.csv", body=cr, request_id=f"{mid}.CR", expect_callback=True,
                         srv_variant="CR", smets=1)
        ack_ts = time.time()
        if not res.ok:
            self._record(mid, 0, devices, cr_sent, ack_ts, _NAN, _NAN, {},
                         f"no acknowledgement: {res.error or res.outcome}")
            return res
        acked = {r.get("device_id", "") for r in csv.DictReader(io.StringIO(res.callback_body.decode("utf-8",
                                                                                                     "replace")))}
        if acked != {d[0] for d in devices}:
            self._record(mid, 0, devices, cr_sent, ack_ts, _NAN, _NAN, {},
                         f"acknowledgement lists {len(acked)} of {len(devices)} devices")
            return res
        res, rows = yield from self._migrate(mid, 0, devices, cr_sent, ack_ts)
        fallout = [d for d in devices if rows.get(d[0], ("", ""))[1] == "MIGRATION_FALLOUT"]
        if fallout and not self.ctx.stopped:
            res, _ = yield from self._migrate(f"{mid}-R", 1, fallout, cr_sent, ack_ts)
        return res

    def _migrate(self, mid: str, attempt: int, devices: list[tuple[str, str, str, str]], cr_sent: float,
                 ack_ts: float) -> Any:
        """MCF, audit and S1CF of one attempt; (the S1CF step's result, device -> (outcome, reason))."""
        label = "CP" if attempt == 0 else "CP reprocess"
        mcf = csv_file(_MCF, [(mid, e, t, m, "SMETS1") for e, t, m, _ in devices])
        audit = csv_file(("migration_id", "device_id", "installation_start", "installation_end"),
                     [(mid, e, _iso(cr_sent), _iso(ack_ts)) for e, _, _, _ in devices])
        s1cf = csv_file(("migration_id", "device_id", "s1sp_status"), [(mid, e, "READY") for e, _, _, _ in devices])
        upload_ts = time.time()
        res: StepResult = yield Step(f"{label} MCF", f"/in/MCF_{mid}.csv", body=mcf, srv_variant="MCF", smets=1)
        if res.ok:
            res = yield Step(f"{label} AUDIT", f"/in/AUDIT_{mid}.csv", body=audit, srv_variant="AUDIT", smets=1)
        if res.ok:
            self._record(mid, attempt, devices, cr_sent, ack_ts, upload_ts, _NAN, _pending(devices), "")
            res = yield Step(f"{label} S1CF", f"/in/S1CF_{mid}.csv", body=s1cf, request_id=mid,
                             expect_callback=True, srv_variant="S1CF", smets=1)
        cof_ts = time.time()
        rows: dict[str, tuple[str, str]] = {}
        if res.ok:
            for r in csv.DictReader(io.StringIO(res.callback_body.decode("utf-8", "replace"))):
                rows[r.get("device_id", "")] = (r.get("outcome", ""), r.get("reason", ""))
        why = "" if res.ok else f"no outcome: {res.error or res.outcome}"
        self._record(mid, attempt, devices, cr_sent, ack_ts, upload_ts, cof_ts if res.ok else _NAN, rows,
                     why)
        return res, rows

    def _record(self, mid: str, attempt: int, devices: list[tuple[str, str, str, str]], cr_sent: float,
                ack_ts: float, upload_ts: float, cof_ts: float, rows: dict[str, tuple[str, str]], why: str) -> None:
        log = self._log
        out = []
        for eui, kind, _, inst in devices:
            outcome, reason = rows.get(eui, ("NO_OUTCOME", why or "device not in the Commissioning Outcome File"))
            out.append((mid, attempt, eui, kind, inst, f"{cr_sent:.6f}", f"{ack_ts:.6f}", f"{upload_ts:.6f}",
                        f"{cof_ts:.6f}", outcome, reason))
        log.write(out)
