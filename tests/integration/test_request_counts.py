"""The per-minute request counts behind the hourly limits (gateway/requests/limits.py,
table request_counts, migration 0021_request_counts) on both databases: the hour is
exact at minute boundaries (the minute the hour starts in counted from its requests
from ``hour_ago`` on, the later minutes from the counters), the counters are the
requests grouped by officer or court and minute, and the migration counts in the
requests of the last two hours only."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import pytest
import sqlalchemy as sa
from conftest import COURT, CREDITOR, DEBTOR, Api, make_app

from gateway import migrate
from gateway.auth.tokens import Principal
from gateway.errors import TooManyRequests
from gateway.requests import outbox
from gateway.requests.limits import check_limits, forget_old_counts, minute_of
from gateway.requests.models import Request, RequestCount
from gateway.settings import LimitsSection
from sandboxes.server import SandboxServer
from test_migrations import empty_database  # noqa: F401 (fixture)

OTHER_COURT, OTHER_COURT_CASE = "330106", "(2024)浙0106执55号"
DAY = datetime(2026, 12, 7, tzinfo=timezone.utc)


def at(hour: int, minute: int, second: int) -> datetime:
    return DAY.replace(hour=hour, minute=minute, second=second)


class Clock:
    def __init__(self) -> None:
        self.now = at(9, 0, 0)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clocked(overrides, psb_sandbox, request) -> Iterator[tuple[Api, Any, Clock]]:
    limits = {"officer_requests_per_hour": 1000, "court_requests_per_hour": 1000, "officer_subjects_per_day": 100,
              **getattr(request, "param", {})}
    app = make_app({**overrides, "limits": limits}, {"psb": psb_sandbox.url})
    clock = app.extensions["clock"] = Clock()
    server = SandboxServer(app).start()
    api = Api(server.url, app.config["SETTINGS"])
    assert api.register_case().status_code == 201
    other = api.token(court=OTHER_COURT, sub="officer.hz")
    reply = api.register_case(case_number=OTHER_COURT_CASE, court_code=OTHER_COURT, token=other,
                              parties=[{"role": "debtor", "subject": DEBTOR}, {"role": "creditor", "subject": CREDITOR}])
    assert reply.status_code == 201, reply.text
    yield api, app, clock
    server.stop()
    worker = app.extensions["worker"]
    if worker.running:
        worker.stop()
    app.extensions["db"].dispose()


def _counters(app: Any) -> Counter:
    with app.extensions["db"].reading() as session:
        return Counter({(r.scope, r.name, r.minute): r.count for r in session.scalars(sa.select(RequestCount))})


def _grouped_requests(app: Any) -> Counter:
    with app.extensions["db"].reading() as session:
        rows = session.execute(sa.select(Request.officer_sub, Request.court_code, Request.created_at)).all()
    tally: Counter = Counter()
    for officer, court, created_at in rows:
        tally["officer", officer, minute_of(created_at)] += 1
        tally["court", court, minute_of(created_at)] += 1
    return tally


@pytest.mark.parametrize("clocked,scope", [({"officer_requests_per_hour": 4}, "officer"),
                                           ({"court_requests_per_hour": 4}, "court")], indirect=["clocked"])
def test_the_hour_is_exact_at_minute_boundaries(clocked, scope):
    """A limit of 4 an hour, one officer's (or the court's, each request by another
    officer). At 11:00:40 the hour starts at 10:00:40, inside the minute 10:00: of that
    minute only the requests at or after 10:00:40 count (read from the requests), the
    minutes after it from their counters."""
    api, app, clock = clocked
    made = iter(range(1000))

    def ask(h: int, m: int, s: int) -> int:
        clock.now = at(h, m, s)
        sub = "officer.wang" if scope == "officer" else f"officer.p{next(made)}"
        reply = api.inquire(token=api.token(sub=sub))
        if reply.status_code == 429:
            assert f"{scope} " in reply.json()["error"]["message"]
            assert "has submitted 4 requests in the last hour" in reply.json()["error"]["message"]
        return reply.status_code

    assert [ask(10, 0, 30), ask(10, 0, 40), ask(10, 0, 50), ask(10, 59, 59)] == [202] * 4
    assert ask(10, 59, 59) == 429
    # 11:00:40: 10:00:30 is out, 10:00:40 (at hour_ago exactly) and 10:00:50 in: 3 and one more.
    assert [ask(11, 0, 40), ask(11, 0, 40)] == [202, 429]
    assert [ask(11, 0, 41), ask(11, 0, 41)] == [202, 429]  # 10:00:40 left the hour
    assert [ask(11, 0, 51), ask(11, 0, 51)] == [202, 429]  # 10:00:50 left the hour
    # 11:01:00: the minute 10:00 wholly out; 10:59 (1) and 11:00 (3) from their counters.
    assert ask(11, 1, 0) == 429
    # 11:59:59: the hour starts in the minute 10:59, whose request at 10:59:59 is in it.
    assert ask(11, 59, 59) == 429
    # 12:00:00: only the minute 11:00's three (now the first minute, read from the requests).
    assert [ask(12, 0, 0), ask(12, 0, 0)] == [202, 429]
    assert _counters(app)["court", COURT, minute_of(at(11, 0, 0))] == 3


def test_the_counters_are_the_requests_grouped_by_minute(clocked):
    api, app, clock = clocked
    officers = [api.token(sub=s) for s in ("officer.wang", "officer.li")]
    hangzhou = api.token(court=OTHER_COURT, sub="officer.hz")
    moments = [at(10, 0, 0), at(10, 0, 59), at(10, 1, 0), at(10, 1, 0), at(10, 7, 30), at(11, 30, 1)]
    for i, moment in enumerate(moments):
        clock.now = moment
        for token in officers[: 1 + i % 2]:
            assert api.inquire(token=token).status_code == 202
        assert api.inquire(token=hangzhou, case_number=OTHER_COURT_CASE).status_code == 202
    clock.now = at(11, 30, 2)
    replayed = api.inquire(key="counts-replay")
    assert replayed.status_code == 202 and api.inquire(key="counts-replay").json() == replayed.json()  # counted once
    assert api.inquire(case_number=OTHER_COURT_CASE).status_code == 403  # refused: not counted
    counters, grouped = _counters(app), _grouped_requests(app)
    assert counters == grouped
    assert counters["officer", "officer.wang", minute_of(at(10, 1, 0))] == 2
    assert counters["court", COURT, minute_of(at(10, 1, 0))] == 3
    assert counters["court", OTHER_COURT, minute_of(at(10, 0, 0))] == 2  # 10:00:00 and 10:00:59
    assert counters["officer", "officer.wang", minute_of(at(11, 30, 2))] == 2  # 11:30:01, and the key once
    assert minute_of(at(10, 0, 59)) == minute_of(at(10, 0, 0)) == int(at(10, 0, 0).timestamp()) // 60


def test_counts_no_limit_reads_any_more_are_forgotten(clocked):
    """The housekeeper's request_counts task deletes the minutes older than two hours and
    keeps the rest (without it the table grows by two rows per busy officer-minute)."""
    api, app, clock = clocked
    for moment in (at(9, 59, 59), at(10, 0, 0), at(11, 30, 0)):
        clock.now = moment
        assert api.inquire().status_code == 202
    assert forget_old_counts(app.extensions["db"], at(12, 0, 30)) == 2  # 09:59's officer and court rows
    assert {m for _, _, m in _counters(app)} == {minute_of(at(10, 0, 0)), minute_of(at(11, 30, 0))}
    assert "request_counts" in app.extensions["housekeeper"].task_names
    clock.now = at(12, 0, 30)
    assert api.inquire().status_code == 202  # and the hour is still counted right
    assert sum(c for (scope, _, m), c in _counters(app).items() if scope == "court") == 3


# --- migration 0021 --------------------------------------------------------------------


BEFORE = "0020_intake_indexes"


def _request(request_id: str, officer: str, court: str, created_at: datetime) -> dict[str, Any]:
    return outbox.request_row(
        request_id, case_id="c1", subject_id="s1", action="inquiry", categories=["deposit"], state="in_progress",
        officer_sub=officer, court_code=court, idempotency_key=f"k-{request_id}", payload_sha256="x",
        reply={}, now=created_at)


def test_the_migration_counts_in_the_requests_of_the_last_two_hours(empty_database):  # noqa: F811
    url = empty_database
    migrate.upgrade(url, BEFORE)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    recent = [("r1", "officer.a", COURT, now - timedelta(seconds=20)),
              ("r2", "officer.a", COURT, now - timedelta(seconds=10)),
              ("r3", "officer.b", COURT, now - timedelta(minutes=30)),
              ("r4", "officer.a", OTHER_COURT, now - timedelta(minutes=90)),
              ("r5", "officer.b", COURT, now - timedelta(minutes=115))]
    older = [("r6", "officer.a", COURT, now - timedelta(minutes=125)),
             ("r7", "officer.c", OTHER_COURT, now - timedelta(days=3))]
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO subjects (id, kind, name, id_number, created_at) "
                                 "VALUES ('s1', 'person', 'Wang', '110101199003071234', :now)"), {"now": now})
            conn.execute(sa.text("INSERT INTO cases (id, case_number, court_code, amount_owed, registered_by, "
                                 "created_at, updated_at) VALUES ('c1', '(2026)浙0102执1号', '330102', 100, 'officer', "
                                 ":now, :now)"), {"now": now})
            conn.execute(sa.insert(Request.__table__), [_request(*r) for r in recent + older])
        migrate.upgrade(url)
        expected: Counter = Counter()
        for _id, officer, court, created_at in recent:
            expected["officer", officer, minute_of(created_at)] += 1
            expected["court", court, minute_of(created_at)] += 1
        with engine.connect() as conn:
            stored = {(r.scope, r.name, r.minute): r.count for r in conn.execute(sa.select(RequestCount.__table__))}
        assert stored == dict(expected)
        assert not any(name == "officer.c" for _scope, name, _minute in stored)

        # The limits read the backfilled counts: officer.a has 2 requests in the hour before now (r1, r2).
        officer_a = Principal(sub="officer.a", role="court_officer", court=COURT)

        def check(limit: int) -> None:
            limits = LimitsSection(officer_requests_per_hour=limit, court_requests_per_hour=1000,
                                   officer_subjects_per_day=100, officer_batch_lines_per_day=1000)
            with engine.begin() as conn:
                check_limits(conn, officer_a, "s1", limits, now, f"new-{uuid.uuid4()}")

        check(3)
        with pytest.raises(TooManyRequests, match="officer officer.a has submitted 2 requests"):
            check(2)

        migrate.downgrade(url, BEFORE)
        assert "request_counts" not in sa.inspect(engine).get_table_names()
        migrate.upgrade(url)
        with engine.connect() as conn:
            again = {(r.scope, r.name, r.minute): r.count for r in conn.execute(sa.select(RequestCount.__table__))}
        assert again == dict(expected)
    finally:
        engine.dispose()
