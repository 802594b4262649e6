"""Shared fixtures. Every test that touches the database runs twice: against
SQLite and against PostgreSQL (127.0.0.1:5432, database ``test``), and the run
ends by saying how many tests passed on each.

PostgreSQL is required: if it cannot be reached the run fails and says so,
unless GATEWAY_TEST_POSTGRES=skip is set (then those tests skip, loudly).
"""

from __future__ import annotations

import base64
import math
import os
import re
import shutil
import tomllib
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
import sqlalchemy as sa

from gateway import migrate
from gateway.auth.keys import init_keys
from gateway.auth.tokens import issue_token
from gateway.registry import Registry, load_registry
from gateway.settings import CONFIG_DIR, load_settings
from sandboxes.run import ALL as ALL_SANDBOXES
from sandboxes.run import start_sandboxes
from sandboxes.server import SandboxServer
from system_packages import apt_install

PG_SERVER = os.environ.get("GATEWAY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
COURT = "330102"
CASE_NUMBER = "(2024)浙0102执1234号"
DEBTOR = {"kind": "person", "name": "张三", "id_number": "330102198703151157"}
OTHER_PERSON = {"kind": "person", "name": "李四", "id_number": "11010519491231002X"}
CREDITOR = {"kind": "organization", "name": "杭州某某建材有限公司", "id_number": "91350100M000100Y43"}
# Every control carries a legal document (PDF) and needs its officer's credentials on file
# (gateway/attachments/). The smallest files that are what they say they are:
LEGAL_PDF = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
             b"trailer<</Root 1 0 R>>\n%%EOF\n")
CARD_PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x00\x00\x00\x00:~\x9bU"
            b"\x00\x00\x00\nIDATx\x9cc`\x00\x00\x00\x02\x00\x01H\xaf\xa4q\x00\x00\x00\x00IEND\xaeB`\x82")
LEGAL_DOCUMENT = {"name": "协助执行通知书.pdf", "content_base64": base64.b64encode(LEGAL_PDF).decode()}


def credentials_body(name: str = "王某", number: str = "GZ-330102-001") -> dict[str, Any]:
    """What an officer files once before proposing controls (PUT /api/v1/officers/me/credentials)."""
    image = {"content_base64": base64.b64encode(CARD_PNG).decode(), "media_type": "image/png"}
    return {"name": name, "work_card_number": number, "duty_card_number": f"ZW{number}", "work_card_image": image,
            "duty_card_image": image}


# --- which backend each test ran on -------------------------------------------------

_passed_on: Counter = Counter()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A test marked postgres_only is not run on SQLite at all (deselected, not skipped).
    sqlite_only_copies = [i for i in items if i.get_closest_marker("postgres_only")
                          and getattr(i, "callspec", None) and i.callspec.params.get("backend") == "sqlite"]
    if sqlite_only_copies:
        config.hook.pytest_deselected(items=sqlite_only_copies)
        items[:] = [i for i in items if i not in sqlite_only_copies]
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec and "backend" in callspec.params:
            # On the item's reports, which pytest-xdist carries from its workers (where
            # collection ran) to the process that writes the summary.
            item.user_properties.append(("backend", callspec.params["backend"]))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    backend = dict(report.user_properties).get("backend")
    if report.when == "call" and report.passed and backend:
        _passed_on[backend] += 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    ran = ", ".join(f"{name}: {_passed_on[name]} passed" for name in ("sqlite", "postgresql"))
    terminalreporter.write_line(f"database backends exercised: {ran}")


# --- keys and settings ------------------------------------------------------------------


@pytest.fixture(scope="session")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("keys")
    init_keys(load_settings({"gateway": {"instance_dir": str(directory)}}, environ={}))
    return directory / "keys"


def key_settings(keys_dir: Path) -> dict[str, Any]:
    return {
        "auth": {"jwks_file": str(keys_dir / "jwks.json"), "signing_key_file": str(keys_dir / "signing-key.pem")},
        "audit": {"subject_key_file": str(keys_dir / "subject-hash.key"),
                  "checkpoint_key_file": str(keys_dir / "checkpoint-ed25519.pem")},
    }


# --- databases -------------------------------------------------------------------------------


def _postgres_reachable() -> str | None:
    engine = sa.create_engine(PG_SERVER)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    finally:
        engine.dispose()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql":
        problem = _postgres_reachable()
        if problem:
            message = f"PostgreSQL at {PG_SERVER} is not reachable ({problem})"
            if os.environ.get("GATEWAY_TEST_POSTGRES") == "skip":
                pytest.skip(message + "; GATEWAY_TEST_POSTGRES=skip")
            pytest.fail(message + ". Start it, or set GATEWAY_TEST_POSTGRES=skip to run SQLite only.", pytrace=False)
    return request.param


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file; each test gets a copy (faster than migrating per test)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "gateway.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_schema() -> Iterator[str]:
    """A private schema in database ``test``, migrated once, dropped at the end."""
    schema = f"gw_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine(PG_SERVER, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = f"{PG_SERVER}?options=-csearch_path%3D{schema}"
    migrate.upgrade(url)
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def _truncate_postgres(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        tables = [r[0] for r in conn.execute(sa.text(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename <> 'alembic_version'"))]
        # The audit table refuses TRUNCATE by trigger; replica mode is how a test resets it.
        conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
        conn.execute(sa.text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "sqlite":
        path = tmp_path / "gateway.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("postgres_schema")
    _truncate_postgres(url)
    return url


# --- sandboxes, app, HTTP -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def psb_sandbox() -> Iterator[Any]:
    sandboxes = start_sandboxes(["psb"], ports={"psb": 0})
    yield sandboxes["psb"]
    sandboxes.stop()


@pytest.fixture(scope="session")
def agencies() -> Iterator[Any]:
    """Every sandbox of the default registry on free ports: five HTTP servers, one SFTP server."""
    sandboxes = start_sandboxes(ports={name: 0 for name in (*ALL_SANDBOXES, "sftp")})
    yield sandboxes
    sandboxes.stop()


@pytest.fixture
def overrides(database_url: str, keys_dir: Path, tmp_path: Path) -> dict[str, Any]:
    return {
        "testing": True,
        "gateway": {"instance_dir": str(tmp_path / "instance")},
        "database": {"url": database_url},
        "workers": {"backoff_base_seconds": 0.05, "backoff_cap_seconds": 0.2, "poll_interval_seconds": 0.05},
        **key_settings(keys_dir),
    }


@pytest.fixture
def settings(overrides: dict[str, Any]):
    return load_settings(overrides, environ={})


def make_app(overrides: dict[str, Any], endpoints: dict[str, str]):
    """An app whose registry holds the default agencies named in ``endpoints``, pointed there."""
    from gateway.app import create_app

    default = load_registry(CONFIG_DIR / "agencies.toml")
    registry = Registry([a for a in default if a.id in endpoints], default.source).with_endpoints(endpoints)
    return create_app(overrides, registry=registry)


@pytest.fixture
def app(overrides: dict[str, Any], psb_sandbox: Any) -> Iterator[Any]:
    application = make_app(overrides, {"psb": psb_sandbox.url})
    yield application
    worker = application.extensions["worker"]
    if worker.running:
        worker.stop()
    application.extensions["db"].dispose()


def write_registry(path: Path, endpoints: dict[str, str]) -> Path:
    """A copy of config/agencies.toml holding only the agencies in ``endpoints``, pointed
    there, for a gateway run as a separate process (its paths made absolute)."""
    text = (CONFIG_DIR / "agencies.toml").read_text(encoding="utf-8")
    head, *blocks = text.split("[[agency]]")
    kept = []
    for block in blocks:
        agency_id = tomllib.loads("[[agency]]" + block)["agency"][0]["id"]
        if agency_id in endpoints:
            block = re.sub(r'(?m)^endpoint = ".*"$', f'endpoint = "{endpoints[agency_id]}"', block)
            kept.append(block.replace('"demo/', f'"{CONFIG_DIR / "demo"}/'))
    path.write_text(head + "".join("[[agency]]" + b for b in kept), encoding="utf-8")
    return path


def toml_value(value: Any) -> str:
    """A Python value as a TOML value, for the registries and settings tests write
    (NaN and infinities too: the registry must refuse them)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(value)


class Api:
    """A court system's view of the gateway: real HTTP to a live server."""

    def __init__(self, base: str, settings: Any):
        self.base, self.settings = base, settings
        self.http = requests.Session()

    def token(self, role: str = "court_officer", court: str | None = COURT, sub: str = "officer.wang", **kw: Any) -> str:
        return issue_token(self.settings, role=role, sub=sub, court=court, **kw)

    def call(self, method: str, path: str, *, token: str | None = "default", headers: dict | None = None, **kw: Any):
        all_headers = dict(headers or {})
        if token == "default":
            token = self.token()
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        kw.setdefault("timeout", 15)
        return self.http.request(method, self.base + path, headers=all_headers, **kw)

    def post(self, path: str, **kw: Any):
        return self.call("POST", path, **kw)

    def get(self, path: str, **kw: Any):
        return self.call("GET", path, **kw)

    def file_credentials(self, token: str | None = "default", **body: Any) -> Any:
        """File the token's officer's credentials (controls are refused without them)."""
        reply = self.call("PUT", "/api/v1/officers/me/credentials", token=token, json=credentials_body(**body))
        assert reply.status_code in (200, 201), reply.text
        return reply

    def register_case(self, case_number: str = CASE_NUMBER, parties: list | None = None, **kw: Any):
        body = {"case_number": case_number, "court_code": kw.pop("court_code", COURT), "amount_owed": "150000.00",
                "parties": parties or [{"role": "debtor", "subject": DEBTOR}, {"role": "creditor", "subject": CREDITOR}]}
        return self.post("/api/v1/cases", json=body, **kw)

    def inquire(self, subject: dict | None = None, key: str | None = None, case_number: str = CASE_NUMBER, **kw: Any):
        body = {"case_number": case_number, "subject": subject or DEBTOR, "action": "inquiry", **kw.pop("extra", {})}
        return self.post("/api/v1/requests", json=body, headers={"Idempotency-Key": key or f"key-{uuid.uuid4()}"}, **kw)


@pytest.fixture
def live(app: Any) -> Iterator[Any]:
    server = SandboxServer(app).start()
    yield server
    server.stop()


@pytest.fixture
def api(live: Any, settings: Any) -> Api:
    return Api(live.url, settings)


def audit_rows(app: Any) -> list[Any]:
    from audit.models import AuditEvent

    with app.extensions["db"].transaction() as session:  # the pending events first: no waiting on the sequencer
        app.extensions["audit"].integrate_pending(session)
    with app.extensions["db"].reading() as session:
        return list(session.scalars(sa.select(AuditEvent).order_by(AuditEvent.seq)))


@pytest.fixture(scope="session")
def poppler_and_font() -> None:
    """Debian's fonts-wqy-microhei (the PDF report's Chinese font) and poppler-utils (to read
    a PDF the way a reader sees it), installed with apt when missing: a fresh machine has
    neither, and a report PDF without the font is a 503."""
    from gateway.reports.render import FONT_CANDIDATES

    installed = {"poppler-utils": lambda: bool(shutil.which("pdftoppm")),
                 "fonts-wqy-microhei": lambda: any(p.is_file() for p in FONT_CANDIDATES)}

    def present() -> bool:
        return all(check() for check in installed.values())

    missing = [package for package, check in installed.items() if not check()]
    if missing:
        apt_install(missing, present)
    if not present():
        pytest.fail(f"the PDF report tests need Debian's {' and '.join(missing)}: `apt-get install -y {' '.join(missing)}` "
                    "did not provide them (run as root, or install them first)", pytrace=False)
