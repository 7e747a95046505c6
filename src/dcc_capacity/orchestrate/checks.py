"""Range checks of the numbers ``dcc-capacity run`` takes, before anything starts.

Why a separate pass: argparse only checks that ``--step 0`` is a float. Left
alone, such a value started Locust and the emulator and failed a minute later
with a misleading message (a stress test of step 0 writes no records), or ran
to the end with nonsense (``--spike-factor -1``, ``--retries -1``), or crashed
the emulator's config validation with a traceback (``--emulator-tps -1``).
Every check here names the option, says the range and what was given: exit 2.
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
    """Raise :class:`InputError` for the first out-of-range number of a :class:`RunOptions` (and a broken --nfr)."""
    s = opts.spec
    _range(s.rate, "--rate", 0, lo_open=True)
    _range(s.step_fraction, "--step", 0, 10, lo_open=True)
    _range(s.start_factor, "--start-factor", 0, lo_open=True)
    _range(s.max_factor, "--max-factor", 0, lo_open=True)
    if s.test == "stress" and s.max_factor < s.start_factor:
        raise InputError(f"must be >= --start-factor {s.start_factor:g} (got {s.max_factor:g})", key="--max-factor")
    _range(s.max_error_rate, "--max-error-rate", 0, 1)
    _range(s.max_p95_ms, "--max-p95-ms", 0)
    _range(s.spike_factor, "--spike-factor", 0, lo_open=True)
    _range(s.burst_factor, "--burst-factor", 0)
    _range(s.secmp0192_share, "secmp0192_share", 0, 1)
    _range(opts.retries, "--retries", 0, 100)
    _range(opts.emulator_tps, "--emulator-tps", 0, lo_open=True)
    _range(opts.web_port, "--web-port", 1, 65535)
    _range(opts.max_in_flight, "--max-in-flight", 1, 1_000_000)
    _range(opts.max_parked, "--max-parked-journeys", 0, 10_000_000)
    _range(opts.max_send_lag_ms, "--max-send-lag", 0, lo_open=True)  # None: the project default
    _range(opts.trt_missing_s, "--trt-missing", 0, 7 * 86400, lo_open=True)
    if opts.trt_late_s > opts.trt_missing_s:
        raise InputError(f"must be <= --trt-missing {opts.trt_missing_s:g} s (got {opts.trt_late_s:g} s)",
                         key="--trt-late")
    _range(opts.drain_s, "--drain", 0, 7 * 86400)
    _range(opts.web_linger_s, "--web-linger", 0, 3600)
    _range(opts.fleet_size, "--fleet-size", 1, 2**32)
    _range(opts.pool_size, "pool_size", 1)
    _range(opts.seed, "--seed", 0)
    if opts.nfr is not None and opts.nfr.is_file():  # a broken NFR file would only surface in the final report
        from dcc_capacity.model.nfr import load_catalogue

        load_catalogue(opts.nfr)
