"""Validate YAML data with a pydantic model and report the first problem as one InputError.

pydantic's own messages ("Extra inputs are not permitted", loc tuples with
union tags) are written for developers. A test manager needs the file, the
line, the dotted key and what to write instead; this module turns a
:class:`pydantic.ValidationError` into exactly that, for any model, so every
YAML input of the suite reports mistakes the same way.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from dcc_capacity.config.yamlsource import YamlSource, dotted
from dcc_capacity.errors import InputError

__all__ = ["validate", "Hint"]

M = TypeVar("M", bound=BaseModel)
_MISSING = "missing required key"
Hint = Callable[[str, str, Any], "str | None"]
"""``hint(dotted_key, pydantic_error_type, value)`` -> a better message, or None for the default one."""

_TYPE_NAMES = {"float_type": "a number", "int_type": "an integer", "string_type": "text", "list_type": "a list",
               "model_type": "a mapping", "dict_type": "a mapping", "date_type": "a date (YYYY-MM-DD)",
               "date_from_datetime_parsing": "a date (YYYY-MM-DD)", "date_parsing": "a date (YYYY-MM-DD)",
               "bool_type": "true or false", "bool_parsing": "true or false", "float_parsing": "a number",
               "int_parsing": "an integer", "int_from_float": "an integer"}


def validate(model: type[M], src: YamlSource, *, hint: Hint | None = None) -> M:
    """``model.model_validate(src.data)``, with any error as one InputError naming file, line and key."""
    try:
        return model.model_validate(src.data)
    except ValidationError as exc:
        raise _translate(model, src, exc, hint) from None


def _translate(model: type[BaseModel], src: YamlSource, exc: ValidationError, hint: Hint | None) -> InputError:
    """The first error (in file order) as one line; the count of the others is appended."""
    schema_keys = _schema_keys(model)
    by_key: dict[str | None, InputError] = {}
    unknown: set[str | None] = set()
    for err in exc.errors(include_url=False):
        one = _one(model, src, err, schema_keys, hint)
        by_key.setdefault(one.key, one)  # a failed union reports once per member: keep the first
        if err["type"] == "extra_forbidden":
            unknown.add(one.key)
    errors = sorted(by_key.values(), key=lambda e: (e.line or 10**9, e.key not in unknown))
    first = _cause(errors, unknown)
    if len(errors) > 1:
        more = len(errors) - 1
        return InputError(f"{first.detail} (and {more} more problem{'s' if more > 1 else ''})",
                          file=first.file, key=first.key, line=first.line)
    return first


def _cause(errors: list[InputError], unknown: set[str | None]) -> InputError:
    """Lead with the cause, as pip does: a key missing beside an unknown key is usually that key misspelt
    (``nite:`` for ``night:``), so the unknown key and its did-you-mean come first, not the missing key it causes.
    The missing keys of the same mapping are the likeliest meanings, so they are suggested first."""
    first = errors[0]
    parent = _parent_key(first.key or "")
    if first.key in unknown:
        typo: InputError | None = first
    elif first.detail == _MISSING:
        typo = next((e for e in errors if e.key in unknown and _parent_key(e.key or "") == parent), None)
    else:
        typo = None
    if typo is None:
        return first
    missing = [_last(e.key or "") for e in errors if e.detail == _MISSING and _parent_key(e.key or "") == parent]
    close = difflib.get_close_matches(_last(typo.key or ""), missing, n=1, cutoff=0.5)
    if not close or "did you mean" in typo.detail:
        return typo
    return InputError(f"unknown key; did you mean {close[0]!r}?", file=typo.file, key=typo.key, line=typo.line)


def _last(key: str) -> str:
    return key[len(_parent_key(key)):].lstrip(".")


def _parent_key(key: str) -> str:
    """``a.b[2]`` -> ``a.b``, ``a.b`` -> ``a``; a key a user wrote may itself end in ``]`` (found by test_fuzz)."""
    return key[: key.rindex("[")] if key.endswith("]") and "[" in key else key.rpartition(".")[0]


def _one(model: type[BaseModel], src: YamlSource, err: Any, schema_keys: set[str], hint: Hint | None) -> InputError:
    # pydantic puts union members ("list[str]") and validator names into loc; keep the keys a user wrote.
    loc = [p for p in err["loc"] if isinstance(p, int) or p in schema_keys or _in_file(src, str(p))]
    key = dotted(loc)
    kind = err["type"]
    value = err.get("input")
    if kind == "extra_forbidden":
        return InputError(f"unknown key{_allowed_hint(model, dotted(loc[:-1]), str(loc[-1]))}", file=src.path,
                          key=key, line=src.key_lines.get(key) or src.line_of(key))
    if kind == "missing":
        return InputError(_MISSING, file=src.path, key=key, line=src.line_of(key))
    better = hint(key, kind, value) if hint else None
    if better is not None:
        message = f"{better} (got {_show(value)})" if kind not in ("too_short", "value_error") else better
    elif kind in _TYPE_NAMES:
        message = f"expected {_TYPE_NAMES[kind]}, got {_show(value)}"
    elif kind == "finite_number":
        message = f"must be a finite number, got {_show(value)}"
    elif kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        ctx = err.get("ctx", {})
        op, limit = next((op, ctx[name]) for name, op in (("ge", ">="), ("le", "<="), ("gt", ">"), ("lt", "<"))
                         if name in ctx)
        message = f"must be {op} {limit:g} (got {_show(value)})" if isinstance(limit, float) else \
            f"must be {op} {limit} (got {_show(value)})"
    elif kind == "literal_error":
        message = f"must be one of {err['ctx']['expected']} (got {_show(value)})"
    elif kind == "too_short":
        message = "must list at least one entry"
    elif kind == "value_error":
        message = str(err.get("ctx", {}).get("error", err["msg"]))
    else:
        message = err["msg"]
    return InputError(message, file=src.path, key=key, line=src.line_of(key))


def _in_file(src: YamlSource, part: str) -> bool:
    return any(k == part or k.endswith("." + part) for k in src.key_lines)


def _schema_keys(model: type[BaseModel], seen: set[type[BaseModel]] | None = None) -> set[str]:
    seen = set() if seen is None else seen
    if model in seen:
        return set()
    seen.add(model)
    keys = set(model.model_fields)
    for field in model.model_fields.values():
        inner = _model_of(field.annotation)
        if inner is not None:
            keys |= _schema_keys(inner, seen)
    return keys


def _allowed_hint(root: type[BaseModel], parent: str, name: str) -> str:
    """"did you mean" for a near miss (the usual typo), else the keys allowed at that level."""
    model: type[BaseModel] | None = root
    for part in [p for p in parent.split(".") if p]:
        if model is None or part not in model.model_fields:
            return ""
        model = _model_of(model.model_fields[part].annotation)
    if model is None:
        return ""
    close = difflib.get_close_matches(name, list(model.model_fields), n=1, cutoff=0.75)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f" (allowed here: {', '.join(model.model_fields)})"


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    return repr(value)
