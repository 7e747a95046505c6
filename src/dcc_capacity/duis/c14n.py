"""Character-data escaping exactly as Canonical XML writes it.

Requests and responses are produced already in canonical form (so their
digest is a SHA-256 of the bytes as written); both writers must escape text
the same way C14N does, so they share this one function.
"""

from __future__ import annotations

__all__ = ["c14n_text"]


def c14n_text(value: object) -> str:
    """``value`` as C14N character data: ``&``, ``<``, ``>`` and CR escaped; nothing else."""
    text = value if isinstance(value, str) else str(value)
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    if "\r" in text:
        text = text.replace("\r", "&#xD;")
    return text
