"""The SRV body templates in ``srv_templates/``: one Jinja2 file per Service Request Variant.

Each ``<variant>.xml.j2`` renders the single child of ``sr:Body``. Templates
are written indented for people; the loader joins their lines so the output
has no whitespace between elements, which is what lets the signer hash the
rendered bytes directly (they already are the canonical form). Values are
escaped the way canonical XML escapes text (``& < >`` and CR), not the way
HTML autoescaping does (which would write ``"`` as ``&#34;`` and break the
digest). Templates put variables in text only, never in attributes, and keep
an element's text on the same line as its tags (a line break between text
and a tag would become a space). The shared ``_future_dated.j2`` snippet is
inlined by the loader rather than ``{% include %}``-d at render time.

``StrictUndefined`` turns a missing template field into an
:class:`~dcc_capacity.errors.InputError` naming the template and the field,
instead of silently rendering an empty element the DCC would reject.

``srv_templates/templates.csv`` says which device each variant targets
(``ESME;GSME`` = the first of these the installation has) and, for the
non-device SRVs, which device the body is about.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import meta

from dcc_capacity.duis.c14n import c14n_text
from dcc_capacity.errors import InputError
from dcc_capacity.model.catalogue import Srv, get_srv
from dcc_capacity.paths import data_dir

__all__ = ["TemplateInfo", "available_variants", "environment", "precompile", "render_body", "render_over",
           "template_globals", "template_info"]

SUFFIX = ".xml.j2"
_ALWAYS = frozenset({"execution_datetime"})  # used by the shared _future_dated.j2 snippet
_FUTURE_DATED = "_future_dated.j2"
_INCLUDE = '{% include "_future_dated.j2" %}'


class _JoinedLinesLoader(jinja2.FileSystemLoader):
    """Loads templates with their lines stripped and joined (no inter-element whitespace)."""

    def get_source(self, environment: jinja2.Environment, template: str):  # noqa: ANN201 - jinja's tuple
        source, filename, uptodate = super().get_source(environment, template)
        # Inline the shared snippet: an {% include %} costs a new render context on every request.
        if _INCLUDE in source:
            source = source.replace(_INCLUDE, super().get_source(environment, _FUTURE_DATED)[0].split("#}", 1)[-1])
        out: list[str] = []
        for raw in source.splitlines():
            line = raw.strip()
            if not line:
                continue
            if out and not (out[-1][-1] in ">}" and line[0] in "<{"):
                out.append(" ")  # keep tokens of a tag spanning lines apart
            out.append(line)
        return "".join(out), filename, uptodate



@lru_cache(maxsize=4)
def environment(directory: str | None = None) -> jinja2.Environment:
    """The shared, pre-compiling Jinja2 environment over ``srv_templates/`` (or ``directory``)."""
    folder = directory or str(data_dir("srv_templates"))
    return jinja2.Environment(
        loader=_JoinedLinesLoader(folder),
        undefined=jinja2.StrictUndefined,
        finalize=c14n_text,
        autoescape=False,
        auto_reload=False,
        keep_trailing_newline=False,
        cache_size=-1,
    )


@dataclass(frozen=True, slots=True)
class TemplateInfo:
    """One variant's template and where its request goes."""

    variant: str
    srv: Srv
    path: Path
    targets: tuple[str, ...]
    """Device types the RequestID may target, in order of preference; ``("DCC",)`` for non-device SRVs."""
    subject: tuple[str, ...]
    """Device types the body is about (the target for device SRVs)."""
    fields: frozenset[str]
    """Top-level template variables the body needs."""
    note: str = ""


@lru_cache(maxsize=4)
def _index(directory: str | None = None) -> dict[str, TemplateInfo]:
    folder = Path(directory) if directory else data_dir("srv_templates")
    env = environment(directory)
    rows: dict[str, dict[str, str]] = {}
    csv_path = folder / "templates.csv"
    if not csv_path.is_file():
        raise InputError("missing: every template folder has templates.csv (variant,target,subject,note)",
                         file=csv_path)
    with csv_path.open(newline="", encoding="utf-8") as fh:
        for line, row in enumerate(csv.DictReader(fh), start=2):
            variant = (row.get("variant") or "").strip()
            if get_srv(variant) is None:
                raise InputError(f"'{variant}' is not a DUIS SRV variant", file=csv_path, line=line, key="variant")
            rows[variant] = row
    out: dict[str, TemplateInfo] = {}
    for path in sorted(folder.glob(f"*{SUFFIX}")):
        variant = path.name[: -len(SUFFIX)]
        srv = get_srv(variant)
        if srv is None or variant not in rows:
            raise InputError(f"template for unknown variant '{variant}' (not in catalogue.csv and templates.csv)",
                             file=path)
        row = rows[variant]
        targets = tuple(t for t in row["target"].split(";") if t)
        subject = tuple(t for t in (row.get("subject") or "").split(";") if t) or targets
        source = env.loader.get_source(env, path.name)[0]  # type: ignore[union-attr]
        try:
            fields = frozenset(meta.find_undeclared_variables(env.parse(source))) | _ALWAYS
        except jinja2.TemplateSyntaxError as exc:  # a user-edited template: one line naming the file
            raise InputError(f"template syntax error: {exc.message}", file=path) from None
        out[variant] = TemplateInfo(variant, srv, path, targets, subject, fields, row.get("note") or "")
    return out


def available_variants() -> list[str]:
    """Variants that have a template, in catalogue order."""
    index = _index()
    from dcc_capacity.model.catalogue import catalogue

    return [v for v in catalogue() if v in index]


def template_info(variant: str) -> TemplateInfo:
    """The template of ``variant``; an InputError names the known ones when there is none."""
    info = _index().get(variant)
    if info is None:
        if get_srv(variant) is None:
            raise InputError(f"'{variant}' is not a DUIS SRV variant", key="variant")
        raise InputError(f"no template for SRV {variant}; templated: {', '.join(available_variants())}",
                         key="variant")
    return info


@lru_cache(maxsize=256)
def _compiled(variant: str) -> jinja2.Template:
    """The pre-compiled template of ``variant``."""
    return environment().get_template(template_info(variant).path.name)


def precompile() -> int:
    """Compile every template now (~50 ms once per process) so no request pays for it; returns how many."""
    variants = available_variants()
    for variant in variants:
        _compiled(variant)
    return len(variants)


def template_globals() -> dict[str, Any]:
    """Jinja's globals (``range``...): a caller that renders many requests puts them in its base context once."""
    return dict(environment().globals)


def render_body(variant: str, context: dict[str, Any]) -> str:
    """The ``sr:Body`` child of ``variant`` for ``context`` (canonical, no whitespace between elements).

    Renders with the context shared, not copied: ``Template.render`` copies the context twice per
    call, which was half the rendering cost. A context without Jinja's globals gets them added. A dict,
    because a shared context becomes the Jinja Context's ``parent`` as it is.
    """
    template = _compiled(variant)
    if "range" not in context:
        context = {**environment().globals, **context}
    try:
        return "".join(template.root_render_func(template.new_context(context, shared=True)))
    except jinja2.UndefinedError as exc:
        raise InputError(f"template field missing: {exc.message}", file=template_info(variant).path) from None


_idle_contexts: dict[str, jinja2.runtime.Context] = {}


def render_over(variant: str, base: dict[str, Any], fields: dict[str, Any]) -> str:
    """Like :func:`render_body` for ``{**base, **fields}``, without building either the merged dict or a
    Jinja context per call: the hot path of the load generator.

    ``base`` (the per-second time fields with Jinja's globals) is looked up after ``fields`` (the
    request's own) through one reused Context per variant - what ``Template.new_context`` would build,
    minus ~5 us of set-up per request. A Context in use is taken out of the cache, so a reentrant or
    concurrent render gets its own.
    """
    context = _idle_contexts.pop(variant, None)
    template = _compiled(variant)
    if context is None:
        context = template.new_context({}, shared=True)
    context.parent = base
    context.vars = fields
    try:
        return "".join(template.root_render_func(context))
    except jinja2.UndefinedError as exc:
        raise InputError(f"template field missing: {exc.message}", file=template_info(variant).path) from None
    finally:
        context.exported_vars.clear()
        context.vars = {}
        context.parent = {}
        _idle_contexts[variant] = context
