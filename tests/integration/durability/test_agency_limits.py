"""An agency's rate and concurrency limits hold across processes: three `gateway worker`
processes on one database together never send an agency more calls at once, or more
a second, than its registry entry allows (each process alone would allow all of it).

The agency is the public security sandbox behind a gauge that records when each call
started and how many were in flight.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import pytest
import sqlalchemy as sa

from conftest import Api
from durability_support import Agency, gateway_process, registry_of, stop, wait_until_all_answered, write_config
from gateway.deliveries.models import Delivery
from sandboxes import public_security
from sandboxes.server import FaultKnobs, SandboxServer

INQUIRIES = 24


class Gauge:
    """WSGI middleware: each call's start time, and the most calls in flight at once."""

    def __init__(self, app: Any, latency: float):
        self.app, self.latency, self.extensions = app, latency, app.extensions
        self._lock = threading.Lock()
        self.in_flight = self.most_in_flight = 0
        self.started: list[float] = []

    def __call__(self, environ: dict, start_response: Callable) -> Any:
        with self._lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            self.started.append(time.monotonic())
        try:
            time.sleep(self.latency)
            return list(self.app(environ, start_response))
        finally:
            with self._lock:
                self.in_flight -= 1


def _wait_running(workers: list, logs: list, timeout: float = 60.0) -> None:
    give_up = time.monotonic() + timeout
    while not all(log.exists() and "delivery worker running" in log.read_text() for log in logs):
        assert all(w.poll() is None for w in workers), [log.read_text() for log in logs if log.exists()]
        assert time.monotonic() < give_up, "the worker processes did not start"
        time.sleep(0.1)


def _run(tmp_path, keys_dir, database_url, settings, overrides, *, concurrency: int, rate: int, latency: float) -> Gauge:
    from gateway.app import create_app

    psb_app = public_security.create_app(FaultKnobs(), prefix=public_security.DEFAULT_PREFIX)
    gauge = Gauge(psb_app, latency)
    server = SandboxServer(gauge).start()
    agencies = {"psb": Agency("psb", server, psb_app.extensions["psb_sandbox"], server.url + public_security.DEFAULT_PREFIX)}
    app = create_app(overrides, registry=registry_of(agencies, concurrency=concurrency, rate=rate, timeout=10))
    api_server = SandboxServer(app).start()
    config = write_config(tmp_path, keys_dir, agencies, registry_limits={"concurrency": concurrency, "rate": rate,
                                                                         "timeout": 10},
                          workers="threads = 8\npoll_interval_seconds = 0.02\n")
    logs = [tmp_path / f"worker-{n}.log" for n in range(3)]
    workers = []
    try:
        api = Api(api_server.url, settings)
        assert api.register_case().status_code == 201
        # The three processes first, all running before the work arrives: on a loaded machine
        # one process can take a second or more to start, and the first up would do it all.
        workers = [gateway_process(["worker"], config, database_url, log) for log in logs]
        _wait_running(workers, logs)
        for _ in range(INQUIRIES):
            assert api.inquire().status_code == 202  # this app's own worker is not started: the three do it
        db = app.extensions["db"]
        wait_until_all_answered(db, workers, timeout=90)
        with db.reading() as session:
            owners = {o.rsplit(":", 1)[1] for o in session.scalars(sa.select(Delivery.lease_owner))}
        assert len(owners) >= 2, owners  # the processes did share the work
        return gauge
    finally:
        outputs = [stop(w, log) for w, log in zip(workers, logs, strict=False)]
        assert not any("Traceback" in o for o in outputs), outputs
        api_server.stop()
        server.stop()
        app.extensions["db"].dispose()


@pytest.mark.postgres_only  # several processes on one database
def test_three_processes_together_keep_an_agencys_concurrency(tmp_path, keys_dir, database_url, settings, overrides):
    gauge = _run(tmp_path, keys_dir, database_url, settings, overrides, concurrency=2, rate=1000, latency=0.3)
    assert len(gauge.started) == INQUIRIES
    assert gauge.most_in_flight <= 2, gauge.most_in_flight  # each process alone would allow 2: 6 in all


@pytest.mark.postgres_only
def test_three_processes_together_keep_an_agencys_rate(tmp_path, keys_dir, database_url, settings, overrides):
    gauge = _run(tmp_path, keys_dir, database_url, settings, overrides, concurrency=16, rate=4, latency=0.0)
    assert len(gauge.started) == INQUIRIES
    # A bucket of one second's worth (4) refilling at 4/s: the 24 calls take at least 5 s
    # (three processes on their own would take 4/s each, 12/s: under 2 s). Measured as a
    # span, not per window: a loaded machine bunches calls after they were granted, but
    # never makes them earlier.
    span = gauge.started[-1] - gauge.started[0]
    assert span >= (INQUIRIES - 4) / 4 - 0.5, sorted(round(t - gauge.started[0], 2) for t in gauge.started)
