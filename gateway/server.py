"""`gateway serve` under gunicorn (gthread): the app is built in each worker
after fork, so database engines and HTTP sessions are never shared across
processes; each gunicorn worker runs its own delivery worker unless told not to.

/metrics under gunicorn: prometheus-client's multiprocess mode. The server
empties the metrics folder and names it in PROMETHEUS_MULTIPROC_DIR before any
worker forks (prometheus-client picks its mode when first imported, which
happens in the workers, after fork); when a worker exits its live gauges are
dropped (``mark_process_dead``).

Forwarded headers (X-Forwarded-Proto and the rest) are believed only from the
proxies ``[server] forwarded_allow_ips`` names, none by default: gunicorn's own
default trusts loopback, which let a local client claim https over plain HTTP
(gateway/forwarded.py). Timeouts are set deliberately (``timeout_settings``): a
worker is restarted only when silent longer than any agency call can take, and
on SIGTERM gets longer than one agency call to finish what it has in flight.
"""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path
from typing import Any, Mapping

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger

from gateway.errors import ConfigError
from gateway.logs import redact
from gateway.settings import PROMETHEUS_MULTIPROC_ENV, ServerSection


class RedactingAccessLogger(Logger):
    """Access log lines hold paths and query strings: mask identity numbers in them."""

    # types-gunicorn returns a TypedDict of known atoms; gunicorn formats the access line
    # from any mapping, and a redacted copy is a plain dict.
    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict:  # type: ignore[override]
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


def timeout_settings(server: ServerSection, longest_agency_timeout: float) -> dict[str, int]:
    """gunicorn's ``timeout`` and ``graceful_timeout`` from settings, both above the
    longest agency call (the registry's largest ``timeout_seconds``): a worker busy
    in a slow call must not be killed for silence, and one stopping must be able to
    finish the call it is in (the delivery worker waits for its calls on exit)."""
    for name in ("worker_timeout_seconds", "graceful_timeout_seconds"):
        if getattr(server, name) <= longest_agency_timeout:
            raise ConfigError(f"setting server.{name} ({getattr(server, name)} s) must exceed the longest agency "
                              f"call: an agency in the registry has timeout_seconds = {longest_agency_timeout:g}")
    return {"timeout": server.worker_timeout_seconds, "graceful_timeout": server.graceful_timeout_seconds}


def freeze_startup_objects() -> None:
    """Everything alive once a worker's app is built (imported modules, compiled XSDs and
    statements, the registry) lives as long as the worker: collected once, then moved out
    of the collector's reach (``gc.freeze``), so a full collection scans only what requests
    made since. A full pass over the ~200,000 start-up objects takes tens of ms and holds
    the GIL, every thread of the worker waiting (bench/RESULTS.md, pull, 2026-12-07)."""
    gc.collect()
    gc.freeze()


class GatewayServer(BaseApplication):
    def __init__(self, *, bind: str, workers: int, threads: int, overrides: Mapping[str, Any] | None = None,
                 registry: Any = None, run_delivery_workers: bool = True, access_log: bool = True,
                 certfile: str | None = None, keyfile: str | None = None,
                 forwarded_allow_ips: list[str] | tuple[str, ...] = (), timeout: int = 120, graceful_timeout: int = 45):
        self._options = {
            "bind": bind,
            "workers": workers,
            "threads": threads,
            "worker_class": "gthread",
            "accesslog": "-" if access_log else None,
            "logger_class": "gateway.server.RedactingAccessLogger",
            "worker_exit": _stop_delivery_worker,
            "child_exit": _worker_exited,
            "timeout": timeout,
            "graceful_timeout": graceful_timeout,
            "keepalive": 5,
            # Whose X-Forwarded-Proto/-Ssl gunicorn believes: the configured proxies only
            # (its own default is loopback). An empty string is an empty list: no one.
            "forwarded_allow_ips": ",".join(forwarded_allow_ips),
            # https when given a certificate (agencies that poll send a UsernameToken, over TLS only)
            "certfile": certfile,
            "keyfile": keyfile,
        }
        self._overrides, self._registry, self._run_workers = overrides, registry, run_delivery_workers
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            if value is not None:  # "" is a value (forwarded_allow_ips: trust no one)
                self.cfg.set(key, value)

    def load(self) -> Any:
        from gateway.app import create_app

        app = create_app(self._overrides, registry=self._registry)
        freeze_startup_objects()
        if self._run_workers:
            app.extensions["worker"].start()
        return app
