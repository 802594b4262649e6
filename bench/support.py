"""What the benchmarks that run the gateway in-process share: its settings, a
private PostgreSQL schema per run (so runs never see each other's rows), and one
case whose debtor they ask about through the intake code."""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

from gateway.auth.tokens import Principal

COURT, CASE_NUMBER = "330102", "(2024)浙0102执1234号"
DEBTOR = {"kind": "person", "name": "张三", "id_number": "330102198703151157"}  # fictitious, valid check digit
CREDITOR = {"kind": "organization", "name": "杭州某某建材有限公司", "id_number": "91350100M000100Y43"}
OFFICER = Principal(sub="officer.bench", role="court_officer", court=COURT)

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


def register_case(app) -> None:
    """The benchmarks' case, with DEBTOR as its debtor."""
    from gateway.cases import services as cases

    with app.extensions["db"].transaction() as session:
        cases.register_case(session, {"case_number": CASE_NUMBER, "court_code": COURT, "amount_owed": Decimal("150000.00"),
                                      "parties": [{"role": "debtor", "subject": DEBTOR},
                                                  {"role": "creditor", "subject": CREDITOR}]},
                            OFFICER, audit=app.extensions["audit"], courts=app.extensions["court_codes"])


def submit_inquiries(app, n: int) -> list[str]:
    """``n`` one-click inquiries about DEBTOR through the intake service (the same
    transaction as the API, no HTTP, no limits); their request ids."""
    from gateway.requests import services as intake
    from gateway.timeutil import utc_now

    db, audit, ids = app.extensions["db"], app.extensions["audit"], []
    payload = {"case_number": CASE_NUMBER, "subject": DEBTOR, "action": "inquiry", "categories": None}
    for _ in range(n):
        with db.connection_transaction() as connection:
            prepared = intake.prepare_request(connection, payload, principal=OFFICER, idempotency_key=uuid.uuid4().hex,
                                              digest=uuid.uuid4().hex, registry=app.extensions["registry"], now=utc_now())
            intake.write_request(connection, prepared, principal=OFFICER, audit=audit)
        ids.append(prepared.request_row["id"])
    return ids
