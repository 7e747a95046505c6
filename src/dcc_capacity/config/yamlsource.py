"""Read a YAML input file and remember the line of every key.

Validation errors are only useful if they point at the line to fix, and plain
``yaml.safe_load`` throws the marks away. This module composes the node tree
(which keeps PyYAML's marks), builds a dotted-key -> line map from it, and only
then constructs the Python data. It also refuses duplicate keys, which
PyYAML would otherwise resolve silently by keeping the last one: a typo'd
duplicate must not pass unnoticed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dcc_capacity.errors import InputError

__all__ = ["YamlSource", "dotted", "dotted_keys", "dotted_leaves", "load_yaml"]


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e6`` as a number.

    YAML 1.1 (PyYAML) insists on a dot in exponent floats, so ``2e6`` would
    arrive as the *string* "2e6" and fail later with a confusing type error.
    """


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?
        |\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _timestamp(loader: _Loader, node: yaml.ScalarNode) -> Any:
    """PyYAML raises a bare ValueError for 2021-13-01; give it the node's mark so the line is reported."""
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except ValueError as exc:
        raise yaml.constructor.ConstructorError(None, None, f"invalid date {node.value!r} ({exc})",
                                                node.start_mark) from None


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)
# Resolvers are tried in registration order and this one comes last, so plain
# integers ("12", "1_000") and dates still resolve as before.


def dotted(loc: tuple[Any, ...] | list[Any]) -> str:
    """``("journeys", "s2_ic_credit", 3)`` -> ``"journeys.s2_ic_credit[3]"``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


@dataclass(frozen=True)
class YamlSource:
    """The constructed data of one YAML file plus where each key sits in it."""

    path: Path | None
    """None: settings that come from no file (command-line options validated the same way)."""
    data: Any
    lines: dict[str, int] = field(default_factory=dict)
    """Dotted key -> 1-based line of the value (``"a.b"``, ``"a.list[2]"``)."""
    key_lines: dict[str, int] = field(default_factory=dict)
    """Dotted key -> 1-based line of the key itself (where an unknown key is)."""

    def line_of(self, key: str) -> int | None:
        """Line of ``key``, else of its nearest ancestor that is in the file."""
        probe = key
        while probe:
            if probe in self.key_lines:
                return self.key_lines[probe]
            if probe in self.lines:
                return self.lines[probe]
            probe = _parent(probe)
        return None

    def error(self, key: str | None, message: str) -> InputError:
        """An InputError for ``key`` in this file, with the line when known."""
        return InputError(message, file=self.path, key=key or None, line=self.line_of(key) if key else None)


def _parent(key: str) -> str:
    if key.endswith("]"):
        return key[: key.rindex("[")]
    return key.rpartition(".")[0]


def _walk(node: yaml.Node, prefix: str, src_path: Path, lines: dict[str, int], key_lines: dict[str, int],
          at: dict[tuple[int, int], str]) -> None:
    if prefix:
        at[(node.start_mark.line, node.start_mark.column)] = prefix
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            name = str(key_node.value)
            key = f"{prefix}.{name}" if prefix else name
            line = key_node.start_mark.line + 1
            if name in seen:
                raise InputError(f"duplicate key (first given on line {seen[name]})", file=src_path, key=key, line=line)
            seen[name] = line
            key_lines[key] = line
            lines[key] = value_node.start_mark.line + 1
            _walk(value_node, key, src_path, lines, key_lines, at)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            key = f"{prefix}[{index}]"
            lines[key] = item.start_mark.line + 1
            _walk(item, key, src_path, lines, key_lines, at)


def load_yaml(path: str | Path) -> YamlSource:
    """Parse ``path``; every failure (missing, unreadable, bad syntax) is an InputError."""
    src_path = Path(path)
    try:
        text = src_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("no such file", file=src_path) from None
    except IsADirectoryError:
        raise InputError("is a directory, not a YAML file", file=src_path) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=src_path) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", file=src_path) from None
    try:
        loader = _Loader(text)  # PyYAML checks the characters here, before any parsing
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise InputError(f"not a YAML text: character #x{exc.character:04x} is not allowed ({exc.reason})",
                         file=src_path, line=line) from None
    lines: dict[str, int] = {}
    key_lines: dict[str, int] = {}
    at: dict[tuple[int, int], str] = {}
    try:
        node = loader.get_single_node()
        if node is None:
            return YamlSource(src_path, None)
        _walk(node, "", src_path, lines, key_lines, at)
        data = loader.construct_document(node)
    except yaml.constructor.ConstructorError as exc:
        # The tree is sound but a value is not (a date like 2021-13-01): name the key holding it.
        mark = exc.problem_mark
        key = at.get((mark.line, mark.column)) if mark else None
        raise InputError(exc.problem or "invalid value", file=src_path, key=key,
                         line=mark.line + 1 if mark else None) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = "; ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        raise InputError(f"YAML syntax error: {problem}", file=src_path,
                         line=mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise InputError(f"YAML error: {exc}", file=src_path) from None
    finally:
        loader.dispose()
    return YamlSource(src_path, data, lines, key_lines)


def dotted_keys(data: Any, prefix: str) -> Iterator[str]:
    """Every dotted key in ``data``, inner nodes included (what a ``sources`` mapping may cite)."""
    if isinstance(data, dict):
        for k, v in data.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            yield key
            yield from dotted_keys(v, key)


def dotted_leaves(data: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    """Every leaf as (dotted key, value); a list of texts is one leaf, other lists index as ``key[i]``."""
    if isinstance(data, dict):
        for k, v in data.items():
            yield from dotted_leaves(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(data, list) and not all(isinstance(v, str) for v in data):
        for i, v in enumerate(data):
            yield from dotted_leaves(v, f"{prefix}[{i}]")
    else:
        yield prefix, data
