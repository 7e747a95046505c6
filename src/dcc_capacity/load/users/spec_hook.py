"""Loads the run spec in a Locust process before any other ``init`` listener reads Locust's options.

Imported first by the locustfile, so its listener runs first: the spec (``--dcc-spec FILE``, or the generated
``--dcc-*`` options) is validated once and written over the options it generates (spec/options.py), and the
load code that reads ``--trt-late``, ``--max-in-flight`` ... sees the spec's values. A bad spec is one line and
exit 2, before any user, shape or connection exists.
"""

from __future__ import annotations

import sys
from typing import Any

from locust import events

from dcc_capacity.errors import InputError
from dcc_capacity.spec.options import apply_to_options, has_spec, spec_from_options

__all__: list[str] = []


@events.init.add_listener
def _load_spec(environment: Any, **_: Any) -> None:
    opts = environment.parsed_options
    if not has_spec(opts):
        return
    try:
        apply_to_options(spec_from_options(opts), opts)
    except InputError as exc:
        print(f"dcc-capacity: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
