"""The suite's error hierarchy.

A user mistake (a broken profile, an unknown variant, a bad CLI option) is an
:class:`InputError`: the CLI prints its one-line message and exits 2. Anything
else is a bug or a failed run and is allowed to surface differently.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["DccCapacityError", "InputError", "RunError"]


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
