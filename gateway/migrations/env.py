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
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
