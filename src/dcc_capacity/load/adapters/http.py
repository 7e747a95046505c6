"""DUIS over HTTP(S): the default adapter, keep-alive HTTP (the lean client) and optional mutual TLS.

This is the hot path of every run, so :meth:`DuisHttpAdapter.send` is the
three lines the open model used to run inline (request, read, status) and
nothing else; TLS costs only at connection set-up, not per request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from geventhttpclient import HTTPClient

from dcc_capacity.load.adapters import AdapterSettings, TargetAdapter
from dcc_capacity.load.httpclient import LeanHTTPClient

if TYPE_CHECKING:
    from dcc_capacity.load.openmodel import Step

__all__ = ["DuisHttpAdapter"]


class DuisHttpAdapter(TargetAdapter):
    """POSTs each step to ``host + step.path``; async responses come to the callback listener from the SUT."""

    name = "duis-http"

    def __init__(self, settings: AdapterSettings) -> None:
        super().__init__(settings)
        self.http: LeanHTTPClient | HTTPClient | None = None
        """The lean client for plain http (httpclient.py); geventhttpclient's own for https and mutual TLS."""

    def start(self) -> None:
        s = self.settings
        kw = {}
        if s.host.startswith("https://"):
            import gevent.ssl

            from dcc_capacity.config.tls import ClientTls

            tls = ClientTls.from_options(s.options)
            ctx = tls.context(gevent.ssl.SSLContext)
            kw = {"ssl_context_factory": lambda *_a, **_k: ctx, "insecure": not tls.verify}
        self.http = LeanHTTPClient.from_url(s.host, concurrency=s.concurrency, connection_timeout=s.connection_timeout,
                                        network_timeout=s.network_timeout, **kw)

    def send(self, step: Step) -> tuple[int, bytes]:
        resp = self.http.request(step.method, step.path, body=step.body,  # type: ignore[union-attr]
                                 headers=dict(step.headers or {}))
        return resp.status_code, resp.read()

    def close(self) -> None:
        if self.http is not None:
            self.http.close()
            self.http = None
