"""The re-inquiry schedule of a terminated case on the worker loop (public security
only, required category "vehicle"): at most every interval, once per round however
many passes run at once, and a round the intake refuses is recorded and the
schedule goes on."""

from __future__ import annotations

import dataclasses
import threading
from datetime import timedelta

import pytest

from conftest import CASE_NUMBER, audit_rows
from gateway.registry import Registry
from gateway.requests.models import Request
from gateway.termination.models import TerminationRequery
from gateway.timeutil import utc_now


@pytest.fixture
def overrides(overrides):
    return {**overrides, "termination": {"required_categories": ["vehicle"], "interval_seconds": 3600.0}}


@pytest.fixture
def terminated(api, app):
    """The case inquired, terminated three months on; the clock where round 1 falls due."""
    assert api.register_case().status_code == 201
    reply = api.inquire()
    assert reply.status_code == 202, reply.text
    app.extensions["worker"].drain()
    app.extensions["clock"] = lambda: utc_now() + timedelta(days=93)
    done = api.post(f"/api/v1/cases/{CASE_NUMBER}/terminate", json={"reason": "no property found"})
    assert done.status_code == 201, done.text
    app.extensions["clock"] = lambda: utc_now() + timedelta(days=93 + 184)
    return done.json()


def rounds(app) -> list[TerminationRequery]:
    with app.extensions["db"].reading() as session:
        return list(session.query(TerminationRequery).order_by(TerminationRequery.round))


def test_the_watch_rides_the_worker_loop_at_most_every_interval(app, terminated):
    watch = app.extensions["termination_watch"]
    assert "termination_watch" in app.extensions["housekeeper"].task_names
    watch.maybe_run()
    watch.maybe_run()  # within interval_seconds of the first: nothing
    (first,) = rounds(app)
    assert first.round == 1
    app.extensions["clock"] = lambda: utc_now() + timedelta(days=93 + 184 * 2)
    watch.maybe_run()
    assert len(rounds(app)) == 1  # round 2 is due, but the interval has not passed
    watch._last -= 3600  # an hour later
    watch.maybe_run()
    assert [r.round for r in rounds(app)] == [1, 2]


def test_passes_at_once_make_a_round_once(app, terminated):
    watch = app.extensions["termination_watch"]
    start = threading.Barrier(3)
    made: list[list[str]] = []

    def one_pass() -> None:
        start.wait()
        made.append(watch.run_once()["made"])

    threads = [threading.Thread(target=one_pass) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(len(m) for m in made) == [0, 0, 1]
    (only,) = rounds(app)
    with app.extensions["db"].reading() as session:
        assert session.query(Request).filter(Request.officer_sub == "gateway:termination").count() == 1
    assert only.request_ids and len(only.request_ids) == 1


def test_a_round_the_intake_refuses_is_recorded_and_the_schedule_goes_on(app, terminated):
    watch = app.extensions["termination_watch"]
    watch.intake = dataclasses.replace(watch.intake, registry=Registry([], "no agencies"))
    (made,) = watch.run_once()["made"]
    (refused,) = rounds(app)
    assert (refused.id, refused.state, refused.request_ids) == (made, "refused", [])
    assert "no agency of the registry answers an inquiry for vehicle" in refused.creditor_notice["refused"]
    (event,) = [e for e in audit_rows(app) if e.action == "termination.requery"]
    assert (event.outcome, event.actor_sub, event.details["round"]) == ("refused", "gateway:termination", 1)
    shown = app.test_client().get(f"/api/v1/cases/{CASE_NUMBER}/termination")  # no token: refused, not leaked
    assert shown.status_code == 401
    assert watch.run_once()["made"] == []  # round 2 falls six months later
