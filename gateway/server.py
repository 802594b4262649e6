"""`gateway serve` under gunicorn (gthread): the app is built in each worker
after fork, so database engines and HTTP sessions are never shared across
processes; each gunicorn worker runs its own delivery worker unless told not to.
"""

from __future__ import annotations

from typing import Any, Mapping

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger

from gateway.logs import redact


class RedactingAccessLogger(Logger):
    """Access log lines hold paths and query strings: mask identity numbers in them."""

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict:
        return {k: redact(v) if isinstance(v, str) else v for k, v in super().atoms(resp, req, environ, request_time).items()}


def _stop_delivery_worker(_server: Any, worker: Any) -> None:
    app = getattr(worker, "wsgi", None)
    delivery_worker = getattr(app, "extensions", {}).get("worker") if app else None
    if delivery_worker is not None and delivery_worker.running:
        delivery_worker.stop()


class GatewayServer(BaseApplication):
    def __init__(self, *, bind: str, workers: int, threads: int, overrides: Mapping[str, Any] | None = None,
                 registry: Any = None, run_delivery_workers: bool = True, access_log: bool = True):
        self._options = {
            "bind": bind,
            "workers": workers,
            "threads": threads,
            "worker_class": "gthread",
            "accesslog": "-" if access_log else None,
            "logger_class": "gateway.server.RedactingAccessLogger",
            "worker_exit": _stop_delivery_worker,
            "graceful_timeout": 15,
            "keepalive": 5,
        }
        self._overrides, self._registry, self._run_workers = overrides, registry, run_delivery_workers
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            if value is not None:
                self.cfg.set(key, value)

    def load(self) -> Any:
        from gateway.app import create_app

        app = create_app(self._overrides, registry=self._registry)
        if self._run_workers:
            app.extensions["worker"].start()
        return app
