"""The run spec inside Locust: ``--dcc-spec FILE`` (what ``dcc-capacity run`` writes), or the generated options.

``dcc-capacity run`` writes ``<run>/spec.json`` and passes ``--dcc-spec`` to the master and every worker, which
load and validate that same object. A plain ``locust -f locustfiles/dcc.py`` run gives the settings as Locust
options instead: one per spec field, ``--dcc-`` + the ``run`` flag (``--dcc-duration``, ``--dcc-max-factor``),
registered here from the spec model; the measurement settings keep the options load/runcontext.py registers for
any open-model locustfile (``--trt-late``, ``--drain``, ``--max-in-flight`` ...).

Once the spec is loaded (the first ``init`` listener: this module is imported before the load code), its values
are written over the options it generated, so every reader of Locust's options sees the same settings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dcc_capacity.errors import InputError
from dcc_capacity.spec.model import SpecBase, knobs_of
from dcc_capacity.spec.surfaces import all_knobs, arg_kwargs, help_text
from dcc_capacity.testtypes.registry import NAMES, spec_class, validate_spec

__all__ = ["SPEC_FILE", "add_locust_options", "apply_to_options", "has_spec", "load_spec", "spec_from_options",
           "write_spec"]

SPEC_FILE = "spec.json"
_loaded: dict[str, SpecBase] = {}


def write_spec(spec: SpecBase, run_dir: Path) -> Path:
    """``<run_dir>/spec.json``: the validated spec every Locust process loads (absolute path returned)."""
    path = (run_dir / SPEC_FILE).resolve()
    path.write_text(json.dumps(spec.to_dict(), indent=2) + "\n")
    return path


def load_spec(path: str | Path) -> SpecBase:
    """The spec in ``path`` (validated; one line naming the file and field when it is not a spec)."""
    key = str(path)
    if key not in _loaded:
        try:
            data = json.loads(Path(path).read_text())
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror}", file=path, key="--dcc-spec") from None
        except ValueError as exc:
            raise InputError(f"not valid JSON: {exc}", file=path) from None
        if not isinstance(data, dict):
            raise InputError("must be a JSON object (a run spec)", file=path)
        _loaded[key] = validate_spec(data, where=key)
    return _loaded[key]


def add_locust_options(parser: Any) -> None:
    """``--dcc-spec`` and one ``--dcc-*`` option per spec field this locustfile owns."""
    g = parser.add_argument_group("dcc-capacity run spec (docs/running.md; dcc-capacity run --help says the same)")
    g.add_argument("--dcc-spec", default="", help="spec.json written by dcc-capacity run: every setting below "
                                                  "comes from it (the options are then ignored).")
    for k in all_knobs().values():
        if not k.owned or k.locust is None:
            continue
        if k.name == "test":  # on the parser itself, so Locust's web UI offers the test types in its Start form
            parser.add_argument(k.locust, default="load", choices=NAMES, include_in_web_ui=True,
                                help="dcc-capacity: the test to run")
            continue
        g.add_argument(k.locust, dest=k.locust_dest, help=help_text(k), **arg_kwargs(k, k.text(k.default)))


def has_spec(opts: Any) -> bool:
    """Locust's options carry a run spec (this locustfile's options, not another locustfile's)."""
    return opts is not None and (bool(getattr(opts, "dcc_spec", "")) or hasattr(opts, "dcc_test"))


def spec_from_options(opts: Any) -> SpecBase:
    """The run's spec: from ``--dcc-spec`` when given, else from the options (defaults where there are none)."""
    path = getattr(opts, "dcc_spec", "") if opts is not None else ""
    if path:
        return load_spec(path)
    test = (getattr(opts, "dcc_test", None) if opts is not None else None) or "load"
    values: dict[str, Any] = {"test": test}
    for name, k in knobs_of(spec_class(test)).items():
        if name == "test" or k.locust_dest is None or opts is None:
            continue
        v = getattr(opts, k.locust_dest, None)
        if v is None or (not k.owned and v == 0 and (k.lo or 0) > 0):
            continue  # a library option left unset (--max-in-flight 0): the spec's default stands
        values[name] = v
    return validate_spec(values)


def apply_to_options(spec: SpecBase, opts: Any) -> None:
    """Write the spec's values over the Locust options it generates, so every reader sees the same settings."""
    for name, k in knobs_of(type(spec)).items():
        if k.locust_dest is not None:
            v = getattr(spec, name)
            setattr(opts, k.locust_dest, v if k.kind not in ("duration", "list") or not k.owned else k.text(v))
