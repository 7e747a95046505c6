"""Range checks of the numbers ``dcc-capacity run`` takes, before anything starts.

Why a separate pass: argparse only checks that ``--emulator-tps -1`` is a float. Left
alone, such a value crashed the emulator's config validation with a traceback.
The run spec's numbers are checked by the spec itself (bounds beside each field,
spec/model.py). Every check names the option, says the range and what was
given: exit 2.
"""

from __future__ import annotations

import math
from typing import Any

from dcc_capacity.errors import InputError

__all__ = ["check_run_numbers"]


def _finite(value: float, key: str) -> float:
    if not math.isfinite(value):
        raise InputError(f"must be a finite number (got {value})", key=key)
    return value


def _num(x: float) -> str:
    return f"{x:g}" if abs(x) < 1e6 else f"{x:,.0f}"


def _range(value: float | int | None, key: str, lo: float | None = None, hi: float | None = None, *,
           lo_open: bool = False) -> None:
    if value is None:
        return
    _finite(float(value), key)
    low_bad = lo is not None and (value <= lo if lo_open else value < lo)
    high_bad = hi is not None and value > hi
    if low_bad or high_bad:
        low = "" if lo is None else (f"> {_num(lo)}" if lo_open else f">= {_num(lo)}")
        high = "" if hi is None else f"<= {_num(hi)}"
        raise InputError(f"must be {' and '.join(x for x in (low, high) if x)} (got {value})", key=key)


def check_run_numbers(opts: Any) -> None:
    """Raise :class:`InputError` for the first out-of-range number of a :class:`RunOptions` (and a broken --nfr).

    The spec's own numbers (``--rate``, ``--step``, ``--retries`` ...) were checked when it was made, against the
    bounds declared beside each field (spec/model.py); these are the run's.
    """
    _range(opts.emulator_tps, "--emulator-tps", 0, lo_open=True)
    _range(opts.web_port, "--web-port", 1, 65535)
    _range(opts.web_linger_s, "--web-linger", 0, 3600)
    if opts.nfr is not None and opts.nfr.is_file():  # a broken NFR file would only surface in the final report
        from dcc_capacity.model.nfr import load_catalogue

        load_catalogue(opts.nfr)
