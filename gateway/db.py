"""Database: one engine per process, sessions opened at the edge.

Services take a ``Session``, may flush, and never commit; the edge (a view, the
housekeeper, a CLI command) opens the transaction with ``db.transaction()``.

SQLite: WAL, ``synchronous=FULL``, foreign keys on, and every write transaction
begins with ``BEGIN IMMEDIATE`` so that two writers never both read the audit
chain head (SQLite renders no ``FOR UPDATE``): a business transaction writing a batch
of audit events chains them under that lock (audit/store.py). PostgreSQL: ``postgresql+psycopg``.
"""

from __future__ import annotations

import fcntl
import os
import threading
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, ClassVar, ContextManager, Iterator, cast

from flask import Flask, current_app
from sqlalchemy import Connection, CursorResult, Engine, MetaData, Result, Table, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)

    if TYPE_CHECKING:
        # Every model here maps one declared Table; DeclarativeBase types it as the
        # wider FromClause, which insert()/update() of the Core table refuse.
        __table__: ClassVar[Table]


def rows_matched(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE matched. Session.execute returns a CursorResult
    for such a statement, but is typed to return the plain Result (no rowcount)."""
    return cast(CursorResult[Any], result).rowcount


def normalise_url(url: str) -> str:
    # SQLAlchemy 2.1 maps postgresql:// to psycopg 3 already; 2.0 would pick
    # psycopg2, which we do not install. Say the driver explicitly.
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://") :]
    if url.startswith("postgres://"):
        return "postgresql+psycopg://" + url[len("postgres://") :]
    return url


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself, so we choose its kind.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.execute("PRAGMA foreign_keys=ON")
        # Another connection's commit empties this one's page cache; with the file
        # memory-mapped, reading pages back is a memory load, not a pread each.
        cursor.execute("PRAGMA mmap_size=268435456")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


def make_engine(url: str, **kwargs: Any) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)
        _configure_sqlite(engine)
        return engine
    if "poolclass" not in kwargs:
        kwargs = {"pool_size": 10, "max_overflow": 10, **kwargs}
    return create_engine(url, pool_pre_ping=True, **kwargs)


class SqliteWriteGate:
    """Queue SQLite writers in the kernel instead of in SQLite's busy handler.

    SQLite lets one writer in at a time and makes the others sleep and retry
    with growing delays, so under load the lock often sits free while every
    waiter sleeps (measured: p99 over a second). Here the threads of a process
    queue on a mutex and the processes on an flock of a file beside the
    database, and each wakes the moment the lock is free.
    """

    def __init__(self, database_path: str):
        self._path = database_path + ".write-lock"
        self._mutex = threading.Lock()
        self._fd: int | None = None  # opened lazily: after a fork, never inherited

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._mutex:
            if self._fd is None:
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)


class Database:
    def __init__(self, url: str, **engine_kwargs: Any):
        self.url = normalise_url(url)
        self.engine = make_engine(self.url, **engine_kwargs)
        self.dialect = self.engine.dialect.name
        self._writer = self.engine.execution_options(sqlite_begin="IMMEDIATE")
        self._write_sessions = sessionmaker(self._writer, expire_on_commit=False)
        self._read_sessions = sessionmaker(self.engine, expire_on_commit=False)
        path = self.engine.url.database if self.dialect == "sqlite" else None
        self._gate = SqliteWriteGate(os.path.abspath(path)) if path and path != ":memory:" else None

    def _write_gate(self) -> ContextManager[None]:
        return self._gate.held() if self._gate else nullcontext()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A write transaction: committed on success, rolled back on any error.

        Keep it short: on SQLite it holds the database's one write lock, so
        nothing slow (network, heavy Python) belongs inside.
        """
        with self._write_gate(), self._write_sessions.begin() as session:
            yield session

    @contextmanager
    def connection_transaction(self) -> Iterator[Connection]:
        """A write transaction on a Core connection (no ORM), for hot paths."""
        with self._write_gate(), self._writer.begin() as connection:
            yield connection

    @contextmanager
    def reading_connection(self) -> Iterator[Connection]:
        """A Core connection for reading (no write lock on SQLite), for hot paths. Statements on
        the driver's cursor (gateway/driver_sql.py) each read the latest commit; the first
        through SQLAlchemy begins a transaction, rolled back at the end: nothing here writes."""
        with self.engine.connect() as connection:
            yield connection

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A read-only transaction (no write lock on SQLite)."""
        with self._read_sessions() as session:
            with session.begin():
                yield session

    def dispose(self) -> None:
        self.engine.dispose()


def init_app(app: Flask) -> None:
    app.extensions["db"] = Database(app.config["SETTINGS"].database_url)


def get_db() -> Database:
    return current_app.extensions["db"]
