"""Alembic environment: the gateway's tables and the audit log's, one history."""

from alembic import context
from sqlalchemy import pool

from audit.models import AuditBase
from gateway.db import make_engine
from gateway.models import Base

config = context.config
target_metadata = [Base.metadata, AuditBase.metadata]


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is None:
        url = config.get_main_option("sqlalchemy.url")
        if url is None:
            raise RuntimeError("the Alembic configuration names no sqlalchemy.url")
        engine = make_engine(url, poolclass=pool.NullPool)
        with engine.connect() as connection:
            _run(connection)
        engine.dispose()
    else:
        _run(connectable)


def _run(connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=sqlite,  # SQLite alters tables by copying them
        compare_type=True,
    )
    if not sqlite:
        with context.begin_transaction():
            context.run_migrations()
        return
    # A copied table's old one is dropped; with foreign keys on, dropping a table other
    # rows refer to (deliveries, requests) fails. SQLite's procedure for rebuilding a
    # table (sqlite.org/lang_altertable.html, "other kinds of table schema changes"):
    # keys off outside the transaction, foreign_key_check before it commits.
    driver = connection.connection.driver_connection
    keys_on = not connection.in_transaction() and driver.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    if keys_on:
        driver.execute("PRAGMA foreign_keys=OFF")
    try:
        with context.begin_transaction():
            context.run_migrations()
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"the migration left rows whose foreign keys name no row: {broken[:5]}")
    finally:
        if keys_on:
            driver.execute("PRAGMA foreign_keys=ON")


run_migrations_online()
