"""From ``run --config FILE`` plus the command line to what the run needs: options, Locust arguments, audit trail.

Precedence: a flag given on the command line wins, then the environment
(``DCC_CAPACITY_RUN_<FLAG>``, as pip reads ``PIP_<OPTION>`` and Locust
``LOCUST_<OPTION>``: a CI job sets a run's settings without editing its
command), then the configuration file, then the built-in default. argparse
cannot tell "given" from "default", so :func:`add_options` wraps the defaults
of the options a file may set in :class:`_Default` (argparse leaves
non-string defaults alone) and :func:`resolve_args` replaces every one still
wrapped by the environment's value, the file's, or the plain default.

:func:`map_config` turns the validated :class:`~dcc_capacity.config.runconfig.RunConfig`
into the Locust options the user processes read (TLS and response checking
by name, as ``--tls-*`` / ``--response-cert`` / ``--adapter``; the user's own
signing keys as ``--signing-keys FILE``), the embedded emulator's overrides
(trust the user's certificates), the files to put into the run folder (the
signing-keys file and a redacted copy of the configuration) and the audit
entry for run.json: certificate SHA-256 fingerprints and key paths, never a
key or a password. Keys are opened here once, so a wrong password fails at
once with exit 2, before anything is started.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dcc_capacity.config.redact import redact
from dcc_capacity.errors import InputError
from dcc_capacity.spec.safety import is_loopback

__all__ = ["ENV_PREFIX", "Mapped", "add_options", "env_name", "from_environment", "locust_args_for", "map_config",
           "resolve_args"]

ENV_PREFIX = "DCC_CAPACITY_RUN_"


def _config_keys() -> dict[str, str]:
    """args dest -> dotted key in the configuration file: the run spec's (generated), then the run's own."""
    from dcc_capacity.spec.surfaces import all_knobs

    keys = {k.dest: k.config for k in all_knobs().values() if k.cli and k.config is not None}
    return {**keys, "nfr": "run.nfr", "workers": "run.workers", "host": "target.host",
            "users_file": "run.users_file", "sftp_known_hosts": "run.sftp_known_hosts"}


CONFIG_KEYS: dict[str, str] = _config_keys()


def env_name(dest: str) -> str:
    """The variable that sets the run option ``dest``: ``--max-send-lag`` -> DCC_CAPACITY_RUN_MAX_SEND_LAG."""
    return ENV_PREFIX + dest.upper()


class _Default:
    """An argparse default the user did not override (so the environment or the configuration file may)."""

    __slots__ = ("action", "value")

    def __init__(self, value: Any, action: argparse.Action | None = None) -> None:
        self.value, self.action = value, action

    def __repr__(self) -> str:
        return repr(self.value)

    def __str__(self) -> str:
        return str(self.value)


def add_options(p: argparse.ArgumentParser) -> None:
    """``--config`` and ``--yes``; the defaults of the options a configuration may set become overridable."""
    p.add_argument("--config", type=Path, default=None,
                   help="run configuration (TOML or YAML): target, TLS, own signing keys, safety; "
                        "see docs/real-environment.md. Flags given here override it")
    p.add_argument("--yes", action="store_true",
                   help="confirm a --host that is not loopback (a real environment) may be loaded")
    p.epilog = ((p.epilog or "") + f" Each setting a --config file may hold can also come from the environment: "
                f"{ENV_PREFIX}<FLAG> (e.g. {env_name('max_send_lag')}=1000); a flag wins over the environment, the "
                "environment over the file. run.json's command_line records the variables used.").strip()
    for action in p._actions:
        if action.dest in CONFIG_KEYS:
            action.default = _Default(action.default, action)
            if action.dest == "test":
                action.required = False  # may come from the configuration; checked in resolve_args


def resolve_args(args: argparse.Namespace) -> tuple[Any, Any]:
    """Fill ``args`` from ``--config`` where no flag was given; return (RunConfig, its source) or (None, None)."""
    cfg = src = None
    if getattr(args, "config", None) is not None:
        from dcc_capacity.config.runconfig import load_run_config

        cfg, src = load_run_config(args.config)
    args.env_settings, args.env_flags = {}, {}
    for dest, dotted in CONFIG_KEYS.items():
        value = getattr(args, dest, None)
        if not isinstance(value, _Default):
            continue
        text = os.environ.get(env_name(dest))
        if text is not None and value.action is not None:
            setattr(args, dest, _from_env(value.action, text))
            args.env_settings[env_name(dest)] = text
            args.env_flags[value.action.option_strings[0]] = env_name(dest)
            continue
        from_file = _get(cfg, dotted) if cfg is not None else None
        if from_file is None:
            setattr(args, dest, value.value)
        elif dest in ("nfr", "users_file", "sftp_known_hosts"):
            setattr(args, dest, Path(from_file))
        else:
            setattr(args, dest, from_file)
    if getattr(args, "test", None) is None:
        raise InputError("the test to run is missing: give --test or run.test in the configuration", key="--test")
    return cfg, src


def _from_env(action: argparse.Action, text: str) -> Any:
    """The option's value from its environment variable, converted as its flag would be (exit 2 naming it)."""
    name, flag = env_name(action.dest), action.option_strings[0]
    if action.nargs == 0:  # a switch (store_true)
        word = text.strip().lower()
        if word in ("1", "true", "yes", "on", "0", "false", "no", "off", ""):
            return word in ("1", "true", "yes", "on")
        raise InputError(f"must be true or false, as {flag} is a switch (got {text!r})", key=name)
    value: Any = text
    if callable(action.type):
        try:
            value = action.type(text)
        except (TypeError, ValueError, argparse.ArgumentTypeError):
            kind = getattr(action.type, "__name__", "value")
            raise InputError(f"not a valid {kind} for {flag} (got {text!r})", key=name) from None
    if action.choices is not None and value not in action.choices:
        raise InputError(f"must be one of {', '.join(map(str, action.choices))} (got {text!r})", key=name)
    from dcc_capacity.spec.model import check_bounds, parse_duration
    from dcc_capacity.spec.surfaces import all_knobs

    for k in all_knobs().values():  # the spec's bounds, said of the variable (the flag's own message names the flag)
        if k.cli and k.dest == action.dest:
            try:
                check_bounds(k, parse_duration(value, name) if k.kind == "duration" else value)
            except InputError as exc:
                raise InputError(exc.detail, key=name) from None
    return value


def from_environment(exc: InputError, args: argparse.Namespace) -> InputError:
    """``exc`` said of the environment variable when the flag it names was set there (the user never typed it)."""
    name = getattr(args, "env_flags", {}).get(exc.key or "")
    return InputError(exc.detail, file=exc.file, key=f"{name} ({exc.key})", line=exc.line) if name else exc


def _value(args: argparse.Namespace, name: str) -> Any:
    """``args.<name>``, unwrapped when it is still a :class:`_Default` (not yet through resolve_args)."""
    v = getattr(args, name, None)
    return v.value if isinstance(v, _Default) else v


def _get(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part, None)
    return obj


@dataclass
class Mapped:
    """What a configuration adds to a run (all empty without one)."""

    locust_args: list[str] = field(default_factory=list)
    emulator: dict[str, Any] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    """Run-folder relative path -> content (no secret in any of them)."""
    audit: dict[str, Any] = field(default_factory=dict)
    confirmed: bool = False
    callback_host: str = "127.0.0.1"
    callback_port: int = 0
    emulator_callback_url: str | None = None
    """callback.public_url when it is loopback (what an embedded emulator may post to), else None."""
    telemetry: Any = None
    """The file's ``[telemetry]`` section (a TelemetryConfig), None without a configuration."""
    config_file: str | None = None


def locust_args_for(cfg: Any, signing_keys: Path | None) -> list[str]:
    """The Locust options the user processes read, only those that differ from their defaults.

    TLS, response checking and adapters are built by their own module under
    these exact option names; a plain configuration passes none of them.
    """
    a: list[str] = []
    t = cfg.tls
    for flag, value in (("--tls-client-cert", t.client_cert), ("--tls-client-key", t.client_key),
                        ("--tls-pkcs12", t.pkcs12), ("--tls-key-password-env", t.key_password_env),
                        ("--tls-ca", t.ca_bundle), ("--callback-tls-cert", t.callback_cert),
                        ("--callback-tls-key", t.callback_key), ("--callback-tls-client-ca", t.callback_client_ca)):
        if value:
            a += [flag, str(value)]
    if not t.verify:
        a.append("--tls-no-verify")
    for cert in cfg.responses.dcc_certs:
        a += ["--response-cert", str(cert)]
    if "adapter" in cfg.target.model_fields_set:
        a += ["--adapter", cfg.target.adapter]
    ep = cfg.target.endpoints
    for flag, value, default in (("--path-s", ep.S, "/api/v1/serviceS"), ("--path-t", ep.T, "/api/v1/serviceT"),
                                 ("--path-d", ep.D, "/api/v1/serviceD")):
        if value != default:
            a += [flag, value]
    if signing_keys is not None:
        a += ["--signing-keys", str(signing_keys)]
    return a  # the safety ceilings travel in the run spec (spec.json), as every other run setting


def map_config(cfg: Any, src: Any, args: argparse.Namespace, out: Path) -> Mapped:
    """Everything a configuration adds to the run of ``args`` writing into ``out``."""
    m = Mapped(confirmed=bool(getattr(args, "yes", False)))
    listed = _users_file(args)  # read once, now: a bad row is exit 2 before anything starts
    if cfg is None:
        _use_users_file(args, m)
        return m
    from dcc_capacity.config.source import sub_source
    from dcc_capacity.duis.signingkeys import SigningKey, load_credentials, signing_keys_json
    from dcc_capacity.emulator.config import check_section

    file = str(src.path)
    host = _value(args, "host")
    m.confirmed = m.confirmed or cfg.safety.confirm_non_loopback
    m.callback_host, m.callback_port = cfg.callback.listen_host, cfg.callback.listen_port
    # The embedded emulator calls back the public URL only on loopback: a rehearsal never posts to the outside.
    url = cfg.callback.public_url
    m.emulator_callback_url = url if url and is_loopback(url) else None
    entries = [SigningKey(eui=u.eui, roles=tuple(u.roles), cert=u.cert, key=u.key, pkcs12=u.pkcs12,
                          password_env=u.password_env, where=f"signing[{i}]") for i, u in enumerate(cfg.signing)]
    creds = load_credentials(entries, file) if entries else []
    keys_file: Path | None = None
    if entries:
        keys_file = (out / "signing-keys.json").resolve()
        m.files["signing-keys.json"] = signing_keys_json(entries)  # run_test writes it (the folder is new then)
    m.locust_args = locust_args_for(cfg, keys_file)
    if host is None:
        m.emulator = copy.deepcopy(cfg.emulator)  # a rehearsal: the file's own emulator settings (its TLS ...)
        check_section(sub_source(src, "emulator", m.emulator))  # its mistakes as one line, before anything starts
    if creds and host is None:
        # The embedded emulator must trust the user's own certificates (and know their roles).
        trust = []
        for c in creds:
            name = f"logs/signing-{(c.eui or '').replace('-', '')}.pem"
            m.files[name] = c.cert_pem()
            trust.append(str((out / name).resolve()))
        m.emulator["trust_certs"] = [*m.emulator.get("trust_certs", []), *trust]
        users = m.emulator.setdefault("users", {})
        for c in creds:  # a users file is the role model for the EUIs it lists, not the signing entries
            if c.roles and c.eui not in listed:
                users.setdefault(c.eui, {}).setdefault("roles", sorted(c.roles))
    if host is None and cfg.target.endpoints != type(cfg.target.endpoints)():
        ep = cfg.target.endpoints
        m.emulator["paths"] = {"S": ep.S, "T": ep.T, "D": ep.D}
    m.telemetry, m.config_file = cfg.telemetry, file
    _check_telemetry_env(cfg.telemetry, file)
    m.audit = _audit(cfg, src, entries, creds)
    m.audit["tls"].update(_open_tls_key(cfg, file))
    m.files["run-config.json"] = (json.dumps(redact(cfg.model_dump(mode="json")), indent=2) + "\n").encode()
    _use_users_file(args, m)
    return m


def _users_file(args: argparse.Namespace) -> set[str]:
    """The EUIs ``--users-file`` / ``run.users_file`` lists (empty without one), the file checked row by row.

    The file is the embedded emulator's role model, so a ``--host`` beside it is a contradiction, refused."""
    path = _value(args, "users_file")
    if path is None:
        return set()
    if _value(args, "host") is not None:
        raise InputError("a users file sets the embedded emulator's roles: drop it, or drop --host",
                         key="--users-file")
    from dcc_capacity.duis.userroles import load_users_file

    return set(load_users_file(path))


def _use_users_file(args: argparse.Namespace, m: Mapped) -> None:
    """Point the embedded emulator at the users file (it reads the file itself, in its own process)."""
    path = _value(args, "users_file")
    if path is not None:
        m.emulator.setdefault("user_roles", {})["file"] = str(Path(path).resolve())


def _check_telemetry_env(tel: Any, file: str) -> None:
    """Every credential variable the telemetry sources name must be set: exit 2 now, naming it, not a 401 later."""
    import os

    for kind in ("scrape", "prometheus"):
        for i, source in enumerate(getattr(tel, kind)):
            for leaf in ("bearer_token_env", "password_env"):
                name = getattr(source, leaf)
                if name and os.environ.get(name) is None:
                    raise InputError(f"environment variable {name} is not set", file=file,
                                     key=f"telemetry.{kind}[{i}].{leaf}")


def _open_tls_key(cfg: Any, file: str) -> dict[str, Any]:
    """Open the TLS client key (or PKCS#12) once with its password, so a wrong one is exit 2 before any load.

    Returns the audit additions (the PKCS#12 certificate's fingerprint); the key itself is dropped at once.
    """
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    from dcc_capacity.duis.signingkeys import password_from_env

    t = cfg.tls
    if not (t.client_key or t.pkcs12):
        return {}
    password = password_from_env(t.key_password_env, file=file, key="tls.key_password_env")
    path = Path(t.pkcs12 or t.client_key)
    data = path.read_bytes()
    try:
        if t.pkcs12:
            key, cert, _ = pkcs12.load_key_and_certificates(data, password)
            if key is None or cert is None:
                raise InputError("the PKCS#12 file must hold the client key and certificate", file=file,
                                 key="tls.pkcs12")
            return {"client_cert_sha256": cert.fingerprint(hashes.SHA256()).hex(":")}
        loader = serialization.load_pem_private_key if b"-----BEGIN" in data else \
            serialization.load_der_private_key
        loader(data, password=password)
    except TypeError:
        raise InputError("the key is encrypted: name its password's environment variable in tls.key_password_env"
                         if password is None else "the key is not encrypted: drop tls.key_password_env",
                         file=file, key="tls.pkcs12" if t.pkcs12 else "tls.client_key") from None
    except ValueError:
        raise InputError(f"cannot open {path.name} (wrong password, or not a key)", file=file,
                         key="tls.pkcs12" if t.pkcs12 else "tls.client_key") from None
    return {}


def _cert_fp(path: str | None) -> str | None:
    if not path:
        return None
    from cryptography.hazmat.primitives import hashes

    from dcc_capacity.duis.pki import load_certificate

    return load_certificate(path).fingerprint(hashes.SHA256()).hex(":")


def _audit(cfg: Any, src: Any, entries: list[Any], creds: list[Any]) -> dict[str, Any]:
    """run.json ``real_environment``: where the run went and with which certificates (fingerprints, paths)."""
    from dcc_capacity.duis.signingkeys import audit_entry

    t = cfg.tls
    tls: dict[str, Any] = {"verify": t.verify}
    for k in ("client_cert", "client_key", "pkcs12", "key_password_env", "ca_bundle", "callback_cert",
              "callback_key", "callback_client_ca"):
        v = getattr(t, k)
        if v:
            tls[k] = v
    if t.client_cert:
        tls["client_cert_sha256"] = _cert_fp(t.client_cert)
    if t.callback_cert:
        tls["callback_cert_sha256"] = _cert_fp(t.callback_cert)
    if t.ca_bundle:
        tls["ca_bundle_file_sha256"] = hashlib.sha256(Path(t.ca_bundle).read_bytes()).hexdigest()
    if t.pkcs12:
        tls["pkcs12_file_sha256"] = hashlib.sha256(Path(t.pkcs12).read_bytes()).hexdigest()
    return {
        "config": {"path": str(src.path), "sha256": hashlib.sha256(Path(src.path).read_bytes()).hexdigest()},
        "target": {"host": cfg.target.host, "adapter": cfg.target.adapter,
                   "endpoints": cfg.target.endpoints.model_dump()},
        "callback": cfg.callback.model_dump(),
        "tls": tls,
        "signing": [audit_entry(e, c) for e, c in zip(entries, creds, strict=True)],
        "responses": [{"cert": p, "cert_sha256": _cert_fp(p)} for p in cfg.responses.dcc_certs],
        "safety": cfg.safety.model_dump(),
    }
