"""Transports are built where a delivery worker starts, never in an app that only
serves the API (the web processes under gunicorn, ``serve --no-delivery-workers``):
building one loads a WSDL or reads an SFTP key, which such a process has no use for."""

import gc
from collections import Counter
from typing import Any, Iterator

import pytest

from adapters import TRANSPORTS
from conftest import CONFIG_DIR, make_app
from gateway.registry import load_registry


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Transports constructed, by kind: every transport class counts its instances."""
    counts: Counter = Counter()
    for kind, transport_class in list(TRANSPORTS.items()):
        def counted(*args: Any, _kind: str = kind, _class: Any = transport_class, **kwargs: Any) -> Any:
            counts[_kind] += 1
            return _class(*args, **kwargs)

        monkeypatch.setitem(TRANSPORTS, kind, counted)
    return counts


@pytest.fixture
def app(built: Counter, overrides: dict[str, Any], psb_sandbox: Any) -> Iterator[Any]:
    """The suite's app (psb over REST), made once the transports are counted."""
    application = make_app(overrides, {"psb": psb_sandbox.url})
    yield application
    if application.extensions["worker"].running:
        application.extensions["worker"].stop()
    application.extensions["db"].dispose()


def test_an_app_of_every_agency_builds_no_transport_until_its_worker_opens_them(built, overrides):
    from gateway.app import create_app

    application = create_app(overrides, registry=load_registry(CONFIG_DIR / "agencies.toml"))
    worker = application.extensions["worker"]
    try:
        assert not worker.channels_open and built == Counter()
        # What the views use is there without them.
        assert set(application.extensions["codecs"]) == set(application.extensions["registry"].agencies)
        assert application.extensions["retry_policy"] is worker.policy

        channels = worker.open_channels()
        # One per agency the gateway reaches out to (bank-c polls: it has none).
        assert built == Counter({"soap": 3, "sftp": 2, "rest": 2})
        assert worker.channels_open and worker.channels is channels
        assert sorted(channels) == sorted(application.extensions["registry"].agencies)
    finally:
        for channel in worker.channels.values():
            channel.close()
        application.extensions["db"].dispose()


def test_a_request_is_accepted_without_transports_and_a_worker_started_later_delivers_it(app, api, built):
    assert api.register_case().status_code == 201
    accepted = api.inquire(key="no-transport-0001")
    assert accepted.status_code == 202, accepted.text
    worker = app.extensions["worker"]
    assert not worker.channels_open and built == Counter()  # the view woke a worker that had nothing to wake

    worker.start()
    assert built == Counter({"rest": 1})
    assert worker.drain_until_settled(timeout=30)
    state = api.get(f"/api/v1/requests/{accepted.json()['id']}").json()
    assert state["state"] == "completed" and [d["state"] for d in state["deliveries"]] == ["answered"]
    assert built == Counter({"rest": 1})  # built once, at the start


def test_gunicorn_loads_an_api_only_app_without_transports_and_a_delivering_one_with(built, overrides, psb_sandbox):
    from gateway.server import GatewayServer

    registry = load_registry(CONFIG_DIR / "agencies.toml")
    registry = type(registry)([a for a in registry if a.id == "psb"], registry.source).with_endpoints(
        {"psb": psb_sandbox.url})

    def load(run_delivery_workers: bool) -> Any:
        return GatewayServer(bind="127.0.0.1:0", workers=1, threads=1, overrides=overrides, registry=registry,
                             run_delivery_workers=run_delivery_workers).load()

    api_only = load(run_delivery_workers=False)
    assert not api_only.extensions["worker"].channels_open and built == Counter()
    assert gc.get_freeze_count() > 0  # a worker's start-up objects are out of the collector's full passes
    gc.unfreeze()  # this test process goes on making and dropping apps
    api_only.extensions["db"].dispose()

    delivering = load(run_delivery_workers=True)
    try:
        assert delivering.extensions["worker"].running and built == Counter({"rest": 1})
    finally:
        gc.unfreeze()
        delivering.extensions["worker"].stop()
        delivering.extensions["db"].dispose()
