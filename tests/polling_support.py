"""Shared by the polling-bank tests: the gateway served over TLS (a certificate made
at run time) with the default registry's bank-c, and the polling sandbox pointed at
it, verifying the certificate and logging in with the published demo password."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conftest import Api, make_app

from gateway.tls import self_signed_certificate, server_ssl_context
from sandboxes.polling_bank import PollingBank
from sandboxes.run import PULL_SERVICE_PATH
from sandboxes.server import SandboxServer


@dataclass
class TlsGateway:
    app: Any
    server: SandboxServer
    api: Api
    certfile: Path

    @property
    def wsdl_url(self) -> str:
        return self.server.url + PULL_SERVICE_PATH + "?wsdl"

    def poller(self, **options: Any) -> PollingBank:
        options.setdefault("interval_seconds", 0.05)
        return PollingBank(self.wsdl_url, verify=str(self.certfile), **options)

    def wait_final(self, request_id: str, timeout: float = 60) -> dict:
        """The request's state once it is no longer under way (the poller answers in its own time)."""
        give_up = time.monotonic() + timeout
        while True:
            state = self.api.get(f"/api/v1/requests/{request_id}").json()
            if state["state"] not in ("accepted", "in_progress"):
                return state
            assert time.monotonic() < give_up, f"request still under way: {state}"
            time.sleep(0.05)


@contextmanager
def tls_gateway(overrides: dict, settings: Any, tmp_path: Path, endpoints: dict[str, str] | None = None,
                ) -> Iterator[TlsGateway]:
    """The gateway with bank-c (and the push agencies in ``endpoints``), its worker running,
    served over https on loopback."""
    app = make_app(overrides, {"bank-c": "", **(endpoints or {})})
    certificate = self_signed_certificate(tmp_path / "tls")
    worker = app.extensions["worker"].start()
    server = SandboxServer(app, ssl_context=server_ssl_context(certificate)).start()
    api = Api(server.url, settings)
    api.http.trust_env = False  # else REQUESTS_CA_BUNDLE from the environment overrides verify
    api.http.verify = str(certificate.certfile)
    try:
        yield TlsGateway(app, server, api, certificate.certfile)
    finally:
        server.stop()
        worker.stop()
        app.extensions["db"].dispose()
