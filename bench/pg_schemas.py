"""A private PostgreSQL schema per benchmark run, so runs never see each other's rows."""

from __future__ import annotations

import sqlalchemy as sa

_SCHEMAS: list[tuple[str, str]] = []


def private_schema(server_url: str, schema: str) -> str:
    """Create ``schema`` afresh on the server; return a URL whose connections use it.
    ``drop_schemas`` removes every schema made here."""
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    _SCHEMAS.append((server_url, schema))
    return sa.engine.make_url(server_url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
        hide_password=False)


def drop_schemas() -> None:
    for server_url, schema in _SCHEMAS:
        admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
    _SCHEMAS.clear()
