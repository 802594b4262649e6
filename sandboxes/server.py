"""Generic plumbing shared by every agency sandbox.

* ``SandboxServer`` serves any WSGI app on a loopback port from a background
  thread, so tests and local runs talk to the sandbox over real HTTP (real
  sockets, real headers, real byte bodies) instead of a test client that would
  hide encoding and framing mistakes.
* ``FaultKnobs`` / ``FaultInjector`` describe and draw the injected latency and
  failures. They know nothing about HTTP so the SOAP and SFTP sandboxes can
  reuse them and decide for themselves how a failure looks on their wire.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import random
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

__all__ = ["DeferredApp", "FaultDecision", "FaultInjector", "FaultKnobs", "SandboxServer"]

_POLL_INTERVAL_SECONDS = 0.05


# --------------------------------------------------------------------------
# Fault knobs
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class FaultDecision:
    """What the injector decided for one call."""

    fail: bool
    delay_seconds: float


@dataclass(frozen=True)
class FaultKnobs:
    """Latency and failure settings of a sandbox.

    ``latency_seconds`` is added to every call, plus a uniform draw in
    ``[0, latency_jitter_seconds]``; ``failure_rate`` is the probability that a
    call fails as "temporarily unavailable". ``seed`` makes the sequence of
    decisions reproducible (``None``: seeded from the OS).
    """

    latency_seconds: float = 0.0
    latency_jitter_seconds: float = 0.0
    failure_rate: float = 0.0
    seed: int | None = None

    def __post_init__(self) -> None:
        _require_number("latency_seconds", self.latency_seconds)
        _require_number("latency_jitter_seconds", self.latency_jitter_seconds)
        _require_number("failure_rate", self.failure_rate)
        if self.latency_seconds < 0:
            raise ValueError(f"latency_seconds must be >= 0, got {self.latency_seconds!r}")
        if self.latency_jitter_seconds < 0:
            raise ValueError(
                f"latency_jitter_seconds must be >= 0, got {self.latency_jitter_seconds!r}"
            )
        if not 0.0 <= self.failure_rate <= 1.0:
            raise ValueError(f"failure_rate must be within [0, 1], got {self.failure_rate!r}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise ValueError(f"seed must be an int or None, got {self.seed!r}")

    def decide(self, rng: random.Random) -> FaultDecision:
        """Draw the decision for one call from ``rng``.

        Both draws are always made, whatever the knob values, so that with a
        fixed seed the n-th call gets the same decision whether or not jitter
        is configured — reproducible runs stay reproducible when one knob moves.
        """
        jitter_draw = rng.random()
        failure_draw = rng.random()
        delay = self.latency_seconds + jitter_draw * self.latency_jitter_seconds
        # random() is in [0, 1): a rate of 0 never fails, a rate of 1 always does.
        return FaultDecision(fail=failure_draw < self.failure_rate, delay_seconds=delay)


def _require_number(field: str, value: Any) -> None:
    # bool is an int subclass; True as a failure rate is a bug, not "1.0".
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{field} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{field} must be finite, got {value!r}")


class FaultInjector:
    """Thread-safe source of ``FaultDecision`` for a running sandbox.

    The server handles calls on several threads; ``random.Random`` is not
    meant to be shared without a lock, and an unguarded shared generator
    would also make seeded runs irreproducible.
    """

    def __init__(self, knobs: FaultKnobs | None = None, *, sleep: Callable[[float], None] = time.sleep):
        self.knobs = knobs or FaultKnobs()
        self._rng = random.Random(self.knobs.seed)
        self._lock = threading.Lock()
        self._sleep = sleep

    def next_decision(self) -> FaultDecision:
        with self._lock:
            return self.knobs.decide(self._rng)

    def apply(self) -> bool:
        """Sleep the drawn latency and return whether this call must fail.

        The sleep happens outside the lock so that slow calls overlap the way
        they would at a real agency instead of queueing behind each other.
        """
        decision = self.next_decision()
        if decision.delay_seconds > 0:
            self._sleep(decision.delay_seconds)
        return decision.fail


# --------------------------------------------------------------------------
# Loopback server
# --------------------------------------------------------------------------


class _QuietRequestHandler(WSGIRequestHandler):
    """Werkzeug's handler without the per-request access log line.

    Test runs make hundreds of calls; errors are still logged.
    """

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SandboxServer:
    """Serve a WSGI app on a loopback port from a background thread.

    ``port=0`` lets the OS pick a free port; read the actual address from
    ``url`` after ``start()``. Sandboxes play an agency for tests and local
    runs only, so binding to anything but loopback is refused.

        with SandboxServer(create_app()) as server:
            requests.get(server.url + "/psb/v1/healthz")
    """

    def __init__(self, app: Callable[..., Any], host: str = "127.0.0.1", port: int = 0, *,
                 log_requests: bool = False, ssl_context: ssl.SSLContext | None = None):
        if not _is_loopback(host):
            raise ValueError(f"host must be a loopback address, got {host!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an int within [0, 65535], got {port!r}")
        self.app = app
        self.host = host
        self.port = port
        self._log_requests = log_requests
        self.ssl_context = ssl_context  # serve https (e.g. the gateway's pull service, UsernameToken over TLS only)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False

    def start(self) -> "SandboxServer":
        if self._server is not None or self._stopped:
            raise RuntimeError("a SandboxServer can be started once")
        handler = WSGIRequestHandler if self._log_requests else _QuietRequestHandler
        # Binding happens here, synchronously: once start() returns the port
        # accepts connections (the kernel queues them until serve_forever runs).
        self._server = make_server(self.host, self.port, self.app, threaded=True,
                                   request_handler=handler, ssl_context=self.ssl_context)
        self._thread = threading.Thread(
            # serve_forever only notices shutdown() between polls; the 0.5 s
            # default would add half a second to every test's teardown.
            target=functools.partial(self._server.serve_forever, poll_interval=_POLL_INTERVAL_SECONDS),
            name=f"sandbox-server-{self._server.server_port}",
            daemon=True,  # never keep the interpreter alive for a forgotten sandbox
        )
        self._thread.start()
        return self

    @property
    def bound_port(self) -> int:
        if self._server is None:
            raise RuntimeError("the server is not started")
        return self._server.server_port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{host}:{self.bound_port}"

    @property
    def running(self) -> bool:
        return self._server is not None and not self._stopped

    def stop(self) -> None:
        """Stop serving and release the port; calling it again does nothing."""
        if self._server is None or self._stopped:
            self._stopped = True
            return
        self._stopped = True
        self._server.shutdown()  # returns once serve_forever has left its loop
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> "SandboxServer":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class DeferredApp:
    """A WSGI app set after its server has bound a port: a gateway whose settings name
    its own URL (the demo identity provider's issuer) is made once the port is known.
    Until ``app`` is set every call is answered 503."""

    def __init__(self) -> None:
        self.app: Callable[..., Any] | None = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if self.app is None:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain"), ("Retry-After", "1")])
            return [b"starting\n"]
        return self.app(environ, start_response)
