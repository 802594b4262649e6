"""Core statements run on the driver's own cursor: the intake's hot path.

SQLAlchemy's execution path costs about a tenth of a millisecond a statement on
top of the driver (execution context, cache key, parameter and result wrapping),
several times what SQLite itself spends on the intake's small inserts and indexed
reads; and on SQLite those statements run while the database's one write lock is
held, so that cost is paid by every waiting writer too (bench/RESULTS.md, intake).

``DriverStatement`` compiles a Core statement once per dialect (and, for an
insert, per set of columns given), keeps the type processors SQLAlchemy would
apply to each parameter and result column, and runs it on the DBAPI cursor of the
caller's connection, inside the caller's transaction. What is stored is what
``Connection.execute`` would have stored: the same SQL, the same bound values.

What it does not do, so statements needing it are refused when compiled: Python
column defaults (every column an insert gives must be named in its rows),
expanding ``IN`` parameters and ``RETURNING``. The driver's errors are translated at this edge into
SQLAlchemy's (``IntegrityError`` and the rest), as ``Connection.execute`` raises them.

``pipelined`` sends statements that return nothing without waiting for each reply
(psycopg's pipeline mode: one round trip at the block's end), whichever path runs them.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Sequence

from sqlalchemy import Connection, Dialect
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

Processor = Callable[[Any], Any] | None
_GIVEN = object()  # a parameter the caller gives


@dataclass
class _Compiled:
    sql: str
    names: tuple[str, ...]  # parameters in the order the SQL takes them
    positional: bool  # qmark (SQLite) binds a tuple; pyformat (psycopg) a dict
    defaults: tuple[Any, ...]  # a literal's own value (``action == 'inquiry'``), or _GIVEN
    bind_processors: tuple[Processor, ...]
    result_types: tuple[Any, ...]  # the selected columns' types
    # Made at the first rows: a driver's processor may depend on the column's type code in
    # cursor.description (psycopg's Numeric does), as in SQLAlchemy's own result handling.
    result_processors: tuple[Processor, ...] | None = None


class DriverStatement:
    """A Core statement compiled once per dialect and run on the DBAPI cursor."""

    def __init__(self, statement: ClauseElement):
        self._statement = statement
        self._is_insert = bool(getattr(statement, "is_insert", False))  # compiled per set of columns given
        self._compiled: dict[tuple[str, tuple[str, ...] | None], _Compiled] = {}  # by dialect+driver, insert keys

    def execute(self, bind: Session | Connection, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Run it once; the rows it returns (none for a write), result types processed."""
        connection = _connection(bind)
        compiled = self._compile(connection.dialect, params if self._is_insert else None)
        cursor = _cursor(connection)
        bound = _bound(compiled, params)
        try:
            cursor.execute(compiled.sql, bound)
            rows = cursor.fetchall() if cursor.description is not None else []
            if rows and compiled.result_processors is None:
                dialect = connection.dialect
                compiled.result_processors = tuple(
                    kind.dialect_impl(dialect).result_processor(dialect, description[1])
                    for kind, description in zip(compiled.result_types, cursor.description, strict=True))
        except connection.dialect.loaded_dbapi.Error as exc:
            raise _translated(connection, compiled.sql, bound, exc, cursor) from exc
        finally:
            cursor.close()
        processors = compiled.result_processors
        if not rows or processors is None or not any(processors):
            return rows
        return [tuple(value if p is None else p(value) for p, value in zip(processors, row, strict=True)) for row in rows]

    def executemany(self, bind: Session | Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run it once per row (an insert's rows, all with the same keys)."""
        if not rows:
            return
        connection = _connection(bind)
        compiled = self._compile(connection.dialect, rows[0] if self._is_insert else None)
        cursor = _cursor(connection)
        # The rows of one call often share a value (a request's deliveries: one created_at);
        # each distinct object is processed once, by column.
        memo: list[dict[int, Any]] = [{} for _ in compiled.names]
        bound = [_bound(compiled, row, memo) for row in rows]
        try:
            cursor.executemany(compiled.sql, bound)
        except connection.dialect.loaded_dbapi.Error as exc:
            raise _translated(connection, compiled.sql, bound, exc, cursor) from exc
        finally:
            cursor.close()

    def _compile(self, dialect: Dialect, insert_row: Mapping[str, Any] | None) -> _Compiled:
        keys = tuple(insert_row) if insert_row is not None else None
        key = (f"{dialect.name}+{dialect.driver}", keys)
        found = self._compiled.get(key)
        if found is None:
            found = self._compiled[key] = _compile(self._statement, dialect, keys)
        return found


def _compile(statement: ClauseElement, dialect: Dialect, insert_keys: tuple[str, ...] | None) -> _Compiled:
    compiled = statement.compile(dialect=dialect, column_keys=list(insert_keys) if insert_keys is not None else None)
    if not isinstance(compiled, SQLCompiler):  # a statement compiles to SQL; DDL is not for this path
        raise TypeError(f"not a SQL statement: {statement!r}")
    binds = compiled.binds
    if compiled.positional:
        names = tuple(compiled.positiontup or ())
    else:
        names = tuple(binds)
    if any(binds[name].expanding for name in names) or "POSTCOMPILE" in compiled.string:
        raise ValueError(f"an expanding or post-compiled parameter needs SQLAlchemy's execution path: {compiled.string}")
    if insert_keys is not None:
        # A name the rows do not give would be a column default SQLAlchemy fills in; this path does not.
        missing = [name for name in names if name not in insert_keys]
        if missing:
            raise ValueError(f"insert rows must name every column bound, missing {missing}: {compiled.string}")
    defaults = tuple(_GIVEN if binds[name].required else binds[name].value for name in names)
    bind_processors = tuple(binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names)
    if compiled.effective_returning:
        raise ValueError(f"RETURNING needs SQLAlchemy's execution path: {compiled.string}")
    result_types = tuple(column.type for column in getattr(statement, "selected_columns", ()))
    return _Compiled(compiled.string, names, bool(compiled.positional), defaults, bind_processors, result_types)


def _bound(compiled: _Compiled, params: Mapping[str, Any],
           memo: list[dict[int, Any]] | None = None) -> tuple[Any, ...] | dict[str, Any]:
    values = []
    for i, (name, default, process) in enumerate(
            zip(compiled.names, compiled.defaults, compiled.bind_processors, strict=True)):
        value = params[name] if default is _GIVEN else params.get(name, default)
        if process is None:
            values.append(value)
        elif memo is None or value is None:
            values.append(process(value))
        else:  # the rows (and so every value) outlive the call: an id is not reused meanwhile
            seen = memo[i]
            done = seen.get(id(value), _GIVEN)
            if done is _GIVEN:
                done = seen[id(value)] = process(value)
            values.append(done)
    return tuple(values) if compiled.positional else dict(zip(compiled.names, values, strict=True))


@contextmanager
def pipelined(bind: Session | Connection) -> Iterator[None]:
    """Run the block's statements in one round trip on PostgreSQL (psycopg's pipeline
    mode); elsewhere as they come. The answer recorder's writes: each round trip of its
    batch ended in a wait for the GIL, with delivery threads queued behind it
    (bench/RESULTS.md, sustained). Inside, no statement may return rows (SQLAlchemy
    reads a statement's description as it executes) and an insert must be ``inline()``
    (no RETURNING of its new key). A session's pending ORM changes are flushed first,
    for the same reason (a flush may read back keys). A failure surfaces at the block's
    end, translated as ``Connection.execute`` translates it; the transaction is then to
    be rolled back."""
    if isinstance(bind, Session):
        bind.flush()
    connection = _connection(bind)
    pipeline = getattr(connection.connection.dbapi_connection, "pipeline", None)
    if pipeline is None:
        yield
        return
    try:
        with pipeline():
            yield
    except connection.dialect.loaded_dbapi.Error as exc:
        raise _translated(connection, "(pipelined statements)", None, exc, None) from exc


def _connection(bind: Session | Connection) -> Connection:
    return bind.connection() if isinstance(bind, Session) else bind


def _cursor(connection: Connection) -> Any:
    dbapi_connection = connection.connection.dbapi_connection
    if dbapi_connection is None:  # only after the pool invalidated it, never inside a transaction
        raise RuntimeError("the database connection was invalidated mid-transaction")
    return dbapi_connection.cursor()


def _translated(connection: Connection, sql: str, params: Any, exc: Any, cursor: Any) -> StatementError:
    """The driver's error as SQLAlchemy's, as ``Connection.execute`` raises it; a lost
    connection is invalidated, as there, so the pool does not hand it out again."""
    dialect = connection.dialect
    lost = dialect.is_disconnect(exc, connection.connection.dbapi_connection, cursor)
    if lost:
        connection.invalidate(exc)
    return DBAPIError.instance(sql, params, exc, dialect.loaded_dbapi.Error, dialect=dialect,
                               connection_invalidated=lost)
