"""gateway/driver_sql.py on both databases: a Core statement run on the DBAPI cursor
stores what ``Connection.execute`` stores (the same values, read back raw and typed),
a select returns what SQLAlchemy returns (result types processed: a SQLite DateTime
is a datetime, JSON is parsed, a Numeric a Decimal), the driver's errors are
SQLAlchemy's, a literal in a where clause is a bound value, and what this path
cannot do (an expanding IN, a Python column default) is refused when compiled."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from gateway.db import Database
from gateway.deliveries.models import Delivery
from gateway.driver_sql import DriverStatement, pipelined
from gateway.requests import outbox
from gateway.requests.models import Request

AT = datetime(2026, 12, 7, 10, 0, 30, 123456, tzinfo=timezone.utc)
REPLY = {"id": "r", "state": "in_progress", "deliveries": [{"agency": "psb", "attempts": 0, "error": None}],
         "note": "执行 \"quoted\" 100%", "nested": {"list": [1, 2.5, True, None]}}

metadata = sa.MetaData()
PROBE = sa.Table(
    "driver_sql_probe", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(32), nullable=False, unique=True),
    sa.Column("at", sa.DateTime(timezone=True)),
    sa.Column("amount", sa.Numeric(18, 2)),
    sa.Column("doc", sa.JSON),
    sa.Column("flag", sa.Boolean),
    sa.Column("blob", sa.LargeBinary),
    sa.Column("note", sa.Text),
)
# A column with a Python default: Connection.execute fills it in, the driver path cannot.
DEFAULTED = sa.Table(
    "driver_sql_defaulted", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("label", sa.String(16), default="made-by-python"),
)


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    metadata.create_all(database.engine)
    with database.connection_transaction() as conn:  # the rows a request and its deliveries refer to
        conn.execute(sa.text("INSERT INTO subjects (id, kind, name, id_number, created_at) "
                             "VALUES ('s1', 'person', 'Wang', '110101199003071234', :now)"), {"now": AT})
        conn.execute(sa.text("INSERT INTO cases (id, case_number, court_code, amount_owed, registered_by, created_at, "
                             "updated_at) VALUES ('c1', '(2026)浙0102执1号', '330102', 100, 'officer', :now, :now)"),
                     {"now": AT})
    yield database
    metadata.drop_all(database.engine)
    database.dispose()


def _request_row(request_id: str, key: str, **changes: Any) -> dict[str, Any]:
    row = outbox.request_row(
        request_id, case_id="c1", subject_id="s1", action="freeze", categories=["deposit", "securities"],
        state="awaiting_approval", officer_sub="officer.wang", court_code="330102", idempotency_key=key,
        payload_sha256="ab" * 32, reply={**REPLY, "id": request_id}, now=AT, legal_basis_kind="ruling",
        legal_basis_number="(2026)浙0102执1号之一", amount=Decimal("123456.78"), targets=["a1", "a2"],
        court_account=None, decided_by=None, decided_at=None)
    return {**row, **changes}


def _delivery_rows(request_id: str, prefix: str) -> list[dict[str, Any]]:
    return [
        {"id": f"{prefix}-{agency}", "request_id": request_id, "subject_id": "s1", "agency_id": agency,
         "transport": "soap", "categories": ["deposit"], "state": "queued", "attempts": attempts,
         "next_attempt_at": AT + timedelta(seconds=attempts), "lines": lines,
         "deadline": AT + timedelta(days=3), "created_at": AT, "updated_at": AT, "reused_from": None,
         "reused_age_seconds": age, "answered_at": answered, "request_body": body}
        for agency, attempts, lines, age, answered, body in (
            ("bank-a", 0, None, None, None, None),
            ("bank-b", 2, [{"identifier": "6222", "amount": "10.00", "until": None}], 42, AT, b"\x00<xml/>\xff"),
            ("psb", 1, [], None, AT - timedelta(microseconds=1), b""),
        )
    ]


def _typed(conn: sa.Connection, table: sa.Table, where: Any) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(sa.select(table).where(where).order_by(table.c.id))]


def _raw(conn: sa.Connection, table: sa.Table, ids: list[str]) -> list[tuple]:
    """The rows as the driver hands them back (a text() select: no result processing),
    so that a value stored in another form (a datetime's text on SQLite) is seen."""
    columns = ", ".join(c.name for c in table.columns)
    return [tuple(r) for r in conn.execute(
        sa.text(f"SELECT {columns} FROM {table.name} WHERE id IN :ids ORDER BY id")
        .bindparams(sa.bindparam("ids", expanding=True)), {"ids": ids})]


def _without(rows: list[dict[str, Any]], *keys: str) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k not in keys} for row in rows]


def _rename(raw: list[tuple], table: sa.Table, *keys: str) -> list[tuple]:
    """Raw rows with the columns that differ by construction (ids, keys) left out."""
    skip = {i for i, c in enumerate(table.columns) if c.name in keys}
    return [tuple(v for i, v in enumerate(row) if i not in skip) for row in raw]


def test_a_request_inserted_on_the_driver_is_stored_as_connection_execute_stores_it(db):
    driver_row = _request_row("r-driver", "k-driver")
    sqlalchemy_row = _request_row("r-sqlalchemy", "k-sqlalchemy")
    # None in every nullable column, and a decision's datetime, on a second pair.
    driver_none = _request_row("r-driver-2", "k-driver-2", amount=None, legal_basis_kind=None, legal_basis_number=None,
                               decided_at=AT + timedelta(hours=1), decided_by="judge.li", targets=[])
    sqlalchemy_none = _request_row("r-sqlalchemy-2", "k-sqlalchemy-2", **{
        k: driver_none[k] for k in ("amount", "legal_basis_kind", "legal_basis_number", "decided_at", "decided_by",
                                    "targets")})
    with db.connection_transaction() as conn:
        DriverStatement(sa.insert(Request.__table__)).execute(conn, driver_row)
        DriverStatement(sa.insert(Request.__table__)).executemany(conn, [driver_none])
        conn.execute(sa.insert(Request.__table__), [sqlalchemy_row, sqlalchemy_none])
    with db.reading_connection() as conn:
        table = Request.__table__
        typed_driver = _typed(conn, table, table.c.id.like("r-driver%"))
        typed_sqlalchemy = _typed(conn, table, table.c.id.like("r-sqlalchemy%"))
        raw_driver = _raw(conn, table, ["r-driver", "r-driver-2"])
        raw_sqlalchemy = _raw(conn, table, ["r-sqlalchemy", "r-sqlalchemy-2"])
    differ = ("id", "idempotency_key", "accepted_reply")
    assert _without(typed_driver, *differ) == _without(typed_sqlalchemy, *differ)
    assert _rename(raw_driver, table, *differ) == _rename(raw_sqlalchemy, table, *differ)
    # The values themselves came back as given (JSON parsed, Decimal exact, None as None).
    first, second = typed_driver
    assert first["accepted_reply"] == {**REPLY, "id": "r-driver"} and first["categories"] == ["deposit", "securities"]
    assert first["amount"] == Decimal("123456.78") and first["targets"] == ["a1", "a2"]
    assert first["created_at"].replace(tzinfo=timezone.utc) == AT
    assert second["amount"] is None and second["legal_basis_kind"] is None and second["targets"] == []
    assert second["decided_at"].replace(tzinfo=timezone.utc) == AT + timedelta(hours=1)


def test_deliveries_inserted_on_the_driver_are_stored_as_connection_execute_stores_them(db):
    with db.connection_transaction() as conn:
        conn.execute(sa.insert(Request.__table__), [_request_row("r1", "k1")])
        DriverStatement(sa.insert(Delivery.__table__)).executemany(conn, _delivery_rows("r1", "driver"))
        conn.execute(sa.insert(Delivery.__table__), _delivery_rows("r1", "sqlalchemy"))
    with db.reading_connection() as conn:
        table = Delivery.__table__
        typed_driver = _typed(conn, table, table.c.id.like("driver-%"))
        typed_sqlalchemy = _typed(conn, table, table.c.id.like("sqlalchemy-%"))
        raw_driver = _raw(conn, table, [f"driver-{a}" for a in ("bank-a", "bank-b", "psb")])
        raw_sqlalchemy = _raw(conn, table, [f"sqlalchemy-{a}" for a in ("bank-a", "bank-b", "psb")])
    assert len(typed_driver) == 3
    assert _without(typed_driver, "id") == _without(typed_sqlalchemy, "id")
    assert _rename(raw_driver, table, "id") == _rename(raw_sqlalchemy, table, "id")
    bank_b = typed_driver[1]
    assert bank_b["lines"] == [{"identifier": "6222", "amount": "10.00", "until": None}]
    assert bank_b["request_body"] == b"\x00<xml/>\xff" and bank_b["reused_age_seconds"] == 42
    assert typed_driver[0]["lines"] is None and typed_driver[2]["lines"] == []
    assert typed_driver[2]["answered_at"].replace(tzinfo=timezone.utc) == AT - timedelta(microseconds=1)


def _probe_row(i: int, **changes: Any) -> dict[str, Any]:
    return {"id": i, "name": f"n{i}", "at": AT + timedelta(minutes=i), "amount": Decimal("0.10") * i,
            "doc": {"i": i, "list": ["x", None], "text": "张三"}, "flag": i % 2 == 0, "blob": bytes([i, 0, 255]),
            "note": None, **changes}


def test_a_small_table_holds_the_same_values_either_way(db):
    rows = [_probe_row(i) for i in range(1, 4)] + [_probe_row(4, at=None, amount=None, doc=None, flag=None, blob=None)]
    with db.connection_transaction() as conn:
        DriverStatement(sa.insert(PROBE)).executemany(conn, rows)
        conn.execute(sa.insert(PROBE), [{**r, "id": r["id"] + 100, "name": f"m{r['id']}"} for r in rows])
    with db.reading_connection() as conn:
        driver = _typed(conn, PROBE, PROBE.c.id < 100)
        other = _typed(conn, PROBE, PROBE.c.id > 100)
        raw = [tuple(r) for r in conn.execute(sa.text(
            "SELECT at, amount, doc, flag, blob, note FROM driver_sql_probe ORDER BY id"))]
    assert _without(driver, "id", "name") == _without(other, "id", "name")
    assert raw[:4] == raw[4:]
    assert driver[3]["doc"] is None and driver[3]["at"] is None and driver[3]["flag"] is None


def test_a_select_returns_what_sqlalchemy_returns_with_the_result_types_processed(db):
    with db.connection_transaction() as conn:
        conn.execute(sa.insert(PROBE), [_probe_row(i) for i in range(1, 4)])
    statement = (sa.select(PROBE.c.id, PROBE.c.name, PROBE.c.at, PROBE.c.doc, PROBE.c.flag, PROBE.c.blob,
                           PROBE.c.note, sa.func.count().over().label("rows"))
                 .where(PROBE.c.at >= sa.bindparam("since")).order_by(PROBE.c.id))
    params = {"since": AT + timedelta(minutes=2)}
    with db.reading_connection() as conn:
        driver = DriverStatement(statement).execute(conn, params)
        expected = [tuple(r) for r in conn.execute(statement, params)]
    assert driver == expected and [r[0] for r in driver] == [2, 3]
    assert isinstance(driver[0][2], datetime) and driver[0][2].replace(tzinfo=timezone.utc) == AT + timedelta(minutes=2)
    assert driver[0][3] == {"i": 2, "list": ["x", None], "text": "张三"}  # parsed JSON, not its text
    assert driver[0][4] is True and driver[1][4] is False  # a bool on SQLite too, not 0/1
    assert driver[0][5] == bytes([2, 0, 255]) and driver[0][6] is None and driver[0][7] == 2


def test_a_select_of_a_numeric_column_returns_decimals_as_sqlalchemy_does(db):
    """Numeric, summed and plain: the driver path gives SQLAlchemy's Decimal on both
    databases (on PostgreSQL SQLAlchemy picks the numeric result processor from the
    column's type code in the cursor's description)."""
    with db.connection_transaction() as conn:
        conn.execute(sa.insert(PROBE), [_probe_row(i) for i in range(1, 4)])
    plain = sa.select(PROBE.c.id, PROBE.c.amount).order_by(PROBE.c.id)
    summed = sa.select(sa.func.sum(PROBE.c.amount), sa.func.count())
    with db.reading_connection() as conn:
        assert DriverStatement(plain).execute(conn, {}) == [tuple(r) for r in conn.execute(plain)]
        assert DriverStatement(summed).execute(conn, {}) == [tuple(r) for r in conn.execute(summed)] == [
            (Decimal("0.60"), 3)]


def test_the_intake_counts_and_debtor_lookup_agree_with_sqlalchemy(db):
    """The statements the intake runs on the driver (the hourly counts with a boolean
    exists, the purpose rule's join) give the same rows as through SQLAlchemy."""
    from gateway.cases.services import _DEBTOR_QUERY
    from gateway.requests.limits import _COUNTS

    with db.connection_transaction() as conn:
        conn.execute(sa.text("INSERT INTO parties (case_id, subject_id, role, name) VALUES ('c1', 's1', 'debtor', 'Wang')"))
        conn.execute(sa.insert(Request.__table__), [_request_row(f"r{i}", f"k{i}") for i in range(3)])
        conn.execute(sa.text("INSERT INTO request_counts (scope, name, minute, count) VALUES "
                             "('officer', 'officer.wang', :m, 2), ('court', '330102', :m, 5)"),
                     {"m": int(AT.timestamp() // 60) + 1})
    counts = {"officer": "officer.wang", "court": "330102", "subject": "s1", "hour_ago": AT - timedelta(seconds=1),
              "day_ago": AT - timedelta(days=1), "first_minute": int(AT.timestamp() // 60),
              "first_minute_ends": AT + timedelta(seconds=30)}
    debtor = {"case_number": "(2026)浙0102执1号", "court": "330102", "kind": "person", "id_number": "110101199003071234"}
    with db.reading_connection() as conn:
        assert DriverStatement(_COUNTS).execute(conn, counts) == [tuple(r) for r in conn.execute(_COUNTS, counts)] == [
            (5, 8, True)]
        assert DriverStatement(_DEBTOR_QUERY).execute(conn, debtor) == [
            tuple(r) for r in conn.execute(_DEBTOR_QUERY, debtor)] == [("c1", "(2026)浙0102执1号", "s1", "110101199003071234")]
        assert DriverStatement(_DEBTOR_QUERY).execute(conn, {**debtor, "court": "330106"}) == []


def test_a_unique_key_violation_raises_sqlalchemys_integrity_error(db):
    insert = DriverStatement(sa.insert(PROBE))
    with db.connection_transaction() as conn:
        insert.execute(conn, _probe_row(1))
    with pytest.raises(IntegrityError) as raised:
        with db.connection_transaction() as conn:
            insert.execute(conn, _probe_row(2, name="n1"))  # the unique name again
    assert isinstance(raised.value.orig, db.engine.dialect.loaded_dbapi.IntegrityError)
    assert "driver_sql_probe" in raised.value.statement
    with pytest.raises(IntegrityError):
        with db.connection_transaction() as conn:
            insert.executemany(conn, [_probe_row(3), _probe_row(1, name="n9")])  # the primary key again
    with pytest.raises(IntegrityError):  # Idempotency-Key used twice by one officer: the API's replay signal
        with db.connection_transaction() as conn:
            DriverStatement(sa.insert(Request.__table__)).executemany(
                conn, [_request_row("r1", "same-key"), _request_row("r2", "same-key")])
    with db.reading_connection() as conn:  # nothing of the failed transactions kept
        assert conn.execute(sa.select(PROBE.c.id)).scalars().all() == [1]
        assert conn.execute(sa.select(sa.func.count()).select_from(Request.__table__)).scalar() == 0


def test_literal_values_in_a_where_clause_are_bound_with_their_types(db):
    with db.connection_transaction() as conn:
        conn.execute(sa.insert(PROBE), [_probe_row(i) for i in range(1, 5)])
    by_name = sa.select(PROBE.c.id).where(PROBE.c.name == "n3")
    by_moment = sa.select(PROBE.c.id).where(PROBE.c.at > AT + timedelta(minutes=2), PROBE.c.flag == sa.true())
    mixed = sa.select(PROBE.c.id).where(PROBE.c.name != "n1", PROBE.c.id < sa.bindparam("below")).order_by(PROBE.c.id)
    with db.reading_connection() as conn:
        assert DriverStatement(by_name).execute(conn, {}) == [(3,)]
        assert DriverStatement(by_moment).execute(conn, {}) == [(4,)]  # the datetime bound as SQLite stores it
        assert DriverStatement(mixed).execute(conn, {"below": 4}) == [(2,), (3,)]
        assert DriverStatement(mixed).execute(conn, {"below": 5}) == [(2,), (3,), (4,)]  # compiled once, bound anew


def test_an_expanding_in_parameter_is_refused(db):
    with db.reading_connection() as conn:
        with pytest.raises(ValueError, match="expanding"):
            DriverStatement(sa.select(PROBE.c.id).where(PROBE.c.id.in_([1, 2]))).execute(conn, {})
        with pytest.raises(ValueError, match="expanding"):
            DriverStatement(sa.select(PROBE.c.id).where(PROBE.c.name.in_(sa.bindparam("names", expanding=True)))
                            ).execute(conn, {"names": ["n1"]})


def test_an_insert_whose_rows_leave_out_a_column_sqlalchemy_would_fill_in_is_refused(db):
    """A Python default (Request.id's new_id, created_at's utc_now, DEFAULTED.label)
    is SQLAlchemy's to fill in: rows without it are refused, nothing written."""
    row = _request_row("r1", "k1")
    del row["id"]
    with db.connection_transaction() as conn:
        with pytest.raises(ValueError, match="missing"):
            DriverStatement(sa.insert(Request.__table__)).execute(conn, row)
        with pytest.raises(ValueError, match="missing"):
            DriverStatement(sa.insert(Request.__table__)).executemany(
                conn, [{k: v for k, v in _request_row("r2", "k2").items() if k != "created_at"}])
        with pytest.raises(ValueError, match="label"):
            DriverStatement(sa.insert(DEFAULTED)).execute(conn, {"id": 1})
        DriverStatement(sa.insert(DEFAULTED)).execute(conn, {"id": 2, "label": "given"})  # named: fine
    with db.reading_connection() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(Request.__table__)).scalar() == 0
        assert conn.execute(sa.select(DEFAULTED.c.id, DEFAULTED.c.label)).all() == [(2, "given")]


def test_pipelined_writes_land_and_a_failure_among_them_is_sqlalchemys_error_and_keeps_nothing(db):
    """On PostgreSQL the block's statements go in one round trip and a failure shows at
    its end; on SQLite at the statement. Either way SQLAlchemy's IntegrityError, and the
    transaction keeps none of the block."""
    insert = sa.insert(PROBE).inline()
    with db.connection_transaction() as conn:
        with pipelined(conn):
            conn.execute(insert, [_probe_row(1), _probe_row(2, name="n2")])
            conn.execute(sa.update(PROBE).where(PROBE.c.id == 2).values(note="changed"))
    with pytest.raises(IntegrityError) as raised:
        with db.connection_transaction() as conn:
            with pipelined(conn):
                conn.execute(insert, [_probe_row(3, name="n3")])
                conn.execute(sa.update(PROBE).where(PROBE.c.id == 1).values(note="not kept"))
                conn.execute(insert, [_probe_row(4, name="n1")])  # the unique name again, last: seen at the end
    assert isinstance(raised.value.orig, db.engine.dialect.loaded_dbapi.IntegrityError)
    with db.reading_connection() as conn:
        rows = conn.execute(sa.select(PROBE.c.id, PROBE.c.note).order_by(PROBE.c.id)).all()
    assert [(row.id, row.note) for row in rows] == [(1, _probe_row(1)["note"]), (2, "changed")]
