"""What the benchmarks that run the gateway in-process share: its settings, and a
private PostgreSQL schema per run, so runs never see each other's rows."""

from __future__ import annotations

from pathlib import Path

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


def gateway_overrides(instance: Path, database_url: str, **workers: float) -> dict:
    """Settings for a gateway in the bench process: its keys in ``instance``, quiet logs,
    workers polling often, and no reuse window (every request goes to its agencies:
    the benchmarks measure delivery, not the cache)."""
    keys = instance / "keys"
    return {
        "gateway": {"instance_dir": str(instance), "log_level": "WARNING"},
        "database": {"url": database_url},
        "auth": {"jwks_file": str(keys / "jwks.json"), "signing_key_file": str(keys / "signing-key.pem")},
        "audit": {"subject_key_file": str(keys / "subject-hash.key")},
        "workers": {"poll_interval_seconds": 0.01, **workers},
        "reuse": {"freshness_seconds": 0},
    }
