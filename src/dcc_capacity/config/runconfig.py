"""The run configuration file (``dcc-capacity run --config FILE``): everything a real test environment needs.

One TOML or YAML file holds the target (host, service paths, adapter), the
callback listener, TLS, the Service Users' own signing keys, the DCC
certificates that verify responses, the seed, the safety ceilings and the
run's usual knobs; docs/real-environment.md documents every key and
``examples/real-env.toml`` is a checked example. Secrets are never in the
file: it names the *environment variables* that hold them
(``key_password_env = "DCC_TLS_PASSWORD"``); an inline password is refused
with a message saying so. Relative paths are relative to the file's folder,
so a configuration and its certificates travel together.

Validation follows the profiles (:mod:`dcc_capacity.config.validation`): the first
problem is one line naming the file, the dotted key and (when known) the
line; exit status 2. :func:`load_run_config` reads and checks the file;
:mod:`dcc_capacity.runconfig_apply` maps it onto the run.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

from dcc_capacity.config.redact import is_secret_key
from dcc_capacity.config.source import load_source
from dcc_capacity.config.tls import EnvName
from dcc_capacity.config.validation import validate
from dcc_capacity.config.yamlsource import YamlSource
from dcc_capacity.errors import InputError
from dcc_capacity.spec.surfaces import config_fields
from dcc_capacity.telemetry.config import TelemetryConfig

__all__ = ["RunConfig", "load_run_config", "Callback", "Endpoints", "Responses", "SigningUser", "Target", "Tls"]

_EUI = re.compile(r"^[0-9A-Fa-f]{2}(-[0-9A-Fa-f]{2}){7}$")
_ROLES = ("IS", "ES", "GS", "ED", "GT", "OU", "RSA", "LC")


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Endpoints(_M):
    """Service paths on the target host (DCC Boxed's by default)."""

    S: str = "/api/v1/serviceS"
    T: str = "/api/v1/serviceT"
    D: str = "/api/v1/serviceD"

    @field_validator("S", "T", "D")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.startswith("/") or any(c.isspace() for c in v):
            raise ValueError(f"must be a path starting with / (got {v!r})")
        return v


class Target(_M):
    host: str | None = None
    endpoints: Endpoints = Field(default_factory=Endpoints)
    adapter: str = "duis-http"

    @field_validator("host")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError(f"must be an http(s) URL (got {v!r})")
        return v.rstrip("/") if v else v


class Callback(_M):
    listen_host: str = "127.0.0.1"
    listen_port: int = Field(default=0, ge=0, le=65535)
    public_url: str | None = None

    @field_validator("public_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError(f"must be an http(s) URL (got {v!r})")
        return v


class Tls(_M):
    client_cert: str | None = None
    client_key: str | None = None
    pkcs12: str | None = None
    key_password_env: EnvName = None
    ca_bundle: str | None = None
    verify: bool = True
    callback_cert: str | None = None
    callback_key: str | None = None
    callback_client_ca: str | None = None


class SigningUser(_M):
    eui: str | None = None
    roles: list[str] = Field(default_factory=list)
    key: str | None = None
    cert: str | None = None
    pkcs12: str | None = None
    password_env: EnvName = None

    @field_validator("eui")
    @classmethod
    def _eui(cls, v: str | None) -> str | None:
        if v is not None and not _EUI.match(v):
            raise ValueError(f"must be an EUI-64 such as 90-B3-D5-1F-30-01-00-00 (got {v!r})")
        return v.upper() if v else v

    @field_validator("roles")
    @classmethod
    def _roles(cls, v: list[str]) -> list[str]:
        bad = [r for r in v if r.upper() not in _ROLES]
        if bad:
            raise ValueError(f"unknown role(s) {', '.join(bad)} (SEC roles: {', '.join(_ROLES)})")
        return [r.upper() for r in v]


class Responses(_M):
    dcc_certs: list[str] = Field(default_factory=list)


class _SafetyBase(_M):
    confirm_non_loopback: bool = False
    """A ``target.host`` that is not loopback may be loaded (``run --yes``)."""


class _RunBase(_M):
    nfr: str | None = None
    """NFR file (``--nfr``)."""
    workers: int | None = Field(default=None, ge=0, le=64)
    """Locust workers on loopback (``--workers``)."""
    users_file: str | None = None
    """The embedded emulator's user-role model (``--users-file``): a CSV relative to this file."""
    sftp_known_hosts: str | None = None
    """``--sp CP``: known_hosts file with the CP's SFTP server key (``--sftp-known-hosts``), relative to this file."""


class _RunConfigBase(_M):
    """The whole file. Every section is optional: an empty file is a plain loopback run."""

    target: Target = Field(default_factory=Target)
    callback: Callback = Field(default_factory=Callback)
    tls: Tls = Field(default_factory=Tls)
    signing: list[SigningUser] = Field(default_factory=list)
    responses: Responses = Field(default_factory=Responses)
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)
    """The SUT's resource telemetry: exporters scraped directly and/or Prometheus servers (dcc_capacity.telemetry)."""
    emulator: dict[str, Any] = Field(default_factory=dict)
    """Embedded emulator settings (docs/emulator.md) merged over the generated ones when there is no target.host:
    a loopback rehearsal of the real setup, e.g. its server TLS (``[emulator.tls]``). Validated by the emulator."""


# The run spec's keys (run.*, safety.max_rate / max_duration, seed) are generated from the spec model
# (spec/surfaces.py), so a key, its bounds and its choices are declared once, beside its flag.
Safety = create_model("Safety", __base__=_SafetyBase, **config_fields("safety"))
RunKnobs = create_model("RunKnobs", __base__=_RunBase, **config_fields("run"))
RunConfig = create_model("RunConfig", __base__=_RunConfigBase, **config_fields(""),
                         safety=(Safety, Field(default_factory=Safety)),
                         run=(RunKnobs, Field(default_factory=RunKnobs)))


PATH_KEYS = ("tls.client_cert", "tls.client_key", "tls.pkcs12", "tls.ca_bundle", "tls.callback_cert",
             "tls.callback_key", "tls.callback_client_ca")
"""Dotted keys holding a file path (besides signing[*], responses.dcc_certs, run.profile, run.nfr)."""


def load_run_config(path: str | Path) -> tuple[Any, YamlSource]:
    """Read, check and validate a run configuration; relative paths resolved against the file's folder."""
    p = Path(path)
    src = load_source(p, key="--config")
    if src.data is None:
        src = YamlSource(src.path, {}, src.lines, src.key_lines)
    if not isinstance(src.data, dict):
        raise src.error(None, f"a run configuration is a mapping of sections, not a {type(src.data).__name__}")
    _refuse_inline_secrets(src, src.data, "")
    data = _resolve_paths(src.data, p.parent)
    cfg = validate(RunConfig, YamlSource(src.path, data, src.lines, src.key_lines))
    _check_files(cfg, src)
    _check_consistency(cfg, src)
    return cfg, src


def _refuse_inline_secrets(src: YamlSource, data: Any, prefix: str) -> None:
    if isinstance(data, dict):
        for k, v in data.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if is_secret_key(str(k)):
                raise src.error(key, "inline secrets are not accepted: put the value in an environment variable and "
                                     f"name it with {k}_env (e.g. {k}_env = \"DCC_TLS_PASSWORD\")")
            _refuse_inline_secrets(src, v, key)
    elif isinstance(data, list):
        for i, v in enumerate(data):
            _refuse_inline_secrets(src, v, f"{prefix}[{i}]")
    elif isinstance(data, str) and "PRIVATE KEY-----" in data:
        raise src.error(prefix, "an inline private key is not accepted: give the path of the key file")


def _resolve_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """A copy with every path-valued key made absolute against ``base`` (the configuration's folder)."""
    import copy

    out = copy.deepcopy(data)

    def fix(v: Any) -> Any:
        if isinstance(v, str) and v and not Path(v).is_absolute():
            return str((base / v).resolve())
        return v

    for dotted in PATH_KEYS:
        *parents, leaf = dotted.split(".")
        node: Any = out
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and leaf in node:
            node[leaf] = fix(node[leaf])
    for user in out.get("signing") or []:
        if isinstance(user, dict):
            for leaf in ("key", "cert", "pkcs12"):
                if leaf in user:
                    user[leaf] = fix(user[leaf])
    resp = out.get("responses")
    if isinstance(resp, dict) and isinstance(resp.get("dcc_certs"), list):
        resp["dcc_certs"] = [fix(v) for v in resp["dcc_certs"]]
    emu = out.get("emulator")
    if isinstance(emu, dict):
        _resolve_emulator_paths(emu, fix)
    tel = out.get("telemetry")
    if isinstance(tel, dict):
        for kind in ("scrape", "prometheus"):
            sources = tel.get(kind)
            for source in sources if isinstance(sources, list) else []:
                if isinstance(source, dict) and isinstance(source.get("ca_bundle"), str):
                    source["ca_bundle"] = fix(source["ca_bundle"])
    knobs = out.get("run")
    if isinstance(knobs, dict):
        for leaf in ("nfr", "users_file", "sftp_known_hosts"):
            if isinstance(knobs.get(leaf), str):
                knobs[leaf] = fix(knobs[leaf])
        prof = knobs.get("profile")
        if isinstance(prof, str) and (base / prof).exists():  # else a bare ioc/moc/foc or a cwd-relative path
            knobs["profile"] = fix(prof)
    return out


_EMULATOR_PATH_KEYS = frozenset({"cert", "key", "client_ca", "ca", "client_cert", "client_key", "registry",
                                 "schema_path", "pki_dir", "root"})


def _resolve_emulator_paths(d: dict[str, Any], fix: Any) -> None:
    """The emulator section's file and folder paths (any depth), relative to the configuration's folder."""
    for k, v in d.items():
        if isinstance(v, dict):
            _resolve_emulator_paths(v, fix)
        elif k in _EMULATOR_PATH_KEYS and isinstance(v, str):
            d[k] = fix(v)
        elif k == "trust_certs" and isinstance(v, list):
            d[k] = [fix(x) for x in v]


def _check_files(cfg: Any, src: YamlSource) -> None:
    def need(key: str, value: str | None) -> None:
        if value is not None and not Path(value).is_file():
            raise src.error(key, f"no such file: {value}")

    for dotted in PATH_KEYS:
        obj: Any = cfg
        for part in dotted.split("."):
            obj = getattr(obj, part, None) if obj is not None else None
        need(dotted, obj)
    for i, u in enumerate(cfg.signing):
        for leaf in ("key", "cert", "pkcs12"):
            need(f"signing[{i}].{leaf}", getattr(u, leaf))
    for i, c in enumerate(cfg.responses.dcc_certs):
        need(f"responses.dcc_certs[{i}]", c)
    need("run.nfr", cfg.run.nfr)
    need("run.users_file", cfg.run.users_file)
    need("run.sftp_known_hosts", cfg.run.sftp_known_hosts)
    for kind in ("scrape", "prometheus"):
        for i, source in enumerate(getattr(cfg.telemetry, kind)):
            need(f"telemetry.{kind}[{i}].ca_bundle", source.ca_bundle)


def _check_consistency(cfg: Any, src: YamlSource) -> None:
    t = cfg.tls
    if t.pkcs12 and (t.client_cert or t.client_key):
        raise src.error("tls.pkcs12", "give either pkcs12 or client_cert + client_key, not both")
    if bool(t.client_cert) != bool(t.client_key):
        raise src.error("tls.client_key" if t.client_cert else "tls.client_cert",
                        "client_cert and client_key go together")
    if bool(t.callback_cert) != bool(t.callback_key):
        raise src.error("tls.callback_key" if t.callback_cert else "tls.callback_cert",
                        "callback_cert and callback_key go together")
    if t.callback_client_ca and not t.callback_cert:
        raise src.error("tls.callback_client_ca", "needs callback_cert and callback_key (the listener serves HTTPS)")
    for i, u in enumerate(cfg.signing):
        if u.pkcs12 and (u.key or u.cert):
            raise src.error(f"signing[{i}].pkcs12", "give either pkcs12 or key + cert, not both")
        if not u.pkcs12 and not (u.key and u.cert):
            raise src.error(f"signing[{i}]", "needs key and cert (PEM or DER), or pkcs12")
    if cfg.safety.max_duration is not None:
        from dcc_capacity.spec.model import parse_duration

        try:
            parse_duration(cfg.safety.max_duration, "safety.max_duration")
        except InputError as exc:
            raise src.error("safety.max_duration", exc.detail) from None
    if cfg.target.adapter not in ("duis-http",) and ":" not in cfg.target.adapter and \
            not re.match(r"^[a-z0-9-]+$", cfg.target.adapter):
        raise src.error("target.adapter", "a built-in adapter name (duis-http, cp-sftp) or module:Class")
