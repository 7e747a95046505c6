"""Reading and checking the run folder's small files: every failure names the file and the field.

Shared by :mod:`.inputs` (run.json) and :mod:`.nfrs` (nfr.yaml, issues.yaml)
so every bad value reads the same way: ``<file>: <field>: must be ... (got ...)``.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from dcc_capacity.errors import InputError

__all__ = ["parse_time", "read_json", "read_yaml", "require", "check"]


def parse_time(value: Any, file: Path, key: str) -> float:
    """ISO 8601 (or epoch seconds) to epoch seconds; naive times are taken as UTC."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str):
        raise InputError(f"must be an ISO 8601 time (got {value!r})", file=file, key=key)
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"must be an ISO 8601 time (got {value!r})", file=file, key=key) from None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    return ts.timestamp()


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("missing (every run folder has one)", file=path) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        line = getattr(exc, "lineno", None)
        raise InputError(f"not valid JSON ({getattr(exc, 'msg', exc)})", file=path, line=line) from None


def read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(f"not valid YAML ({getattr(exc, 'problem', exc)})", file=path,
                         line=mark.line + 1 if mark else None) from None


def require(obj: dict[str, Any], key: str, file: Path, kind: type | tuple[type, ...], choices=None,
             prefix: str = "") -> Any:
    if key not in obj or obj[key] is None:
        raise InputError("required field is missing", file=file, key=prefix + key)
    return check(obj[key], key, file, kind, choices, prefix)


def check(value: Any, key: str, file: Path, kind, choices=None, prefix: str = "") -> Any:
    if isinstance(value, bool) and kind is not bool and (kind == (int, float) or kind is int):
        raise InputError(f"must be a number (got {value!r})", file=file, key=prefix + key)
    if not isinstance(value, kind):
        want = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise InputError(f"must be {want} (got {value!r})", file=file, key=prefix + key)
    if choices is not None and value not in choices:
        raise InputError(f"must be one of {', '.join(map(str, choices))} (got {value!r})", file=file,
                         key=prefix + key)
    return value
