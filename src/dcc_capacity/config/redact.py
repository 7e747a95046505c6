"""Keep secrets out of what a run writes: configuration copies, command lines, audit entries.

The run configuration only ever holds *references* to secrets (file paths,
names of environment variables), so a redacted copy is mostly the file
itself. This module is the second line of defence: whatever reaches
run.json or the run folder passes through :func:`redact` or
:func:`redact_argv`, which replace the value of any secret-looking key or
flag and any embedded PEM private key with ``[redacted]``. Names of
environment variables (``*_env``) and paths stay: the audit trail needs them.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["REDACTED", "is_secret_key", "redact", "redact_argv"]

REDACTED = "[redacted]"
_SECRET_KEY = re.compile(r"(pass(word|phrase)?|secret|token|api[_-]?key|private[_-]?key|credential)s?$", re.I)
_PEM_PRIVATE = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)", re.S)


def is_secret_key(name: str) -> bool:
    """True for a key or flag that would carry a secret value (``password``, ``tls-key-password``, ``token``).

    ``*_env`` keys name an environment variable, not its value, and are not secret.
    """
    n = name.strip().lstrip("-").lower()
    if n.endswith(("_env", "-env")):
        return False
    return bool(_SECRET_KEY.search(n))


def redact(value: Any) -> Any:
    """A copy of ``value`` (mappings, lists, text) with secret-keyed values and PEM private keys replaced."""
    if isinstance(value, dict):
        return {k: (REDACTED if is_secret_key(str(k)) and v not in (None, "") else redact(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str) and "PRIVATE KEY-----" in value:
        return _PEM_PRIVATE.sub(REDACTED, value)
    return value


def redact_argv(argv: list[str]) -> list[str]:
    """A command line fit for run.json: the value after (or ``=`` in) any secret-looking flag is replaced."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append(REDACTED)
            hide_next = False
            continue
        if arg.startswith("-") and "=" in arg:
            flag, _, _ = arg.partition("=")
            out.append(f"{flag}={REDACTED}" if is_secret_key(flag) else arg)
            continue
        if arg.startswith("-") and is_secret_key(arg):
            hide_next = True
        out.append(redact(arg))
    return out
