"""Protocols benchmark: deliveries per second through the delivery worker, per transport,
beside a bare client call to the same sandbox, and a 10,000-request SFTP batch round trip.

    .venv/bin/python bench/protocols.py [--quick] [--database-url URL] [--registry-limits]

One process: the agency sandboxes (zero latency, free ports, on loopback threads), the
gateway's DeliveryWorker and the bare baselines. Per transport (rest -> psb, soap -> bank-a,
sftp -> land) N inquiries addressed to that agency only are accepted first with the
gateway's own intake code (``prepare_request`` + ``write_request``; not timed), then the
worker is started as in production (``start()``: dispatcher thread + pool of
``workers.threads`` threads) and timed from ``start()`` until the last answer is recorded
(encode, send, decode, validate, result, assets and audit event committed). The baseline
sends the same kind of bytes (made by the same codec, fresh message ids) to the same
sandbox with no gateway around it, at the concurrency the worker actually has
(min(pool threads, agency concurrency)):

    rest   requests.Session().post of pre-encoded bodies, one Session per thread
    soap   a bare zeep client (WSDL schemas/wsdl/bank-v1.wsdl) calling service.Inquire(...)
           with pre-built zeep values of the codec's messages, one client per thread
    sftp   paramiko: put one batch file of the same N records (+ control file), poll the
           agency's outbox/ for the result (every 50 ms), get it and split its lines

The last line is ``protocols ratio: X``: the worst transport's gateway deliveries/s divided
by its baseline deliveries/s. Then the 10,000-request round trip: 10,000 inquiries to land
with its batch_size raised to 10,000 (one file), timed from the first claim to the last
answer recorded. Results are kept in bench/RESULTS.md.

By default the agencies' rate_limit_per_second is lifted (1e6) so that the figure is the
gateway's cost, not the registry's configured cap (psb and bank-a: 200/s); concurrency,
timeouts and the workers' settings stay as configured. ``--registry-limits`` keeps the
registry's rate limits.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import paramiko  # noqa: E402
import requests  # noqa: E402
import sqlalchemy as sa  # noqa: E402
import zeep  # noqa: E402
from lxml import etree  # noqa: E402

from adapters import CODECS  # noqa: E402
from adapters.interfaces import BatchRecord, DeliveryOrder, SubjectRef  # noqa: E402
from adapters.transports.batch_files import render_control, render_records, parse_control, parse_records  # noqa: E402
from adapters.transports.soap import ZEEP_SETTINGS, load_wsdl  # noqa: E402
from adapters.transports.sftp import parse_public_key_line  # noqa: E402
from gateway import migrate  # noqa: E402
from gateway.auth.keys import init_keys  # noqa: E402
from gateway.auth.tokens import Principal  # noqa: E402
from gateway.cases.services import register_case  # noqa: E402
from gateway.deliveries import services as delivery_services  # noqa: E402
from gateway.deliveries import progress as delivery_progress  # noqa: E402
from gateway.registry import Registry, load_registry  # noqa: E402
from gateway.requests.services import payload_digest, prepare_request, write_request  # noqa: E402
from gateway.settings import CONFIG_DIR, load_settings  # noqa: E402
from gateway.timeutil import utc_now  # noqa: E402
from schemas.canonical import CaseSchema, RequestSubmissionSchema  # noqa: E402
from schemas.xml import WSDL_DIR  # noqa: E402
from sandboxes.run import start_sandboxes  # noqa: E402

COURT, CASE_NUMBER, OFFICER = "330102", "(2024)浙0102执1234号", "bench.officer"
DEBTOR = {"kind": "person", "name": "张三", "id_number": "330102198703151157"}  # fictitious, valid check digit
PRINCIPAL = Principal(sub=OFFICER, role="court_officer", court=COURT)
TRANSPORT_AGENCY = {"rest": "psb", "soap": "bank-a", "sftp": "land"}
SIZES = {"full": {"rest": 500, "soap": 500, "sftp": 1000, "big": 10_000},
         "quick": {"rest": 150, "soap": 150, "sftp": 300, "big": 1000}}
BIG_TARGET_SECONDS = 30.0


# --- instrumentation: when each delivery is claimed and answered (perf_counter) ----------------

class Clock:
    """Wraps the outbox functions the worker calls through their modules (claim_due,
    record_answer; for batch agencies progress.load_orders, mark_sent and
    record_answers) to note when each delivery was claimed and when its answer was
    recorded (the commit follows in the same ``with``). Costs a dict write per delivery."""

    def __init__(self) -> None:
        self.claimed: dict[str, float] = {}
        self.answered: dict[str, float] = {}
        self.marks: dict[str, float] = {}  # batch agencies: when the orders were loaded and the file recorded sent
        self._claim, self._answer = delivery_services.claim_due, delivery_services.record_answer
        self._load_orders, self._mark_sent = delivery_progress.load_orders, delivery_progress.mark_sent
        self._answers = delivery_progress.record_answers

        def load_orders(*args: Any, **kw: Any) -> Any:
            self.marks.setdefault("load_orders_start", time.perf_counter())
            orders = self._load_orders(*args, **kw)
            self.marks.setdefault("load_orders_end", time.perf_counter())
            return orders

        def mark_sent(*args: Any, **kw: Any) -> int:
            self.marks.setdefault("record_sent_start", time.perf_counter())
            marked = self._mark_sent(*args, **kw)
            self.marks["record_sent_end"] = time.perf_counter()
            return marked

        def claim_due(*args: Any, **kw: Any) -> list[str]:
            ids = self._claim(*args, **kw)
            now = time.perf_counter()
            for i in ids:
                self.claimed.setdefault(i, now)
            return ids

        def record_answer(session: Any, delivery_id: str, *args: Any, **kw: Any) -> bool:
            stored = self._answer(session, delivery_id, *args, **kw)
            self.answered[delivery_id] = time.perf_counter()
            return stored

        def record_answers(session: Any, answers: list, *args: Any, **kw: Any) -> int:
            stored = self._answers(session, answers, *args, **kw)
            now = time.perf_counter()
            for delivery_id, *_ in answers:
                self.answered[delivery_id] = now
            return stored

        delivery_services.claim_due, delivery_services.record_answer = claim_due, record_answer
        delivery_progress.load_orders, delivery_progress.mark_sent = load_orders, mark_sent
        delivery_progress.record_answers = record_answers

    def reset(self) -> None:
        self.claimed.clear()
        self.answered.clear()
        self.marks.clear()

    def restore(self) -> None:
        delivery_services.claim_due, delivery_services.record_answer = self._claim, self._answer
        delivery_progress.load_orders, delivery_progress.mark_sent = self._load_orders, self._mark_sent
        delivery_progress.record_answers = self._answers


# --- the gateway side ------------------------------------------------------------------------------

class Gateway:
    """Settings, keys, a migrated database with the case registered; one app per phase."""

    def __init__(self, work: Path, database_url: str | None, registry_limits: bool):
        self.work, self.registry_limits = work, registry_limits
        self.schema = None
        url = database_url
        if url and url.startswith("postgresql"):
            self.schema = f"bench_protocols_{os.getpid()}_{uuid.uuid4().hex[:6]}"
            self.admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
            with self.admin.connect() as conn:
                conn.execute(sa.text(f'CREATE SCHEMA "{self.schema}"'))
            url = f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{self.schema}"
        self.overrides: dict[str, Any] = {
            "gateway": {"instance_dir": str(work / "instance"), "log_level": "WARNING"},
            "database": {"url": url or ""},
        }
        self.settings = load_settings(self.overrides, environ={})
        init_keys(self.settings)
        migrate.upgrade(self.settings.database_url)
        logging.getLogger("alembic").setLevel(logging.WARNING)
        self.default_registry = load_registry(CONFIG_DIR / "agencies.toml")

    def verify_audit(self) -> Any:
        from audit.store import verify_log
        from gateway.db import Database

        db = Database(self.settings.database_url)
        try:
            with db.reading() as session:
                return verify_log(session)
        finally:
            db.dispose()

    def drop(self) -> None:
        if self.schema:
            with self.admin.connect() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{self.schema}" CASCADE'))
            self.admin.dispose()

    def app_for(self, agency_id: str, endpoint: str, **changes: Any):
        from gateway.app import create_app

        agency = dataclasses.replace(self.default_registry.get(agency_id), endpoint=endpoint, **changes)
        if not self.registry_limits:
            agency = dataclasses.replace(agency, rate_limit_per_second=1e6)
        registry = Registry([agency], self.default_registry.source)
        return create_app(self.overrides, registry=registry), agency

    def register_case(self, app: Any) -> None:
        db, audit = app.extensions["db"], app.extensions["audit"]
        payload = CaseSchema().load({"case_number": CASE_NUMBER, "court_code": COURT, "amount_owed": "150000.00",
                                     "parties": [{"role": "debtor", "subject": DEBTOR}]})
        with db.transaction() as session:
            register_case(session, payload, PRINCIPAL, audit, courts=app.extensions["court_codes"])

    def accept(self, app: Any, n: int, tag: str, chunk: int = 500) -> None:
        """N inquiries through the gateway's intake code, 500 to a transaction (not timed)."""
        db, audit, registry = app.extensions["db"], app.extensions["audit"], app.extensions["registry"]
        raw = {"case_number": CASE_NUMBER, "action": "inquiry", "subject": DEBTOR}
        payload, digest = RequestSubmissionSchema().load(raw), payload_digest(raw)
        for start in range(0, n, chunk):
            with db.connection_transaction() as conn:
                for i in range(start, min(n, start + chunk)):
                    prepared = prepare_request(conn, payload, principal=PRINCIPAL, idempotency_key=f"{tag}-{i:06d}",
                                               digest=digest, registry=registry, now=utc_now())
                    write_request(conn, prepared, principal=PRINCIPAL, audit=audit)

    def counts(self, app: Any, agency_id: str) -> dict[str, int]:
        q = {
            "answered": "SELECT count(*) FROM deliveries WHERE agency_id = :a AND state = 'answered'",
            "unsettled": "SELECT count(*) FROM deliveries WHERE agency_id = :a AND state IN ('queued','sending','awaiting')",
            "other": "SELECT count(*) FROM deliveries WHERE agency_id = :a AND state NOT IN ('answered','queued','sending','awaiting')",
            "results": "SELECT count(*) FROM delivery_results r JOIN deliveries d ON d.id = r.delivery_id WHERE d.agency_id = :a",
            "unknown_results": "SELECT count(*) FROM audit_events WHERE action = 'batch.result' AND outcome = 'unknown_message'",
            "audit_answered": "SELECT count(*) FROM audit_events WHERE action = 'delivery.result' AND outcome = 'answered' AND delivery_id IN (SELECT id FROM deliveries WHERE agency_id = :a)",
            "assets": "SELECT count(*) FROM assets WHERE agency_id = :a",
        }
        with app.extensions["db"].engine.connect() as conn:
            return {k: conn.execute(sa.text(sql), {"a": agency_id}).scalar_one() for k, sql in q.items()}


def run_worker(app: Any, agency_id: str, n: int, clock: Clock, timeout: float) -> dict[str, Any]:
    """Start the worker (production thread pool), wait until every delivery is answered."""
    clock.reset()
    worker = app.extensions["worker"]
    cpu = time.process_time()
    started = time.perf_counter()
    worker.start()
    give_up, last_count, last_progress = started + timeout, 0, started
    while len(clock.answered) < n and time.perf_counter() < give_up:
        time.sleep(0.01)
        if len(clock.answered) != last_count:
            last_count, last_progress = len(clock.answered), time.perf_counter()
        elif last_count and time.perf_counter() - last_progress > 30:
            break  # answers stopped coming: some were lost (reported as a problem), do not wait for the timeout
    finished = max(clock.answered.values()) if clock.answered else time.perf_counter()
    cpu = time.process_time() - cpu
    worker.stop()
    latencies = [clock.answered[i] - clock.claimed[i] for i in clock.answered if i in clock.claimed]
    first_claim = min(clock.claimed.values()) if clock.claimed else started
    return {"n": len(clock.answered), "seconds": finished - started, "from_first_claim": finished - first_claim,
            "latencies": latencies, "cpu": cpu, "marks": dict(clock.marks),
            "claimed": list(clock.claimed.values()), "answered_at": list(clock.answered.values())}


# --- orders and codec bytes for the baselines ----------------------------------------------------

def order_for(agency: Any) -> DeliveryOrder:
    return DeliveryOrder(
        message_id=str(uuid.uuid4()), action="inquiry", categories=agency.action_categories["inquiry"],
        subject=SubjectRef(**DEBTOR), case_number=CASE_NUMBER, court_code=COURT, officer=OFFICER,
    )


def encoded(agency: Any, n: int) -> list[Any]:
    codec = CODECS[agency.kind]()
    return [codec.encode(order_for(agency)) for _ in range(n)]


def fan_out(n: int, concurrency: int, make_client: Callable[[], Any], call: Callable[[Any, int], None]) -> dict[str, Any]:
    """n calls over `concurrency` threads, each with its own client made inside the timed run."""
    local = threading.local()
    latencies: list[float] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = make_client()
        t = time.perf_counter()
        call(client, i)
        elapsed = time.perf_counter() - t
        with lock:
            latencies.append(elapsed)

    cpu = time.process_time()
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(one, i) for i in range(n)]:
            future.result()  # re-raises a failed call: the run is invalid
    return {"n": n, "seconds": time.perf_counter() - started, "latencies": latencies,
            "cpu": time.process_time() - cpu}


def baseline_rest(agency: Any, n: int, concurrency: int) -> dict[str, Any]:
    envelopes = encoded(agency, n)

    def make() -> requests.Session:
        session = requests.Session()
        session.trust_env = False
        return session

    def call(session: requests.Session, i: int) -> None:
        e = envelopes[i]
        reply = session.post(f"{agency.endpoint.rstrip('/')}/{e.operation}", data=e.body, timeout=(3, 10),
                             headers={"Content-Type": e.media_type, "X-Message-Id": e.message_id})
        reply.content
        if reply.status_code != 200:
            raise RuntimeError(f"rest baseline: HTTP {reply.status_code}: {reply.text[:200]}")

    return fan_out(n, concurrency, make, call)


def baseline_soap(agency: Any, n: int, concurrency: int) -> dict[str, Any]:
    envelopes = encoded(agency, n)
    document = load_wsdl(WSDL_DIR / f"{agency.options['wsdl']}.wsdl")  # parsed once, as the gateway does
    # The codec's messages as zeep values (built before the timed run): zeep serialises them again.
    parse_client = zeep.Client(document, settings=ZEEP_SETTINGS)
    values = []
    for e in envelopes:
        element = etree.fromstring(e.body)
        xsd_element = parse_client.get_element(element.tag)
        values.append(xsd_element.parse(element, parse_client.wsdl.types))
    binding = next(iter(document.bindings))

    def make() -> Any:
        session = requests.Session()
        session.trust_env = False
        transport = zeep.transports.Transport(session=session, timeout=10, operation_timeout=10)
        client = zeep.Client(document, transport=transport, settings=ZEEP_SETTINGS)
        return client.create_service(binding, agency.endpoint)

    def call(service: Any, i: int) -> None:
        value = values[i]
        answer = service.Inquire(**{k: value[k] for k in value})
        if answer is None:
            raise RuntimeError("soap baseline: empty answer")

    return fan_out(n, concurrency, make, call)


def sftp_connect(agency: Any) -> tuple[paramiko.SSHClient, paramiko.SFTPClient, str]:
    from urllib.parse import urlsplit

    parts = urlsplit(agency.endpoint)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    host_key = parse_public_key_line(agency.options["host_key"])
    client.get_host_keys().add(f"[{parts.hostname}]:{parts.port}", host_key.get_name(), host_key)
    client.connect(parts.hostname, port=parts.port, username=parts.username, sock=sock, look_for_keys=False,
                   allow_agent=False, pkey=paramiko.PKey.from_path(CONFIG_DIR / agency.options["client_key"]))
    return client, client.open_sftp(), parts.path


def baseline_sftp(agency: Any, n: int) -> dict[str, Any]:
    """One batch file of n records: connect, put (.part + rename, control file last), poll
    outbox/ for the result, get it and check it. Timed from connect to the records in hand."""
    envelopes = encoded(agency, n)
    data = render_records([BatchRecord(e.message_id, e.body) for e in envelopes])
    control = render_control(data, n)
    name = f"{envelopes[0].operation}_bench_{uuid.uuid4().hex[:12]}.req"
    cpu = time.process_time()
    started = time.perf_counter()
    client, sftp, base = sftp_connect(agency)
    try:
        if "done" not in sftp.listdir(base):
            sftp.mkdir(f"{base}/done")  # as the gateway's transport makes it on connect
        for file_name, body in ((name, data), (name + ".chk", control)):
            with sftp.open(f"{base}/inbox/{file_name}.part", "wb") as remote:
                remote.set_pipelined(True)
                remote.write(body)
            sftp.posix_rename(f"{base}/inbox/{file_name}.part", f"{base}/inbox/{file_name}")
        sent = time.perf_counter()
        result = name[: -len(".req")] + ".res"
        give_up = sent + 300
        while result + ".chk" not in sftp.listdir(f"{base}/outbox"):
            if time.perf_counter() > give_up:
                raise RuntimeError("sftp baseline: no result file within 300 s")
            time.sleep(0.05)
        with sftp.open(f"{base}/outbox/{result}.chk", "rb") as remote:
            checked = parse_control(remote.read())
        with sftp.open(f"{base}/outbox/{result}", "rb") as remote:
            remote.prefetch()
            records = parse_records(remote.read(), checked)
        finished = time.perf_counter()
        cpu = time.process_time() - cpu
        for file_name in (result, result + ".chk"):  # out of the gateway's way
            sftp.posix_rename(f"{base}/outbox/{file_name}", f"{base}/done/{file_name}")
    finally:
        client.close()
    if len(records) != n:
        raise RuntimeError(f"sftp baseline: {len(records)} results for {n} requests")
    return {"n": n, "seconds": finished - started, "latencies": [finished - started] * n,
            "upload": sent - started, "cpu": cpu}


# --- the run -------------------------------------------------------------------------------------------

def batch_phases(gw: dict[str, Any]) -> str:
    """Where a batch delivery's time went, from the marks the Clock took."""
    m, first_claim = gw["marks"], min(gw["claimed"]) if gw.get("claimed") else None
    if not {"load_orders_start", "load_orders_end", "record_sent_start", "record_sent_end"} <= set(m) or first_claim is None:
        return "(no batch marks)"
    first_answer, last_answer = min(gw["answered_at"]), max(gw["answered_at"])
    return (f"claim to orders loaded {m['load_orders_end'] - first_claim:.2f} s (load_orders {m['load_orders_end'] - m['load_orders_start']:.2f} s); "
            f"encode + upload {m['record_sent_start'] - m['load_orders_end']:.2f} s; record_sent {m['record_sent_end'] - m['record_sent_start']:.2f} s; "
            f"agency + result pick-up {first_answer - m['record_sent_end']:.2f} s; applying results {last_answer - first_answer:.2f} s")


def median_ms(latencies: list[float]) -> float:
    return 1000 * statistics.median(latencies) if latencies else float("nan")


def phase(gateway: Gateway, clock: Clock, transport: str, endpoint: str, n: int, problems: list[str],
          **changes: Any) -> dict[str, Any]:
    agency_id = TRANSPORT_AGENCY[transport]
    app, agency = gateway.app_for(agency_id, endpoint, **changes)
    try:
        before = gateway.counts(app, agency_id)
        tag = f"{transport}-{n}-{uuid.uuid4().hex[:8]}"
        t = time.perf_counter()
        gateway.accept(app, n, tag)
        intake_seconds = time.perf_counter() - t
        # Housekeeping between phases: the previous phase's stopped worker still holds the
        # result-collection lease for up to 30 s (DeliveryWorker.stop does not release it),
        # which would make this phase's new worker wait to collect.
        with app.extensions["db"].transaction() as session:
            session.execute(sa.text("DELETE FROM channel_leases"))
        gw = run_worker(app, agency_id, n, clock, timeout=max(120.0, n / 15))
        after = gateway.counts(app, agency_id)
    finally:
        app.extensions["db"].dispose()
    delta = {k: after[k] - before[k] for k in after}
    if gw["n"] != n or delta["answered"] != n or delta["results"] != n or delta["audit_answered"] != n \
            or after["unsettled"] or delta["other"]:
        problems.append(f"{transport}: {n} accepted, {gw['n']} answers recorded; rows: {delta}, unsettled {after['unsettled']}"
                        + (f"; {delta['unknown_results']} result lines recorded as 'unknown_message' (their results were"
                           " read before the batch's record_sent committed)" if delta["unknown_results"] else ""))
    gw.update(intake_seconds=intake_seconds, rows=delta, agency=agency)
    return gw


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller N (about 20 s in all)")
    parser.add_argument("--database-url", help="e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test "
                        "(a private schema is made and dropped); default SQLite in a temp instance dir")
    parser.add_argument("--registry-limits", action="store_true",
                        help="keep the registry's rate_limit_per_second (default: lifted to 1e6)")
    parser.add_argument("--only", choices=("rest", "soap", "sftp", "big"), action="append",
                        help="run only these phases (no ratio line unless rest, soap and sftp all ran)")
    parser.add_argument("--big", type=int, help="requests in the batch round trip (default 10,000; --quick 1,000)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sizes = dict(SIZES["quick" if args.quick else "full"])
    if args.big:
        sizes["big"] = args.big
    phases = args.only or ["rest", "soap", "sftp", "big"]
    logging.basicConfig(level=logging.WARNING)
    problems: list[str] = []
    rows: dict[str, dict[str, Any]] = {}
    big: dict[str, Any] | None = None
    report = None

    load_before = os.getloadavg()
    sandboxes = start_sandboxes(["psb", "bank-a", "land"], ports={"psb": 0, "bank-a": 0, "sftp": 0})
    clock = Clock()
    with tempfile.TemporaryDirectory(prefix="bench-protocols-") as tmp:
        gateway = Gateway(Path(tmp), args.database_url, args.registry_limits)
        try:
            app, _ = gateway.app_for("psb", sandboxes["psb"].url)
            gateway.register_case(app)
            app.extensions["db"].dispose()
            threads = gateway.settings.workers.threads
            for transport in ("rest", "soap", "sftp"):
                if transport not in phases:
                    continue
                agency_id, n = TRANSPORT_AGENCY[transport], sizes[transport]
                endpoint = sandboxes[agency_id].url
                agency = dataclasses.replace(gateway.default_registry.get(agency_id), endpoint=endpoint)
                concurrency = min(threads, agency.concurrency)
                # Baseline first, then the gateway: the sandbox's registers and memory grow the same for both.
                if transport == "rest":
                    bl = baseline_rest(agency, n, concurrency)
                elif transport == "soap":
                    bl = baseline_soap(agency, n, concurrency)
                else:
                    bl = baseline_sftp(agency, n)
                gw = phase(gateway, clock, transport, endpoint, n, problems,
                           **({"batch_size": n} if transport == "sftp" else {}))
                rows[transport] = {"gw": gw, "bl": bl, "concurrency": concurrency if transport != "sftp" else 1}
                print(f"  {transport}: done ({agency_id}, n={n})", file=sys.stderr, flush=True)
            if "big" in phases:
                n = sizes["big"]
                big = phase(gateway, clock, "sftp", sandboxes["land"].url, n, problems, batch_size=n)
            report = gateway.verify_audit()
            if not report.ok:
                problems.append(f"audit chain does not verify: {report.problem} (seq {report.first_bad_seq})")
        finally:
            clock.restore()
            sandboxes.stop()
            gateway.drop()

    db_kind = "postgresql" if args.database_url and args.database_url.startswith("postgresql") else "sqlite"
    limits = "registry rate limits" if args.registry_limits else "rate limits lifted"
    print(f"machine: {os.cpu_count()} cpus, python {sys.version.split()[0]}; database {db_kind}; worker "
          f"{gateway.settings.workers.threads} threads, poll {gateway.settings.workers.poll_interval_seconds:g} s, "
          f"claim batch {gateway.settings.workers.batch_size}; {limits}; sandboxes in-process, zero latency; "
          f"load average {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after")
    if report is not None:
        print(f"audit chain: {report.events_checked} events, {'verified' if report.ok else 'DOES NOT VERIFY'}; "
              f"every phase: rows answered = results = 'delivery.result answered' audit events = requests accepted")
    print(f"{'transport':<9} {'agency':<7} {'N':>6} {'conc':>4} | {'gateway/s':>9} {'p50 ms':>8} {'secs':>6} {'cpu ms':>6} | "
          f"{'baseline/s':>10} {'p50 ms':>8} {'secs':>6} {'cpu ms':>6} | {'ratio':>5}")
    ratios = {}
    for transport, r in rows.items():
        gw, bl = r["gw"], r["bl"]
        gw_rate, bl_rate = gw["n"] / gw["seconds"], bl["n"] / bl["seconds"]
        ratios[transport] = gw_rate / bl_rate
        print(f"{transport:<9} {TRANSPORT_AGENCY[transport]:<7} {gw['n']:>6} {r['concurrency']:>4} | {gw_rate:>9.1f} "
              f"{median_ms(gw['latencies']):>8.1f} {gw['seconds']:>6.2f} {1000 * gw['cpu'] / gw['n']:>6.2f} | {bl_rate:>10.1f} "
              f"{median_ms(bl['latencies']):>8.1f} {bl['seconds']:>6.2f} {1000 * bl['cpu'] / bl['n']:>6.2f} | {ratios[transport]:>5.2f}")
    print("  (cpu ms = CPU of the whole process per delivery during the timed run, the in-process sandbox's included;"
          " p50 = claim to answer recorded for the gateway, one call for the baseline)")
    if rows.get("sftp"):
        print(f"  sftp gateway: {batch_phases(rows['sftp']['gw'])}")
        print(f"  sftp baseline: p50 = the whole file round trip; upload {rows['sftp']['bl']['upload']:.2f} s")
    if big is not None:
        verdict = "under" if big["from_first_claim"] < BIG_TARGET_SECONDS else "NOT under"
        verdict = (f"{verdict} the {BIG_TARGET_SECONDS:g} s target" if sizes["big"] == 10_000
                   else f"not judged: the {BIG_TARGET_SECONDS:g} s target is for 10,000")
        print(f"sftp batch round trip: {big['n']} requests in one file to land, first claim to last answer recorded "
              f"{big['from_first_claim']:.2f} s ({verdict}); "
              f"{big['n'] / big['from_first_claim']:.0f} deliveries/s; intake beforehand {big['intake_seconds']:.1f} s")
        print(f"  {batch_phases(big)}")
    if problems:
        for problem in problems:
            print(f"BENCHMARK INVALID: {problem}", file=sys.stderr)
        return 1
    if len(ratios) == 3:
        worst = min(ratios, key=ratios.get)
        print(f"worst: {worst}; targets: each ratio >= 0.5 ({'met' if ratios[worst] >= 0.5 else 'NOT met'})")
        print(f"protocols ratio: {ratios[worst]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
