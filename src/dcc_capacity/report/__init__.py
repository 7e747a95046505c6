"""The evidence report: run folder -> report.html, summary.json, junit.xml (SCTAD 6.3 completion evidence).

Modules, one job each: ``inputs`` (run-folder adapter; records through
:func:`dcc_capacity.load.records.iter_records`), ``issues`` (issues.yaml),
``_files`` (file and field checks), ``quantiles`` (exact out-of-core
percentiles), ``metrics`` (streaming aggregation), ``traceability`` (matrix
and exit criteria; the verdicts are :func:`dcc_capacity.model.nfr.judge`),
``analysis`` (stress knee, extrapolation), ``baseline`` (no-degradation
comparison), ``charts`` (matplotlib -> inline SVG), ``render`` (Jinja2),
``outputs`` (summary.json, junit.xml) and ``build`` (the whole pipeline).
"""

from __future__ import annotations

from dcc_capacity.report.build import ReportOutcome, build_report

__all__ = ["ReportOutcome", "build_report"]
