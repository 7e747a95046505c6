"""The ``[telemetry]`` section of the run configuration: where the SUT's resource figures come from.

Why a section of the run configuration and not flags: the hosts of a real
test environment, their exporters, the Prometheus server and its
credentials belong with the rest of the target's description (the same
file, validated the same way, one line and exit 2 on a mistake). Secrets
are named by environment variable only (``*_env``), like every other secret
of the file; :mod:`dcc_capacity.config.runconfig` refuses inline ones.

Two kinds of source, usable together:

* ``[[telemetry.scrape]]``: a Prometheus exposition endpoint scraped directly
  (a node_exporter: ``kind = "node"``; the SP's own ``/metrics`` with the
  standard client-library process metrics: ``kind = "process"``);
* ``[[telemetry.prometheus]]``: a Prometheus server asked over its HTTP API
  (instant queries every interval; the default PromQL expects node_exporter
  metrics, any query may be replaced).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["DEFAULT_INTERVAL_S", "METRIC_NAMES", "PrometheusSource", "ScrapeTarget", "TelemetryConfig"]

DEFAULT_INTERVAL_S = 5.0
"""Project default sampling interval: fine enough for a 10-minute load test, light on a day-long soak."""
DEFAULT_TIMEOUT_S = 2.0

METRIC_NAMES = ("cpu_percent", "mem_percent", "mem_used_bytes", "disk_read_bytes_s", "disk_write_bytes_s",
                "disk_busy_percent", "net_rx_bytes_s", "net_tx_bytes_s", "process_cpu_percent", "process_rss_bytes")
"""The resource figures recorded per host (columns of resources.csv; NFR metrics of the same names)."""

_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NAME = re.compile(r"^[A-Za-z0-9_.:-]+$")


def _env_name(v: str | None) -> str | None:
    if v is not None and not _ENV.match(v):
        raise ValueError("must be the NAME of an environment variable (e.g. DSP_PROM_TOKEN), not a secret")
    return v


def _seconds(v: str | float | int) -> float:
    from dcc_capacity.errors import InputError
    from dcc_capacity.spec.model import parse_duration

    try:
        return parse_duration(v, "")
    except InputError as exc:
        raise ValueError(exc.detail) from None


def _regex(v: str) -> str:
    try:
        re.compile(v)
    except re.error as exc:
        raise ValueError(f"not a regular expression ({exc})") from None
    return v


EnvName = Annotated[str | None, AfterValidator(_env_name)]
Seconds = Annotated[str | float | int, AfterValidator(_seconds)]
Regex = Annotated[str, AfterValidator(_regex)]


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class _Http(_M):
    """Credentials and TLS of one HTTP source (secrets by environment variable only)."""

    url: str
    bearer_token_env: EnvName = None
    username: str | None = None
    password_env: EnvName = None
    ca_bundle: str | None = None
    verify: bool = True

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")) or any(c.isspace() for c in v):
            raise ValueError(f"must be an http(s) URL (got {v!r})")
        if "@" in v.split("/")[2]:
            raise ValueError("credentials in the URL are not accepted: use username + password_env or "
                             "bearer_token_env")
        return v

    @model_validator(mode="after")
    def _auth(self) -> _Http:
        if self.password_env and not self.username:
            raise ValueError("password_env needs username (HTTP basic authentication)")
        if self.bearer_token_env and self.username:
            raise ValueError("give bearer_token_env or username + password_env, not both")
        return self


class ScrapeTarget(_Http):
    """One exposition endpoint, scraped every interval; ``host`` names it in the report and for ``per: host``."""

    host: str
    kind: Literal["node", "process"] = "node"
    disk_exclude: Regex = r"^(loop|ram|fd|sr)\d+$|^dm-"
    """node: block devices left out of disk I/O (loop devices; device-mapper volumes double-count their disks)."""
    net_exclude: Regex = r"^(lo|veth.*|docker\d*|br-.*)$"
    """node: network interfaces left out of network I/O (loopback and container bridges by default)."""
    cpu_seconds_metric: str = "process_cpu_seconds_total"
    """process: the CPU-seconds counter (the client libraries' standard name)."""
    rss_metric: str = "process_resident_memory_bytes"

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"a host name of letters, digits and . _ : - (got {v!r})")
        return v


class PrometheusSource(_Http):
    """A Prometheus server: one instant query per metric every interval, one series per host."""

    selector: str = ""
    """Label matchers added to every default query, e.g. ``job="dsp-node"`` (without braces)."""
    host_label: str = "instance"
    hosts: dict[str, str] = Field(default_factory=dict)
    """host_label value -> the name shown in the report (e.g. ``"10.0.0.5:9100" = "dsp-app-1"``)."""
    rate_window: str = "1m"
    """The range of rate() in the default queries: at least two of Prometheus's own scrape intervals."""
    disk_exclude: str = "(loop|ram|fd|sr)[0-9]+|dm-.*"
    """Block devices left out of the default disk queries (PromQL regex, fully anchored)."""
    net_exclude: str = "lo|veth.*|docker[0-9]*|br-.*"
    """Interfaces left out of the default network queries (PromQL regex, fully anchored)."""
    queries: dict[str, str] = Field(default_factory=dict)
    """metric -> PromQL replacing the default; it must return one series per host, labelled with host_label."""

    @field_validator("queries")
    @classmethod
    def _known(cls, v: dict[str, str]) -> dict[str, str]:
        bad = [k for k in v if k not in METRIC_NAMES]
        if bad:
            raise ValueError(f"unknown metric(s) {', '.join(bad)} (one of {', '.join(METRIC_NAMES)})")
        return v

    @field_validator("rate_window")
    @classmethod
    def _window(cls, v: str) -> str:
        if not re.match(r"^\d+(ms|s|m|h)$", v):
            raise ValueError(f"a Prometheus duration such as 30s or 1m (got {v!r})")
        return v

    @field_validator("selector")
    @classmethod
    def _selector(cls, v: str) -> str:
        if "{" in v or "}" in v:
            raise ValueError('label matchers without braces, e.g. job="dsp-node"')
        return v


class TelemetryConfig(_M):
    """The whole section; without any source nothing is collected (and the report says so)."""

    interval: Seconds = DEFAULT_INTERVAL_S
    timeout: Seconds = DEFAULT_TIMEOUT_S
    scrape: list[ScrapeTarget] = Field(default_factory=list)
    prometheus: list[PrometheusSource] = Field(default_factory=list)

    @field_validator("interval")
    @classmethod
    def _interval(cls, v: float) -> float:
        if not 0.2 <= float(v) <= 3600:
            raise ValueError(f"must be between 0.2 s and 1 h (got {v})")
        return float(v)

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, v: float) -> float:
        if not 0.05 <= float(v) <= 60:
            raise ValueError(f"must be between 0.05 s and 60 s (got {v})")
        return float(v)

    @model_validator(mode="after")
    def _unique(self) -> TelemetryConfig:
        seen: set[tuple[str, str]] = set()
        for t in self.scrape:
            if (t.host, t.kind) in seen:
                raise ValueError(f"host {t.host!r} has two {t.kind} scrape targets")
            seen.add((t.host, t.kind))
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.scrape or self.prometheus)
