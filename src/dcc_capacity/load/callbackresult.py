"""What an awaited async response comes to: its result, the failures Locust records, and the censored time.

Kept apart from the listener (callbacks.py) so the journeys and tests that only read results need not know how
responses are correlated.
"""

from __future__ import annotations

from dataclasses import dataclass

from dcc_capacity.errors import RequestFailure

__all__ = ["CallbackResult", "LateResponse", "MissingResponse", "UnknownRequestId", "censored_ms"]


def censored_ms(timeout_ms: float) -> float:
    """The response time a missing response gets in Locust's stats: the timeout, nudged up until Locust's
    histogram bucket (~2 significant digits) is not below it, so the live percentiles never show it lower."""
    from locust import stats

    value = float(timeout_ms)
    step = 1.0 if value < 100 else 10.0 if value < 1000 else 100.0 if value < 10000 else 1000.0
    for _ in range(10):  # bounded: one or two steps with Locust's own bucketing
        if stats.bucket_response_time(value) >= timeout_ms:
            break
        value += step
    return value


class LateResponse(RequestFailure):
    """The async response came, but after the listener's ``late_after_s``."""


class MissingResponse(RequestFailure):
    """No async response within ``missing_after_s``."""


class UnknownRequestId(RequestFailure):
    """A response for a RequestID this process never sent (or long forgot)."""


@dataclass(slots=True)
class CallbackResult:
    """What a waiter gets back: the response (or its absence) and the timings."""

    outcome: str
    """``ok``, ``error`` (DUIS code E...), ``late`` or ``missing``."""
    body: bytes = b""
    arrival_ts: float = float("nan")
    trt_ms: float = float("nan")
    response_code: str = ""
