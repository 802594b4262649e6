"""A gateway restarting after a crash asks the batch agency (the real SFTP sandbox,
over SSH) which of the files still awaiting results it has lost, and sends those
requests again at once instead of waiting out batch_result_wait_seconds (600 s).
A file still waiting in the agency's inbox, or answered but not yet collected, is
left alone."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from conftest import audit_rows, make_app
from gateway.deliveries.channels import build_channels
from gateway.deliveries.models import Delivery
from gateway.deliveries.worker import DeliveryWorker
from sandboxes.batch_agency import BatchAgencyProcessor
from sandboxes.run import start_sandboxes
from sandboxes.server import SandboxServer


@pytest.fixture
def land(tmp_path: Path):
    """The real-estate registry's SFTP folder; its agency answers only when the test says (poll_once)."""
    sandboxes = start_sandboxes(["land"], ports={"sftp": 0}, sftp_root=tmp_path / "sftp")
    sandboxes["land"].stop()  # its own polling thread: this test decides when the agency answers
    yield sandboxes["land"], tmp_path / "sftp" / "real-estate"
    sandboxes.stop()


@pytest.fixture
def gateway(overrides, land):
    from conftest import Api

    app = make_app(overrides, {"land": land[0].url})
    server = SandboxServer(app).start()
    api = Api(server.url, app.config["SETTINGS"])
    assert api.register_case().status_code == 201
    yield app, api
    server.stop()
    app.extensions["db"].dispose()


def _deliveries(app) -> dict[str, Delivery]:
    with app.extensions["db"].reading() as session:
        return {d.request_id: d for d in session.scalars(sa.select(Delivery))}


def _send_one(app, api, worker) -> tuple[str, str]:
    """One inquiry, sent by ``worker`` as its own batch file; (request id, file name)."""
    request_id = api.inquire().json()["id"]
    worker.dispatch_once()
    delivery = _deliveries(app)[request_id]
    assert delivery.state == "awaiting" and delivery.batch_file
    return request_id, delivery.batch_file


def test_a_restarted_worker_resends_at_once_what_the_agency_lost(gateway, land):
    app, api = gateway
    sandbox, folder = land
    agency = BatchAgencyProcessor(folder, sandbox.agency.handle)
    crashed = app.extensions["worker"]  # never started: dispatch_once is one pass of its loop
    crashed._last_collected["land"] = time.monotonic() + 3600  # it crashes before collecting anything

    answered, answered_file = _send_one(app, api, crashed)
    assert agency.poll_once() == 1  # answered: the result waits in outbox/, not yet collected
    waiting, waiting_file = _send_one(app, api, crashed)  # still in the agency's inbox/
    lost, lost_file = _send_one(app, api, crashed)
    for name in (lost_file, lost_file + ".chk"):  # the agency lost this one (its own crash, a restore)
        (folder / "inbox" / name).unlink()
    before = _deliveries(app)

    restarted = DeliveryWorker(app.extensions["db"], build_channels(app.extensions["registry"]),
                               app.extensions["audit"], app.config["SETTINGS"].workers)
    restarted.dispatch_once()  # asks the agency, collects the answered file
    restarted.dispatch_once()  # sends the lost requests again
    after = _deliveries(app)
    assert after[answered].state == "answered"
    assert (after[waiting].state, after[waiting].attempts, after[waiting].batch_file) == ("awaiting", 1, waiting_file)
    assert after[waiting].lease_until == before[waiting].lease_until  # its wait goes on
    resent = after[lost]
    assert (resent.state, resent.attempts) == ("awaiting", 2) and resent.batch_file not in (lost_file, None)
    assert sorted(p.name for p in (folder / "inbox").glob("*.req")) == sorted([waiting_file, resent.batch_file])
    assert resent.batch_file.endswith(".req") and resent.request_sha256 == before[lost].request_sha256

    events = [e for e in audit_rows(app) if e.outcome == "batch_file_lost"]
    assert [(e.action, e.delivery_id, e.details["batch_file"]) for e in events] == \
        [("delivery.attempt", resent.id, lost_file)]

    # The same message id: the agency answers it like any other; everything ends answered.
    assert agency.poll_once() == 2
    assert restarted.drain_until_settled(timeout=30)
    assert {d.state for d in _deliveries(app).values()} == {"answered"}
    # Asked once per start: a later pass does not ask again.
    assert restarted.resend_lost_batches(restarted.channels["land"]) == 0


def test_an_unreachable_agency_is_asked_again_on_the_next_collection(gateway, land, monkeypatch):
    app, api = gateway
    sandbox, folder = land
    crashed = app.extensions["worker"]
    crashed._last_collected["land"] = time.monotonic() + 3600
    lost, lost_file = _send_one(app, api, crashed)
    for name in (lost_file, lost_file + ".chk"):
        (folder / "inbox" / name).unlink()

    restarted = DeliveryWorker(app.extensions["db"], build_channels(app.extensions["registry"]),
                               app.extensions["audit"], app.config["SETTINGS"].workers)
    channel = restarted.channels["land"]
    from adapters.errors import ConnectFailed

    def unreachable(names):
        raise ConnectFailed("could not reach the agency")

    monkeypatch.setattr(channel, "missing", unreachable)
    restarted.dispatch_once()
    assert _deliveries(app)[lost].attempts == 1
    monkeypatch.undo()
    restarted._last_collected["land"] = 0.0
    restarted.dispatch_once()
    restarted.dispatch_once()
    assert (_deliveries(app)[lost].state, _deliveries(app)[lost].attempts) == ("awaiting", 2)
