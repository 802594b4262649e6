"""`gateway serve` under gunicorn (gthread): the app is built in each worker
after fork, so database engines and HTTP sessions are never shared across
processes; each gunicorn worker runs its own delivery worker unless told not to.

/metrics under gunicorn: prometheus-client's multiprocess mode. The server
empties the metrics folder and names it in PROMETHEUS_MULTIPROC_DIR before any
worker forks (prometheus-client picks its mode when first imported, which
happens in the workers, after fork); when a worker exits its live gauges are
dropped (``mark_process_dead``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Mapping

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger

from gateway.logs import redact
from gateway.settings import PROMETHEUS_MULTIPROC_ENV


class RedactingAccessLogger(Logger):
    """Access log lines hold paths and query strings: mask identity numbers in them."""

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict:
        return {k: redact(v) if isinstance(v, str) else v for k, v in super().atoms(resp, req, environ, request_time).items()}


def _stop_delivery_worker(_server: Any, worker: Any) -> None:
    app = getattr(worker, "wsgi", None)
    delivery_worker = getattr(app, "extensions", {}).get("worker") if app else None
    if delivery_worker is not None and delivery_worker.running:
        delivery_worker.stop()


def prepare_metrics_dir(path: Path) -> str:
    """Empty the multiprocess metrics folder and name it for the workers about to fork.

    Values left by an earlier run would be added to this one's; nothing else may
    share the folder. Setting the variable here (not reading it) is why this is
    not in gateway/settings.py, which reads it back into Settings in each worker.
    """
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):  # prometheus-client's files only: the folder is the operator's to name
        stale.unlink()
    os.environ[PROMETHEUS_MULTIPROC_ENV] = str(path)
    if "prometheus_client" in sys.modules:  # imported already (a plugin?): make it choose again
        from prometheus_client import values

        values.ValueClass = values.get_value_class()
    return str(path)


def _worker_exited(_server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


class GatewayServer(BaseApplication):
    def __init__(self, *, bind: str, workers: int, threads: int, overrides: Mapping[str, Any] | None = None,
                 registry: Any = None, run_delivery_workers: bool = True, access_log: bool = True,
                 certfile: str | None = None, keyfile: str | None = None):
        self._options = {
            "bind": bind,
            "workers": workers,
            "threads": threads,
            "worker_class": "gthread",
            "accesslog": "-" if access_log else None,
            "logger_class": "gateway.server.RedactingAccessLogger",
            "worker_exit": _stop_delivery_worker,
            "child_exit": _worker_exited,
            "graceful_timeout": 15,
            "keepalive": 5,
            # https when given a certificate (agencies that poll send a UsernameToken, over TLS only)
            "certfile": certfile,
            "keyfile": keyfile,
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
