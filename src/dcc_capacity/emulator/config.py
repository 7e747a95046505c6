"""Emulator configuration: one pydantic model, from a YAML/JSON/TOML file and CLI overrides.

Every knob has a documented default (docs/emulator.md) chosen so that the
suite's own short runs see a healthy system, while a stress ramp can find the
knee: capacity 1,350 TPS (the DSP's capacity in SECMP0067, March 2020), a
worker pool that can carry it, a bounded queue, and traffic management that
admits a little more than capacity so latency rises before throttling bites.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dcc_capacity.config.source import load_source, sub_source
from dcc_capacity.config.tls import ClientTlsSettings, ServerTlsSettings
from dcc_capacity.config.validation import validate
from dcc_capacity.config.yamlsource import YamlSource
from dcc_capacity.emulator.latency import LATENCY_CLASSES, DeviceLatencyConfig, known_classes
from dcc_capacity.emulator.schedules import ScheduledExecutionConfig
from dcc_capacity.errors import InputError

__all__ = ["AlertsConfig", "CapacityConfig", "CPConfig", "CallbackTlsConfig", "DeviceLatencyConfig", "EmulatorConfig",
           "FaultsConfig", "ServiceTime", "ThrottleConfig", "TlsConfig", "UserConfig", "check_section", "load_config",
           "merge_settings", "DevicesConfig", "ErrorBurstConfig", "FallbackConfig", "MissingCodeConfig", "OutageConfig",
           "PPMIDJoinConfig", "Secmp0192Config", "ShareConfig", "UserRolesConfig", "Window"]

SRV_CLASSES = ("critical", "device", "non_device")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ServiceTime(_Model):
    """A service-time distribution in milliseconds."""

    dist: Literal["fixed", "exponential", "lognormal"] = "lognormal"
    mean_ms: float = Field(ge=0, le=600_000)
    sigma: float = Field(default=0.5, ge=0, le=3)
    """Shape of the lognormal (standard deviation of the underlying normal)."""


def _st(mean: float, dist: str = "lognormal") -> ServiceTime:
    return ServiceTime(dist=dist, mean_ms=mean)  # type: ignore[arg-type]


class CapacityConfig(_Model):
    """The queueing model: a TPS ceiling, a worker pool, a bounded queue, service times per SRV class."""

    tps: float = Field(default=1350.0, gt=0, le=1_000_000)
    workers: int = Field(default=64, ge=1, le=10_000)
    queue_limit: int = Field(default=5000, ge=0, le=10_000_000)
    service_time: dict[str, ServiceTime] = Field(default_factory=lambda: {
        "critical": _st(12.0), "device": _st(6.0), "non_device": _st(4.0)})
    """Time a request holds a worker (the DCC's own processing) before its synchronous answer."""
    device_latency: DeviceLatencyConfig = Field(default_factory=DeviceLatencyConfig)
    """Time from the acknowledgement to the asynchronous response (WAN and device round trip; holds no worker),
    per SMETS generation and SRV class: a preset plus overrides (emulator/latency.py, docs/emulator.md)."""
    device_delay: dict[str, ServiceTime] = Field(default_factory=dict)
    """The older form of the device latency, one distribution per class for both generations. Still read so
    existing configs keep working: it overrides the preset, ``device_latency.smets1/smets2`` override it."""

    @field_validator("service_time")
    @classmethod
    def _classes(cls, v: dict[str, ServiceTime]) -> dict[str, ServiceTime]:
        return known_classes(v, SRV_CLASSES)

    @field_validator("device_delay")
    @classmethod
    def _delay_classes(cls, v: dict[str, ServiceTime]) -> dict[str, ServiceTime]:
        return known_classes(v, LATENCY_CLASSES)


class ThrottleConfig(_Model):
    """SECMP0067 traffic management: per-Service-User fair shares of ``total_tps``."""

    enabled: bool = True
    total_tps: float | None = Field(default=None, gt=0)
    """Admitted rate shared by all users; default 1.25 x capacity.tps."""
    burst_s: float = Field(default=1.0, gt=0, le=60)
    """Bucket depth in seconds of a user's share (short bursts pass)."""
    window_s: float = Field(default=2.0, gt=0, le=300)
    """A user counts as active if seen within this window."""


class UserConfig(_Model):
    """Per Service User settings, keyed by EUI-64."""

    callback_url: str | None = None
    roles: list[str] | None = None
    weight: float = Field(default=1.0, gt=0, le=1000)


class UserRolesConfig(_Model):
    """The user-role model behind E1/E2 (``dcc_capacity.duis.userroles``): a preset, plus a users file."""

    preset: Literal["dcc-boxed", "suite"] = "dcc-boxed"
    """``dcc-boxed``: DCC Boxed's test users with the roles DCC Boxed answers for; ``suite``: pki.DEFAULT_USERS."""
    file: str | None = None
    """CSV ``eui,roles,certificate,name``: users of a real configuration (their certificates are trusted)."""


class Window(_Model):
    start_s: float = Field(ge=0)
    duration_s: float = Field(gt=0)


class OutageConfig(_Model):
    """Windows (seconds since start) when the DCC processes nothing; requests queue, then the backlog drains."""

    enabled: bool = False
    windows: list[Window] = Field(default_factory=list)
    every_s: float | None = Field(default=None, gt=0)
    duration_s: float = Field(default=5.0, gt=0)


class ErrorBurstConfig(_Model):
    """Periodic windows in which a share of device requests fail asynchronously (e.g. E20)."""

    enabled: bool = False
    every_s: float = Field(default=60.0, gt=0)
    duration_s: float = Field(default=5.0, gt=0)
    share: float = Field(default=0.5, ge=0, le=1)
    code: str = "E20"


class ShareConfig(_Model):
    enabled: bool = False
    share: float = Field(default=0.01, ge=0, le=1)


class MissingCodeConfig(ShareConfig):
    """A share of async responses without ResponseCode; ``variants`` limits it to those SRVs (None: all)."""

    variants: list[str] | None = None


class PPMIDJoinConfig(_Model):
    """SR 8.11 rejected when JoinTimePeriod > max_join_s (SMETS1 devices; live services criteria, issue 91342)."""

    enabled: bool = True
    max_join_s: int = Field(default=255, ge=1)
    share: float = Field(default=1.0, ge=0, le=1)
    smets1_only: bool = True


class FallbackConfig(_Model):
    """Migration fallout: a share of devices in a migration fails; resubmitting them succeeds."""

    enabled: bool = False
    share: float = Field(default=0.02, ge=0, le=1)
    reprocess_succeeds: bool = True


class FaultsConfig(_Model):
    tamper_responses: ShareConfig = Field(default_factory=lambda: ShareConfig(share=0.05))
    """A share of signed answers (async responses, alerts, CV 2/4/6/8 answers; not I99 acks or rejections) is
    changed after signing, as a man in the middle would: checking signatures (``--response-cert``) must catch it."""
    error_bursts: ErrorBurstConfig = Field(default_factory=ErrorBurstConfig)
    missing_response_code: MissingCodeConfig = Field(default_factory=MissingCodeConfig)
    outage: OutageConfig = Field(default_factory=OutageConfig)
    ppmid_join: PPMIDJoinConfig = Field(default_factory=PPMIDJoinConfig)
    migration_fallout: FallbackConfig = Field(default_factory=FallbackConfig)


class AlertsConfig(_Model):
    """Device alerts at ``per_device_per_day`` x ``devices``, compressed by ``time_scale``."""

    enabled: bool = False
    per_device_per_day: float = Field(default=1.0, ge=0)
    devices: int = Field(default=0, ge=0)
    time_scale: float = Field(default=1.0, gt=0)
    rate_per_s: float | None = Field(default=None, ge=0, le=100_000)
    """Overrides the computed rate when set."""
    codes: list[str] = Field(default_factory=lambda: ["8F35", "8F36", "8F3E"])

    def effective_rate(self) -> float:
        if self.rate_per_s is not None:
            return self.rate_per_s
        return self.per_device_per_day * self.devices / 86400.0 * self.time_scale


class Secmp0192Config(_Model):
    """Which SRVs 5.1 may schedule for SMETS1, and which variants the S1SP accepts with CV 9."""

    enabled: bool = True
    s1sp_cv9_variants: list[str] | None = None
    """Variants the S1SP accepts for DSP-scheduled (CV 9) delivery; default: all DSP-schedulable plus 4.3, 4.4.3.
    Leave one out to see the S1VE12 alert the PIA describes."""
    execution: ScheduledExecutionConfig = Field(default_factory=ScheduledExecutionConfig)
    """Execute accepted 4.3 / 4.4.3 schedules at their times, count DLMS commands (emulator/schedules.py)."""


class DevicesConfig(_Model):
    """Which devices are SMETS1: a registry file, explicit EUIs or EUI prefixes."""

    smets1_prefixes: list[str] = Field(default_factory=lambda: ["00-DB-51"])
    smets1: list[str] = Field(default_factory=list)
    registry: str | None = None
    """CSV with columns device_id,smets (values SMETS1/SMETS2); overrides the prefix rule for listed devices."""
    all_smets1: bool = False


class CPConfig(_Model):
    """The CP's SFTP server (``--sp CP``)."""

    sftp_port: int = Field(default=0, ge=0, le=65535)
    root: str | None = None
    """Folder served; default a temporary folder."""
    username: str = "cp"
    password: str = "cp"


TlsConfig = ServerTlsSettings
"""The emulator's own HTTPS (``tls``): the suite's one server TLS model (config/tls.py)."""
CallbackTlsConfig = ClientTlsSettings
"""How the emulator calls back over https (``callback_tls``): the suite's one client TLS model (config/tls.py)."""


class EmulatorConfig(_Model):
    """Everything the embedded SUT needs; defaults in docs/emulator.md."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    sp: Literal["DSP", "S1SP", "DCO", "CP"] = "DSP"
    paths: dict[str, str] = Field(default_factory=lambda: {
        "S": "/api/v1/serviceS", "T": "/api/v1/serviceT", "D": "/api/v1/serviceD"})
    max_body_bytes: int = Field(default=256 * 1024, ge=1024, le=64 * 1024 * 1024)
    schema_path: str | None = None
    pki_dir: str | None = None
    trust_certs: list[str] = Field(default_factory=list)
    callback_url: str | None = None
    users: dict[str, UserConfig] = Field(default_factory=dict)
    user_roles: UserRolesConfig = Field(default_factory=UserRolesConfig)
    counter_window_s: float = Field(default=2.0, ge=0, le=3600)
    """Seconds a request may arrive after one with a higher RequestID counter from the same originator and
    still be accepted (if its counter is unseen); replays are refused whatever the window. Wall time on the
    emulator's clock, whatever the counter encodes; memory is the counters that arrived in the window
    (emulator/counters.py). 0 = strictly increasing."""
    strict_precommand: bool = True
    capacity: CapacityConfig = Field(default_factory=CapacityConfig)
    throttle: ThrottleConfig = Field(default_factory=ThrottleConfig)
    faults: FaultsConfig = Field(default_factory=FaultsConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    secmp0192: Secmp0192Config = Field(default_factory=Secmp0192Config)
    devices: DevicesConfig = Field(default_factory=DevicesConfig)
    cp: CPConfig = Field(default_factory=CPConfig)
    tls: TlsConfig = Field(default_factory=TlsConfig)
    callback_tls: CallbackTlsConfig = Field(default_factory=CallbackTlsConfig)
    seed: int = 20191113
    fleet_seed: int | None = None
    """With ``fleet_size``: the project's :class:`~dcc_capacity.model.fleet.Fleet` classifies devices no registry,
    explicit EUI or prefix rule names (its installations know their SMETS generation)."""
    fleet_size: int | None = Field(default=None, ge=1, le=1 << 32)
    callback_timeout_s: float = Field(default=10.0, gt=0, le=300)
    callback_concurrency: int = Field(default=32, ge=1, le=1024)
    log_level: Literal["debug", "info", "warning", "error"] = "warning"

    @field_validator("host")
    @classmethod
    def _loopback(cls, v: str) -> str:
        return v.strip()

    @field_validator("paths")
    @classmethod
    def _paths(cls, v: dict[str, str]) -> dict[str, str]:
        bad = sorted(set(v) - {"S", "T", "D"})
        if bad or set(v) != {"S", "T", "D"}:
            raise ValueError("paths needs exactly the keys S, T and D")
        for key, path in v.items():
            if not path.startswith("/"):
                raise ValueError(f"path {key} must start with '/'")
        return v

    @field_validator("users")
    @classmethod
    def _users(cls, v: dict[str, UserConfig]) -> dict[str, UserConfig]:
        return {k.upper(): u for k, u in v.items()}

    @model_validator(mode="after")
    def _tls_pair(self) -> EmulatorConfig:
        if (self.tls.key or self.tls.client_ca) and not self.tls.cert:
            raise ValueError("tls.key and tls.client_ca need tls.cert")
        if self.callback_tls.client_key and not self.callback_tls.client_cert:
            raise ValueError("callback_tls.client_key needs callback_tls.client_cert")
        return self

    @model_validator(mode="after")
    def _fleet_pair(self) -> EmulatorConfig:
        if (self.fleet_seed is None) != (self.fleet_size is None):
            raise ValueError("fleet_seed and fleet_size go together (set both or neither)")
        return self

    @model_validator(mode="after")
    def _throttle_default(self) -> EmulatorConfig:
        if self.throttle.total_tps is None:
            self.throttle.total_tps = self.capacity.tps * 1.25
        return self

    def callback_for(self, eui: str) -> str | None:
        user = self.users.get(eui.upper())
        return (user.callback_url if user and user.callback_url else None) or self.callback_url


def _read(path: Path) -> YamlSource:
    """The file's settings: the whole file, or its ``emulator`` section (a run configuration's ``[emulator]``)."""
    src = load_source(path, key="--config", suffixes=(".yaml", ".yml", ".toml", ".json"), yaml_otherwise=True)
    data = {} if src.data is None else src.data
    if not isinstance(data, dict):
        raise src.error(None, f"the config must be a mapping of settings, not a {type(data).__name__}")
    if isinstance(data.get("emulator"), dict):
        return sub_source(src, "emulator", data["emulator"])
    return YamlSource(src.path, data, src.lines, src.key_lines)


def merge_settings(base: dict, over: dict) -> dict:
    """``over`` merged into ``base`` key by key, nested mappings merged too (neither is changed)."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merge_settings(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def check_section(src: YamlSource, section: str = "emulator") -> EmulatorConfig:
    """A run configuration's emulator section (``src``: its data and lines, see ``config.source.sub_source``),
    validated as an emulator config file is; errors name the key with the section (``emulator.capacity.tps``)."""
    try:
        return validate(EmulatorConfig, src)
    except InputError as exc:
        key = f"{section}.{exc.key}" if exc.key else section
        raise InputError(exc.detail, file=exc.file, key=key, line=exc.line) from None


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> EmulatorConfig:
    """The config from ``path`` (YAML, JSON or TOML; optional) with ``overrides`` merged on top.

    Read and validated as every settings file of the suite is (:mod:`dcc_capacity.config.source`,
    :mod:`dcc_capacity.config.validation`): a bad value is one :class:`InputError` naming the file, the line
    and the dotted key, an unknown key says what was meant.
    """
    src = _read(Path(path)) if path else YamlSource(None, {})  # only command-line settings: no file to name
    data = merge_settings(src.data, overrides) if overrides else src.data
    return validate(EmulatorConfig, YamlSource(src.path, data, src.lines, src.key_lines))
