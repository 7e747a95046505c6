"""Where the suite's data folders are, installed or from a checkout.

The top-level folders (srv_templates/, volume_profiles/, reports/) live at the
repository root so users can read and edit them; a wheel carries copies under
``dcc_capacity/_data``. Everything looks them up here, never by its own path
arithmetic.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["data_dir", "repo_root"]

_PKG = Path(__file__).resolve().parent


def repo_root() -> Path:
    """The checkout root when running from source (src layout), else the package."""
    candidate = _PKG.parent.parent
    if (candidate / "pyproject.toml").exists():
        return candidate
    return _PKG


def data_dir(name: str) -> Path:
    """Folder ``name`` (e.g. ``"srv_templates"``), preferring the checkout's copy."""
    checkout = repo_root() / name
    if checkout.is_dir():
        return checkout
    return _PKG / "_data" / name
