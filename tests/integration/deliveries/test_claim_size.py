"""A busy worker claims several deliveries at a time, not one per freed slot: each
claim is a transaction that locks the agency's shared budget row, which every
worker process's claims queue on."""

from dataclasses import replace

from conftest import Api
from gateway.deliveries.models import Delivery
from gateway.registry import Registry, load_registry
from gateway.settings import CONFIG_DIR
from sandboxes.public_security import create_app as psb_app
from sandboxes.server import SandboxServer


def _queued(app):
    with app.extensions["db"].reading() as session:
        return sum(1 for d in session.query(Delivery) if d.state == "queued")


def test_with_calls_in_flight_a_claim_waits_for_a_quarter_of_the_slots(overrides, settings):
    from gateway.app import create_app

    sandbox = SandboxServer(psb_app()).start()
    psb = replace(load_registry(CONFIG_DIR / "agencies.toml").get("psb"), endpoint=sandbox.url + "/psb/v1",
                  concurrency=8)
    app = create_app(overrides, registry=Registry([psb]))
    server = SandboxServer(app).start()
    try:
        api = Api(server.url, settings)
        assert api.register_case().status_code == 201
        for _ in range(4):
            assert api.inquire().status_code == 202
        worker = app.extensions["worker"]  # not started: dispatch_once carries out inline
        worker._in_flight["psb"] = 7  # one slot free of eight, seven calls out
        assert worker.dispatch_once() == 0 and _queued(app) == 4
        worker._in_flight["psb"] = 6  # two free: a quarter
        assert worker.dispatch_once() == 2 and _queued(app) == 2
        worker._in_flight["psb"] = 0  # nothing out: whatever is free, however little is due
        assert worker.dispatch_once() == 2 and _queued(app) == 0
    finally:
        server.stop()
        sandbox.stop()
        app.extensions["db"].dispose()
