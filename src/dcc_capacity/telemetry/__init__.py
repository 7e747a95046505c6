"""Resource telemetry from the system under test: CPU, memory, disk and network per host (SCTAD 3.4, 7.2).

Collected during every run from what Service Providers already run:
Prometheus exposition endpoints (node_exporter, the SP's own ``/metrics``)
scraped directly, and/or a Prometheus server over its HTTP API; configured
in the run configuration's ``[telemetry]`` section (docs/real-environment.md).
The embedded emulator's own ``/metrics.json`` goes through the same
collector. Flow: :mod:`.config` (what to collect) -> :mod:`.sources` (one
sample, a gap on failure) -> :mod:`.collector` (one loop per run, files in
the run folder) -> the report (``report/resources.py``) and the live views.
"""

from __future__ import annotations

from dcc_capacity.telemetry.collector import CSV_COLUMNS, LIVE_FILE, Collector, build_collector, live_summary, read_live
from dcc_capacity.telemetry.config import (
           DEFAULT_INTERVAL_S,
           METRIC_NAMES,
           PrometheusSource,
           ScrapeTarget,
           TelemetryConfig,
)

__all__ = ["CSV_COLUMNS", "DEFAULT_INTERVAL_S", "LIVE_FILE", "METRIC_NAMES", "Collector", "PrometheusSource",
           "ScrapeTarget", "TelemetryConfig", "build_collector", "live_summary", "read_live"]
