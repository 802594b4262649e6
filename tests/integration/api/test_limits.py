"""Limits per officer and per court ([limits], gateway/requests/limits.py): requests
per hour per officer and per court, new subjects per day per officer. Over a limit:
429 with Retry-After, the limit named, the refusal audited; a replay of an earlier
Idempotency-Key still gets its first reply. Both databases; the race for the last
place on PostgreSQL, where READ COMMITTED alone would let several through."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from conftest import CASE_NUMBER, COURT, CREDITOR, DEBTOR, OTHER_PERSON, Api, audit_rows, make_app

from gateway.auth.tokens import Principal
from gateway.db import Database
from gateway.errors import TooManyRequests
from gateway.requests import services
from gateway.requests.models import Request
from sandboxes.server import SandboxServer
from schemas.canonical import RequestSubmissionSchema

SUBJECTS = [DEBTOR, OTHER_PERSON,
            {"kind": "person", "name": "王五", "id_number": "330106199001012208"},
            {"kind": "person", "name": "赵六", "id_number": "330102198703151122"}]


@pytest.fixture
def limited(overrides, psb_sandbox):
    limits = {"officer_requests_per_hour": 3, "court_requests_per_hour": 5, "officer_subjects_per_day": 2}
    app = make_app({**overrides, "limits": limits}, {"psb": psb_sandbox.url})
    server = SandboxServer(app).start()
    api = Api(server.url, app.config["SETTINGS"])
    for i, subject in enumerate(SUBJECTS):  # one case per debtor
        reply = api.register_case(case_number=CASE_NUMBER.replace("1234", str(1234 + i)),
                                  parties=[{"role": "debtor", "subject": subject}, {"role": "creditor", "subject": CREDITOR}])
        assert reply.status_code == 201, reply.text
    yield api, app
    server.stop()
    app.extensions["db"].dispose()


def _ask(api: Api, i: int, **kw):
    return api.inquire(subject=SUBJECTS[i], case_number=CASE_NUMBER.replace("1234", str(1234 + i)), **kw)


def test_an_officer_over_the_hourly_limit_gets_429_with_retry_after_and_a_replay_still_works(limited):
    api, app = limited
    first = _ask(api, 0, key="limits-key-1")
    assert first.status_code == 202
    assert [_ask(api, 0).status_code for _ in range(2)] == [202, 202]
    refused = _ask(api, 0)
    assert refused.status_code == 429, refused.text
    assert 1 <= int(refused.headers["Retry-After"]) <= 3601
    error = refused.json()["error"]
    assert error["code"] == "too_many_requests"
    assert "officer officer.wang has submitted 3 requests in the last hour" in error["message"]
    assert "limits.officer_requests_per_hour" in error["message"]
    # The same key and body again: the first reply, not a refusal.
    replay = _ask(api, 0, key="limits-key-1")
    assert replay.status_code == 202 and replay.json() == first.json()
    refusals = [e for e in audit_rows(app) if e.outcome == "refused" and e.details.get("code") == "too_many_requests"]
    assert len(refusals) == 1


def test_the_court_limit_counts_every_officer_of_the_court(limited):
    api, _app = limited
    li = api.token(sub="officer.li")
    assert [_ask(api, 0).status_code for _ in range(3)] == [202, 202, 202]
    assert [_ask(api, 0, token=li).status_code for _ in range(2)] == [202, 202]
    refused = _ask(api, 0, token=li)  # officer.li's third, the court's sixth
    assert refused.status_code == 429
    assert "court 330102 has submitted 5 requests in the last hour" in refused.json()["error"]["message"]


def test_a_new_subject_over_the_daily_limit_is_refused_but_one_asked_about_today_is_not(limited):
    api, _app = limited
    li = api.token(sub="officer.li")
    assert _ask(api, 0, token=li).status_code == 202
    assert _ask(api, 1, token=li).status_code == 202
    refused = _ask(api, 2, token=li)
    assert refused.status_code == 429
    assert "has asked about 2 subjects in the last day" in refused.json()["error"]["message"]
    assert _ask(api, 1, token=li).status_code == 202  # asked about today already: not a new subject
    assert _ask(api, 3).status_code == 202  # another officer's subjects are counted apart


RACERS = 20


@pytest.mark.postgres_only
@pytest.mark.parametrize("last_place", ["officer", "court"])
def test_twenty_requests_racing_for_the_last_place_let_exactly_one_through(limited, last_place):
    """Each racer on its own connection, in its own write transaction, released at
    once by a barrier just before the intake counts: without a lock per officer and
    per court, READ COMMITTED lets every racer count the same requests. The
    officer's last place (3 an hour) raced by one officer, the court's (5 an hour)
    by twenty officers of the court."""
    api, app = limited
    if last_place == "officer":
        assert [_ask(api, 0).status_code for _ in range(2)] == [202, 202]  # 2 of officer.wang's 3
        racers = ["officer.wang"] * RACERS
    else:
        assert [_ask(api, 0, token=api.token(sub=f"officer.{i}")).status_code for i in range(4)] == [202] * 4
        racers = [f"officer.racer{i}" for i in range(RACERS)]  # 4 of the court's 5 taken
    settings = app.config["SETTINGS"]
    db = Database(settings.database_url, pool_size=RACERS, max_overflow=0)  # a connection for each racer
    payload = RequestSubmissionSchema().load({"case_number": CASE_NUMBER, "subject": DEBTOR, "action": "inquiry"})
    barrier = threading.Barrier(RACERS)

    def race(sub: str) -> str:
        principal, key = Principal(sub=sub, role="court_officer", court=COURT), f"race-{uuid.uuid4()}"
        try:
            with db.connection_transaction() as connection:
                connection.execute(sa.text("SELECT 1"))  # the connection checked out, the transaction begun
                barrier.wait(timeout=30)
                prepared = services.prepare_request(
                    connection, payload, principal=principal, idempotency_key=key, digest=key,
                    registry=app.extensions["registry"], now=app.extensions["clock"](), limits=settings.limits)
                services.write_request(connection, prepared, principal=principal, audit=app.extensions["audit"])
            return "accepted"
        except TooManyRequests:
            return "refused"

    try:
        with ThreadPoolExecutor(max_workers=RACERS) as pool:
            outcomes = list(pool.map(race, racers))
    finally:
        db.dispose()
    assert sorted(outcomes) == ["accepted"] + ["refused"] * (RACERS - 1)
    with app.extensions["db"].reading() as session:
        counted = sa.select(sa.func.count()).select_from(Request)
        if last_place == "officer":
            counted = counted.where(Request.officer_sub == "officer.wang")
        assert session.scalar(counted) == {"officer": 3, "court": 5}[last_place]


def _prepare(app, sub: str, subject: int, limits) -> None:
    """One inquiry through the intake service with the limits given (the API's
    transaction, without HTTP), so a test can lower a limit under requests already made."""
    payload = RequestSubmissionSchema().load({"case_number": CASE_NUMBER.replace("1234", str(1234 + subject)),
                                              "subject": SUBJECTS[subject], "action": "inquiry"})
    principal, key = Principal(sub=sub, role="court_officer", court=COURT), f"direct-{uuid.uuid4()}"
    with app.extensions["db"].connection_transaction() as connection:
        prepared = services.prepare_request(
            connection, payload, principal=principal, idempotency_key=key, digest=key,
            registry=app.extensions["registry"], now=app.extensions["clock"](), limits=limits)
        services.write_request(connection, prepared, principal=principal, audit=app.extensions["audit"])


def test_the_counts_stop_at_the_limit_but_a_refusal_names_the_whole_count(limited):
    """The hourly counts are read no further than the limit (an index range bounded by
    it, however busy the hour); a refusal still says how many there were, and its
    Retry-After still runs from the oldest of them."""
    from dataclasses import replace

    _api, app = limited
    roomy = replace(app.config["SETTINGS"].limits, officer_requests_per_hour=100, court_requests_per_hour=100)
    for _ in range(5):
        _prepare(app, "officer.zhou", 0, roomy)
    with pytest.raises(TooManyRequests, match="officer officer.zhou has submitted 5 requests in the last hour; "
                                              "the limit is 2") as refused:
        _prepare(app, "officer.zhou", 0, replace(roomy, officer_requests_per_hour=2))
    assert 3500 <= refused.value.retry_after_seconds <= 3601
    with pytest.raises(TooManyRequests, match="court 330102 has submitted 5 requests in the last hour; the limit is 4"):
        _prepare(app, "officer.qian", 0, replace(roomy, court_requests_per_hour=4))


def test_the_subjects_of_the_day_are_counted_only_for_a_new_subject(limited):
    """An officer over the daily number of subjects (the limit lowered under him) may
    still ask about a subject asked about today; a new one is refused with the count."""
    from dataclasses import replace

    _api, app = limited
    roomy = replace(app.config["SETTINGS"].limits, officer_requests_per_hour=100, court_requests_per_hour=100,
                    officer_subjects_per_day=100)
    for subject in (0, 1, 2):
        _prepare(app, "officer.zhou", subject, roomy)
    tight = replace(roomy, officer_subjects_per_day=1)
    _prepare(app, "officer.zhou", 2, tight)  # asked about today: not counted, whatever the others
    with pytest.raises(TooManyRequests, match="has asked about 3 subjects in the last day; the limit is 1 new"):
        _prepare(app, "officer.zhou", 3, tight)


@pytest.mark.postgres_only
def test_the_limit_locks_are_the_schemas_own(database_url):
    """An intake holding an officer's and a court's limit locks holds up another intake
    of the same officer in its schema, but not one in another schema of the same
    database (another gateway's or test run's): the advisory key carries the schema."""
    from gateway.requests.limits import lock_counts

    server, principal = database_url.split("?")[0], Principal(sub="officer.wang", role="court_officer", court=COURT)
    other = f"gw_limits_other_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{other}"'))
    engines = [sa.create_engine(url) for url in (database_url, database_url,
                                                 f"{server}?options=-csearch_path%3D{other}")]
    try:
        with engines[0].begin() as holding:
            lock_counts(holding, principal)  # held until this transaction ends
            with engines[2].begin() as elsewhere:
                elsewhere.execute(sa.text("SET LOCAL lock_timeout = '5s'"))  # fails, not hangs, if it waits
                lock_counts(elsewhere, principal)
            with pytest.raises(sa.exc.OperationalError, match="lock timeout"):
                with engines[1].begin() as same_schema:
                    same_schema.execute(sa.text("SET LOCAL lock_timeout = '200ms'"))
                    lock_counts(same_schema, principal)
    finally:
        for engine in engines:
            engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{other}" CASCADE'))
        admin.dispose()
