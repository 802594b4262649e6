"""Database: one engine per process, sessions opened at the edge.

Services take a ``Session``, may flush, and never commit; the edge (a view, the
worker loop, a CLI command) opens the transaction with ``db.transaction()``.

SQLite: WAL, ``synchronous=FULL``, foreign keys on, and every write transaction
begins with ``BEGIN IMMEDIATE`` so that two writers never both read the audit
chain head (SQLite renders no ``FOR UPDATE``). PostgreSQL: ``postgresql+psycopg``.
"""

from __future__ import annotations

import fcntl
import os
import queue
import threading
from concurrent.futures import Future
from contextlib import contextmanager, nullcontext
from typing import Any, Callable, ContextManager, Iterator, TypeVar

T = TypeVar("T")

from flask import Flask, current_app
from sqlalchemy import Connection, Engine, MetaData, create_engine, event
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


class GroupCommitter:
    """Group commit: small write units from many threads share one transaction.

    A unit is a function of a Core ``Connection`` (the intake's hot path has no
    use for the ORM's unit of work); ``submit`` blocks until the transaction
    holding it has committed, and returns the unit's result or raises its error.
    One writer thread per process takes whatever units are waiting and runs each
    in its own savepoint, so a unit that fails (say, a racing Idempotency-Key)
    is rolled back alone while the others commit. Under load one commit, one
    fsync and one turn at the write lock serve many requests; alone, a unit is
    committed at once.
    """

    def __init__(self, database: Database, max_batch: int = 64):
        self._database, self._max_batch = database, max_batch
        self._queue: queue.SimpleQueue[tuple[Callable[[Connection], Any], Future] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def submit(self, unit: Callable[[Connection], T], timeout: float = 60.0) -> T:
        if self._thread is None:
            with self._start_lock:  # started on first use: after any fork, in the process that uses it
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
                    self._thread.start()
        future: Future = Future()
        self._queue.put((unit, future))
        return future.result(timeout)

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(10)
            self._thread = None

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(item)
            self._commit(batch)

    def _commit(self, batch: list[tuple[Callable[[Connection], Any], Future]]) -> None:
        outcomes: list[tuple[Future, Any, BaseException | None]] = []
        try:
            with self._database.connection_transaction() as connection:
                for unit, future in batch:
                    try:
                        with connection.begin_nested():
                            outcomes.append((future, unit(connection), None))
                    except Exception as exc:  # this unit only; the batch goes on
                        outcomes.append((future, None, exc))
        except BaseException as exc:  # the commit itself failed: nothing of the batch was written
            for _, future in batch:
                future.set_exception(exc)
            return
        for future, value, error in outcomes:
            if error is None:
                future.set_result(value)
            else:
                future.set_exception(error)


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
        self.group_commit = GroupCommitter(self)

    def _write_gate(self) -> ContextManager[None]:
        return self._gate.held() if self._gate else nullcontext()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A write transaction: committed on success, rolled back on any error.

        Keep it short: on SQLite it holds the database's one write lock. Do the
        reads and the Python work before, in ``reading()``.
        """
        with self._write_gate(), self._write_sessions.begin() as session:
            yield session

    @contextmanager
    def connection_transaction(self) -> Iterator[Connection]:
        """A write transaction on a Core connection (no ORM), for hot paths."""
        with self._write_gate(), self._writer.begin() as connection:
            yield connection

    @contextmanager
    def connection_reading(self) -> Iterator[Connection]:
        """A read-only transaction on a Core connection (no ORM), for hot paths."""
        with self.engine.connect() as connection, connection.begin():
            yield connection

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A read-only transaction (no write lock on SQLite)."""
        with self._read_sessions() as session:
            with session.begin():
                yield session

    def dispose(self) -> None:
        self.group_commit.stop()
        self.engine.dispose()


def init_app(app: Flask) -> None:
    app.extensions["db"] = Database(app.config["SETTINGS"].database_url)


def get_db() -> Database:
    return current_app.extensions["db"]
