"""Target adapters: how one step of a journey reaches the system under test, and how its answers come back.

The suite's users, shapes, records and report do not care how a request
travels. An adapter is the one place that does: it sends one request and
returns the synchronous answer, and it sees that asynchronous answers reach
the run's :class:`~dcc_capacity.load.callbacks.CallbackListener` (which correlates
them by RequestID and measures TRT). Built in:

``duis-http`` (default)
    DUIS over HTTP(S) with geventhttpclient; mutual TLS from the ``--tls-*``
    options. The SUT POSTs async responses to the callback listener itself.
``cp-sftp``
    CP migration files over SFTP: a step's body is uploaded as the file its
    path names; the Commissioning Outcome File (or the CP's error file) for
    the step's RequestID (the migration id) is fetched and resolves it.

Choose one with the Locust option ``--adapter NAME``, or ``--adapter
module:Class`` for your own subclass of :class:`TargetAdapter` (e.g. an S1SP
fed by the DSP); docs/adapters.md has a worked example.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from dcc_capacity.errors import InputError

if TYPE_CHECKING:
    from dcc_capacity.load.callbacks import CallbackListener
    from dcc_capacity.load.openmodel import Step

__all__ = ["BUILTIN", "AdapterSettings", "TargetAdapter", "adapter_class", "make_adapter"]


@dataclass
class AdapterSettings:
    """What an adapter is built from: the target, Locust's parsed options, limits, the run's listener."""

    host: str
    options: Any = None
    """Locust's parsed options (``--tls-*``, your own options); None outside Locust."""
    concurrency: int = 1000
    connection_timeout: float = 10.0
    network_timeout: float = 60.0
    listener: Callable[[], CallbackListener | None] = field(default=lambda: None)
    """The run's callback listener, looked up at use time (it starts with the test)."""


class TargetAdapter:
    """Send one request, return its synchronous answer; see that its async answers reach the listener.

    Subclasses set ``name`` and implement :meth:`send`; :meth:`start` and
    :meth:`close` are optional. ``send`` runs in the arrival's greenlet, so
    blocking I/O must be gevent-cooperative (plain sockets, geventhttpclient,
    paramiko). Raise on a transport failure (connection refused, timeout):
    the open model records it as an ``error`` with the exception's text.
    An adapter whose SUT does not call back resolves expected responses with
    ``self.settings.listener().resolve(request_id, body, response_code)``.
    """

    name: ClassVar[str] = ""

    def __init__(self, settings: AdapterSettings) -> None:
        self.settings = settings

    def start(self) -> None:
        """Connect (called once from the user's ``on_start``)."""

    def send(self, step: Step) -> tuple[int, bytes]:
        """(status, body) of the synchronous answer; status follows HTTP (200 ok, 429 throttled, >= 400 error)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release connections (called at the user's stop)."""


def _builtin() -> dict[str, str]:
    return {"duis-http": "dcc_capacity.load.adapters.http:DuisHttpAdapter",
            "cp-sftp": "dcc_capacity.load.adapters.sftp:CpSftpAdapter"}


BUILTIN: dict[str, str] = _builtin()
"""Built-in adapter names -> ``module:Class``."""


def adapter_class(spec: str | None) -> type[TargetAdapter]:
    """The adapter class ``spec`` names: a built-in name or ``module:Class``; InputError otherwise."""
    spec = (spec or "duis-http").strip()
    target = BUILTIN.get(spec, spec)
    module_name, _, cls_name = target.partition(":")
    if not cls_name or not module_name:
        raise InputError(f"unknown adapter {spec!r}: use {', '.join(BUILTIN)} or module:Class", key="--adapter")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InputError(f"cannot import adapter module {module_name!r} ({exc})", key="--adapter") from None
    cls = getattr(module, cls_name, None)
    if not (isinstance(cls, type) and issubclass(cls, TargetAdapter)):
        raise InputError(f"{target} is not a TargetAdapter subclass", key="--adapter")
    return cls


def make_adapter(spec: str | None, settings: AdapterSettings) -> TargetAdapter:
    """Build and start the adapter ``spec`` names."""
    adapter = adapter_class(spec)(settings)
    adapter.start()
    return adapter
