"""CP migration over SFTP: upload the migration files, correlate the Commissioning Outcome File.

In production the CP takes SMETS1 migration files over SFTP, not the DUIS
gateway (emulator/cp.py is the server side and documents the formats). A
step's ``path`` names the remote file (``/in/MCF_<id>.csv``,
``/in/S1CF_<id>.csv``) and its ``body`` is the file. The upload's end is the
synchronous answer (status 200; a transport failure raises). A step with
``expect_callback`` is done when the CP's answer to the uploaded file appears:
``/out/ACK_<id>.csv`` for a Commissioning Request ``CR_<id>.csv``,
``/out/COF_<id>.csv`` for any other migration file (``ok``, TRT = upload to
answer), or the CP's error file (``error``, reason ``migration rejected:
...``); ``<id>`` comes from the uploaded file's name and the listener is told
``request_id``. A poller greenlet per awaited file looks every
``poll_interval`` s and hands the file to the callback listener, so a missing
answer is ``missing`` like any response.

The host is ``sftp://user[:password]@host:port``; the password is better
given by the environment variable ``--sftp-password-env`` names. The
server's key is checked against ``--sftp-known-hosts``; without one any key
is accepted on loopback only (the emulator makes a new key per start).
"""

from __future__ import annotations

import io
import os
import posixpath
import re
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import gevent
import gevent.lock

from dcc_capacity.errors import InputError
from dcc_capacity.load.adapters import AdapterSettings, TargetAdapter

if TYPE_CHECKING:
    from dcc_capacity.load.openmodel import Step

__all__ = ["CpSftpAdapter", "answer_files", "migration_steps"]

_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_UPLOAD = re.compile(r"^(CR|MCF|S1CF|AUDIT)_(.+)\.csv$")


def answer_files(uploaded: str, request_id: str) -> list[tuple[str, str]]:
    """(path, kind) of the CP's possible answers to ``uploaded``: kind "" is the answer, "rejected" an error file."""
    name = posixpath.basename(uploaded)
    m = _UPLOAD.match(name)
    kind, mid = (m.group(1), m.group(2)) if m else ("", request_id)
    if kind == "CR":
        return [(f"/out/ACK_{mid}.csv", ""), (f"/out/ERR_{name}.txt", "rejected")]
    return [(f"/out/COF_{mid}.csv", ""), (f"/out/ERR_{mid}.txt", "rejected"), (f"/out/ERR_{name}.txt", "rejected")]


def migration_steps(migration_id: str, mcf: bytes, s1cf: bytes, label: str = "migration") -> list[Step]:
    """The two uploads of one migration; the second waits for the Commissioning Outcome File."""
    from dcc_capacity.load.openmodel import Step

    return [Step(f"{label} MCF", f"/in/MCF_{migration_id}.csv", body=mcf),
            Step(f"{label} S1CF", f"/in/S1CF_{migration_id}.csv", body=s1cf, request_id=migration_id,
                 expect_callback=True)]


class CpSftpAdapter(TargetAdapter):
    """One SSH connection and SFTP session per user; operations serialised (paramiko is not re-entrant)."""

    name = "cp-sftp"
    poll_interval = 0.1

    def __init__(self, settings: AdapterSettings) -> None:
        super().__init__(settings)
        self.sftp: Any = None
        self.transport: Any = None
        self._lock = gevent.lock.Semaphore()
        self._pollers: set[gevent.Greenlet] = set()

    def start(self) -> None:
        import paramiko

        s = self.settings
        url = urlsplit(s.host)
        if url.scheme != "sftp" or not url.hostname:
            raise InputError(f"cp-sftp needs an sftp://user@host:port URL (got {s.host!r})", key="--host")
        env = getattr(s.options, "sftp_password_env", "") or "DCC_CAPACITY_SFTP_PASSWORD"
        password = unquote(url.password) if url.password else os.environ.get(env)
        if password is None:
            raise InputError(f"no SFTP password: set the environment variable {env}", key="--sftp-password-env")
        host, port = url.hostname, url.port or 22
        transport = paramiko.Transport((host, port))
        transport.banner_timeout = transport.auth_timeout = s.connection_timeout
        try:
            transport.start_client(timeout=s.connection_timeout)
            self._check_host_key(transport, host, port)
            transport.auth_password(unquote(url.username or ""), password)
        except Exception:
            transport.close()
            raise
        self.transport = transport
        self.sftp = paramiko.SFTPClient.from_transport(transport)
        self.sftp.get_channel().settimeout(s.network_timeout)

    def _check_host_key(self, transport: Any, host: str, port: int) -> None:
        import paramiko

        key = transport.get_remote_server_key()
        known = getattr(self.settings.options, "sftp_known_hosts", "") or ""
        if known:
            keys = paramiko.HostKeys(known)
            name = host if port == 22 else f"[{host}]:{port}"
            entry = keys.lookup(name) or {}
            if entry.get(key.get_name()) != key:
                raise InputError(f"the SFTP server key of {name} is not in the known_hosts file", file=known,
                                 key="--sftp-known-hosts")
        elif host not in _LOOPBACK:
            raise InputError(f"{host} is not loopback: give --sftp-known-hosts to check its server key",
                             key="--sftp-known-hosts")

    def send(self, step: Step) -> tuple[int, bytes]:
        with self._lock:
            self.sftp.putfo(io.BytesIO(step.body), step.path)
        if step.expect_callback and step.request_id:
            g = gevent.spawn(self._await_outcome, step.request_id, step.path)
            self._pollers.add(g)
            g.link(self._pollers.discard)
        return 200, b""

    def _await_outcome(self, request_id: str, uploaded: str) -> None:
        listener = self.settings.listener()
        deadline = time.time() + (listener.missing_after_s if listener is not None else 120.0)
        candidates = answer_files(uploaded, request_id)
        while time.time() < deadline and self.sftp is not None:
            for path, kind in candidates:
                data = self._read_if_present(path)
                if data is None:
                    continue
                if listener is not None:
                    if kind:
                        first = data.decode("utf-8", "replace").strip().splitlines()[:1]
                        listener.resolve(request_id, data, "", error=f"migration rejected: {''.join(first)}")
                    else:
                        listener.resolve(request_id, data, "I0")
                return
            gevent.sleep(self.poll_interval)

    def _read_if_present(self, path: str) -> bytes | None:
        with self._lock:
            try:
                with self.sftp.open(path, "rb") as fh:
                    return fh.read()
            except FileNotFoundError:
                return None

    def close(self) -> None:
        for g in list(self._pollers):
            g.kill(block=False)
        if self.sftp is not None:
            self.sftp.close()
            self.sftp = None
        if self.transport is not None:
            self.transport.close()
            self.transport = None
