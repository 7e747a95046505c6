"""The suite's error hierarchy: every error it raises on purpose is a :class:`DccCapacityError`.

- :class:`InputError`: a user mistake (a broken profile, an unknown variant, a
  bad CLI option or config key). The CLI prints its one-line message and exits 2.
- :class:`RunError`: the run itself failed (the SUT died, Locust could not start): exit 3.
- :class:`ProtocolError`: a message from the other side (the system under test,
  the DCC, a Service User) is not what DUIS says. Never the operator's mistake:
  the emulator answers it with a DUIS error code, the load side records it as
  the request's outcome.
- :class:`RequestFailure`: why one request failed, as Locust's failure table
  shows it (late, missing, dropped ...): an outcome, not an exception that ends anything.

Anything else is a bug and is allowed to surface as a traceback.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["DccCapacityError", "InputError", "ProtocolError", "RequestFailure", "RunError"]


class DccCapacityError(Exception):
    """Base of every error the suite raises on purpose."""

    exit_code = 3


class InputError(DccCapacityError):
    """Bad input from the user: names the file, the key and (when known) the line.

    ``str(err)`` is the whole message a user sees, e.g.
    ``volume_profiles/foc.yaml:12: predicted.per_day.s2_installs: must be >= 0 (got -5)``.
    """

    exit_code = 2

    def __init__(self, message: str, *, file: str | Path | None = None, key: str | None = None,
                 line: int | None = None) -> None:
        self.file = str(file) if file is not None else None
        self.key = key
        self.line = line
        self.detail = message
        where = ""
        if self.file:
            where = self.file + (f":{line}" if line else "") + ": "
        elif line:
            where = f"line {line}: "
        if key and not key.isprintable():  # a key is user text: a newline in it must not split the one line
            key = repr(key)
        super().__init__(f"{where}{key + ': ' if key else ''}{message}")


class RunError(DccCapacityError):
    """The run itself failed (SUT died, Locust could not start): exit status 3."""

    exit_code = 3


class ProtocolError(DccCapacityError, ValueError):
    """A message from the other side is not valid DUIS (malformed XML, a bad signature, an unreadable response).

    Also a :class:`ValueError`, as a malformed value is."""


class RequestFailure(DccCapacityError):
    """One request's failure as Locust records it (its class name is the failure's name in the stats)."""
