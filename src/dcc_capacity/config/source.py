"""Read a settings file (YAML, TOML or JSON) into a :class:`YamlSource`: one loader for every config file.

The run configuration (``run --config``) and the emulator's configuration
(``emulator --config``, the ``[emulator]`` section of a run config) are read
here, so both fail the same way on the same mistake: one line naming the
file, the line when known, and the problem; exit status 2. YAML keeps
PyYAML's marks (:mod:`.yamlsource`); TOML is read with the standard
library's ``tomllib`` on Python 3.11+ and with ``tomli`` (the same parser,
a dependency there) on 3.10, and a plain scan gives its key lines; JSON has
no key lines (its syntax errors do have one).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from dcc_capacity.config.yamlsource import YamlSource, load_yaml
from dcc_capacity.errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10: the same parser, from PyPI (a dependency on 3.10)
    import tomli as tomllib

__all__ = ["load_source", "sub_source", "toml_lines"]

YAML_SUFFIXES = (".yaml", ".yml")


def load_source(path: str | Path, *, key: str | None = None, suffixes: tuple[str, ...] = (".toml", ".yaml", ".yml"),
                yaml_otherwise: bool = False) -> YamlSource:
    """Parse ``path`` by its suffix; every failure (missing, unreadable, bad syntax) is one :class:`InputError`.

    ``key`` names the option that gave the file (``--config``) in "no such file" messages. A suffix outside
    ``suffixes`` is refused, unless ``yaml_otherwise`` reads it as YAML (the emulator's older rule)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in suffixes and not yaml_otherwise:
        raise InputError(f"a configuration is a {_either(suffixes)} file", file=p, key=key)
    if suffix in YAML_SUFFIXES or suffix not in (".toml", ".json"):
        return load_yaml(p)
    text = _read_text(p, key)
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"JSON syntax error: {exc.msg} (column {exc.colno})", file=p, line=exc.lineno) from None
        return YamlSource(p, data)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"TOML syntax error: {exc}", file=p) from None
    lines = toml_lines(text)
    return YamlSource(p, data, lines, lines)


def _either(suffixes: tuple[str, ...]) -> str:
    return ", ".join(suffixes[:-1]) + f" or {suffixes[-1]}" if len(suffixes) > 1 else suffixes[0]


def _read_text(p: Path, key: str | None) -> str:
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("no such file", file=p, key=key) from None
    except IsADirectoryError:
        raise InputError("is a directory, not a configuration file", file=p, key=key) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=p) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", file=p, key=key) from None


def toml_lines(text: str) -> dict[str, int]:
    """Dotted key -> line, from a plain scan (tomllib keeps no positions): good enough to point at a typo."""
    out: dict[str, int] = {}
    table = ""
    arrays: dict[str, int] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if m := re.match(r"^\[\[\s*([\w.-]+)\s*\]\]$", line):
            name = m.group(1)
            arrays[name] = arrays.get(name, -1) + 1
            table = f"{name}[{arrays[name]}]"
            out.setdefault(name, n)
            out[table] = n
        elif m := re.match(r"^\[\s*([\w.-]+)\s*\]$", line):
            table = m.group(1)
            out[table] = n
        elif m := re.match(r"^([\w-]+)\s*=", line):
            out[f"{table}.{m.group(1)}" if table else m.group(1)] = n
    return out


def sub_source(src: YamlSource, section: str, data: Any) -> YamlSource:
    """The part of ``src`` under ``section`` (its data and its key lines, re-keyed without the prefix)."""
    prefix = section + "."

    def strip(lines: dict[str, int]) -> dict[str, int]:
        return {k[len(prefix):]: v for k, v in lines.items() if k.startswith(prefix)}

    return YamlSource(src.path, data, strip(src.lines), strip(src.key_lines))
