"""Jinja2 rendering of ``reports/report.html.j2`` (autoescaped; CSS inlined by include).

Formatting filters live here so every number in the report is shown the
same way, and the template stays free of arithmetic.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from dcc_capacity.paths import data_dir
from dcc_capacity.report.traceability import anchor

__all__ = ["render_html", "template_environment"]


def _num(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, (int, float)):
        if float(value).is_integer() and abs(value) >= 1000:
            return f"{int(value):,}"
        return f"{value:,.{digits}f}"
    return str(value)


def _pct(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value * 100:.{digits}f} %"


def _signed(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value:+.1f} %"


def _metric_value(value: Any, metric: str) -> str:
    if metric.endswith("_rate") and metric != "achieved_rate" or metric == "achieved_ratio":
        return _pct(value)
    return _num(value, 1)


def _when(value: Any) -> str:
    """Epoch seconds (as the operator log writes them) as UTC wall time; strings pass through."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return datetime.fromtimestamp(value, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return str(value)


def template_environment() -> Environment:
    """The Jinja2 environment of every HTML report template (run report, phase report): one set of filters."""
    env = Environment(loader=FileSystemLoader(str(data_dir("reports"))), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(num=_num, pct=_pct, signed=_signed, metric_value=_metric_value, when=_when)
    env.globals["anchor"] = anchor
    return env


def render_html(context: dict[str, Any]) -> str:
    """The whole report as one HTML string."""
    return template_environment().get_template("report.html.j2").render(**context)
