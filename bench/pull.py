"""Pull benchmark: requests fetched and answered per second by one polling client
(zeep) through the gateway's SOAP pull service, beside the same client polling a
server that returns fixed replies, in the same run.

    .venv/bin/python bench/pull.py [--requests 600] [--batch 100] [--database-url URL] [--no-gc-freeze]

1. **Gateway.** ``--requests`` one-click inquiries to the polling bank bank-c only,
   written through the gateway's own intake code and stored for pull by its
   delivery worker (not timed), in SQLite (default) or a private PostgreSQL schema.
   The gateway is served over TLS on loopback (a certificate made at run time,
   werkzeug threaded server, in this process). One ``sandboxes.polling_bank``
   client (zeep from the served ``?wsdl``, UsernameToken, TLS verified) makes one
   untimed call first (``log_in``: the gateway's one scrypt per process), then polls
   in a loop, timed until every request is answered: list a batch (``getXzcxList``),
   answer each request with the sandbox bank's ledger, feed the batch back
   (``shfeedXzcxInfo``), and list controls (``getXzkzList``, empty).
   Checked after: every delivery answered in the database, no failed round, no
   refused row, the audit chain verifies.
2. **Baseline.** The same WSDL served by ``sandboxes.soap_service`` over TLS with
   fixed replies built before the run: each ``getXzcxList`` lists the next batch of
   the gateway's own stored requests (each once), ``shfeedXzcxInfo`` fixed acks,
   ``getXzkzList`` empty. The same client (a ``PollingBank`` with a fresh bank, the
   same settings, the same untimed first call) polls it, so both clients do the
   same work per row (zeep, TLS, the bank's answers); only the server differs.
3. **Old baseline** (the definition until 2026-12-07, printed for comparison): a
   bare zeep list + feed loop, the same 100 rows (one request's bytes) on every
   list and one fixed answer fed for each: no bank answers, no control listing,
   and the gateway's first log-in inside its timed window.

Client and server CPU are printed apart: the client runs in the main thread
(``time.thread_time``), the server in the werkzeug threads (process CPU minus the
client's). Before the runs, what is alive (imports, the app, the setup's survivors)
is frozen out of the collector (``gc.freeze``, as ``gateway serve`` does in each
worker once its app is built); ``--no-gc-freeze`` leaves it in.

Last line: ``pull ratio: X`` = gateway requests answered per second / baseline rows
per second. Exits 1 without it if a check fails.
"""

from __future__ import annotations

import argparse
import base64
import gc
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
import zeep  # noqa: E402
from lxml import etree  # noqa: E402

from audit.store import verify_log  # noqa: E402
from gateway import migrate  # noqa: E402
from gateway.auth.keys import init_keys  # noqa: E402
from gateway.registry import Registry, load_registry  # noqa: E402
from gateway.settings import CONFIG_DIR, load_settings  # noqa: E402
from gateway.tls import self_signed_certificate, server_ssl_context  # noqa: E402
from sandboxes.bank import BankAgency  # noqa: E402
from sandboxes.polling_bank import DEMO_PASSWORD, DEMO_USERNAME, ZEEP_SETTINGS, PollingBank  # noqa: E402
from sandboxes.run import PULL_SERVICE_PATH  # noqa: E402
from sandboxes.server import SandboxServer  # noqa: E402
from sandboxes.soap_service import create_soap_app  # noqa: E402
from schemas import xml  # noqa: E402
from support import drop_schemas, gateway_overrides, private_schema, register_case, submit_inquiries  # noqa: E402  (bench/ is on the path: scripts run by file)

PULL = "urn:enforcement-gateway:pull:v1"
def prepare_gateway(work: Path, database_url: str, n: int):
    """The gateway app with bank-c only and ``n`` inquiries stored for it to fetch (not timed)."""
    from gateway.app import create_app
    from gateway.deliveries.models import Delivery

    settings = load_settings(gateway_overrides(work, database_url), environ={})
    init_keys(settings)
    migrate.upgrade(database_url)
    default = load_registry(CONFIG_DIR / "agencies.toml")
    app = create_app(gateway_overrides(work, database_url), registry=Registry([default.get("bank-c")], default.source))
    db = app.extensions["db"]
    register_case(app)
    submit_inquiries(app, n)
    worker, give_up = app.extensions["worker"], time.monotonic() + 300
    while time.monotonic() < give_up:  # each pass stores one claim batch for pull (nothing is sent)
        worker.dispatch_once()
        with db.reading() as session:
            awaiting = session.scalar(sa.select(sa.func.count()).select_from(Delivery)
                                      .where(Delivery.state == "awaiting"))
        if awaiting == n:
            break
    if awaiting != n:
        raise SystemExit(f"{awaiting} of {n} deliveries stored for pull")
    return app


def poll_until(poller: PollingBank, n: int) -> tuple[float, float, float, float]:
    """One untimed call first (the first log-in: the gateway's one scrypt per process), then
    ``poll_once`` until ``n`` answers are acknowledged. (first call s, elapsed s, process CPU s,
    this thread's CPU s: the client's share, the server runs in other threads of this process)."""
    started = time.perf_counter()
    poller.log_in()
    first = time.perf_counter() - started
    cpu0, client0, started = time.process_time(), time.thread_time(), time.perf_counter()
    while poller.counters.answered < n and poller.counters.errors == 0:
        poller.poll_once()
    elapsed, cpu, client = time.perf_counter() - started, time.process_time() - cpu0, time.thread_time() - client0
    poller.stop()
    counters = poller.counters
    if counters.errors or counters.acks_refused or counters.answered != n:
        raise SystemExit(f"the polling client did not get every request answered: {counters}")
    return first, elapsed, cpu, client


def gateway_run(app, certificate, n: int, batch: int) -> tuple[tuple[float, float, float, float], dict]:
    from gateway.deliveries.models import Delivery

    server = SandboxServer(app, ssl_context=server_ssl_context(certificate)).start()
    try:
        poller = PollingBank(server.url + PULL_SERVICE_PATH + "?wsdl", verify=str(certificate.certfile),
                             bank=BankAgency("Bank C", 18), interval_seconds=0.01, timeout_seconds=120,
                             batch_size=batch)
        timing = poll_until(poller, n)
    finally:
        server.stop()
    with app.extensions["db"].transaction() as session:
        app.extensions["audit"].integrate_pending(session)  # no worker runs here, so no sequencer: the events wait
    with app.extensions["db"].reading() as session:
        answered = session.scalar(sa.select(sa.func.count()).select_from(Delivery).where(Delivery.state == "answered"))
        report = verify_log(session)
    if answered != n:
        raise SystemExit(f"{answered} of {n} deliveries answered in the database")
    if not report.ok:
        raise SystemExit(f"audit chain broken at {report.first_bad_seq}: {report.problem}")
    return timing, {"rounds": poller.counters.rounds, "events": report.events_checked}


def _element(tag, parent=None, text=None):
    node = etree.Element(f"{{{PULL}}}{tag}", nsmap={None: PULL}) if parent is None else \
        etree.SubElement(parent, f"{{{PULL}}}{tag}")
    if text is not None:
        node.text = text
    return node


def _reply(name: str, fill) -> bytes:
    root = _element(name)
    head = _element("Head", root)
    for tag, value in (("CREATETIME", "2026-11-24T10:00:00Z"), ("RESPONSECODE", "0000"), ("RESPONSEINFO", "ok")):
        _element(tag, head, value)
    fill(_element("Data", root))
    xml.validate(root, "pull-v1")
    return xml.serialize(root)


def _listing(rows):
    def fill(data):
        for key, body in rows:
            row = _element("QQ", data)
            for tag, value in (("BDHM", key), ("XZ", "1"), ("CZLX", "inquiry"), ("CJSJ", "2026-11-24T10:00:00Z"),
                               ("JZSJ", "2026-11-25T10:00:00Z"), ("WSSL", "0"),
                               ("SHA256", xml.digest(xml.parse(body))), ("QQNR", base64.b64encode(body).decode())):
                _element(tag, row, value)
    return _reply("getXzcxListResponse", fill)


def _acks(rows):
    def fill(data):
        for key, _body in rows:
            row = _element("HZ", data)
            for tag, value in (("BDHM", key), ("CLJG", "1"), ("CLXX", "recorded")):
                _element(tag, row, value)
    return _reply("shfeedXzcxInfoResponse", fill)


def fixed_handler(batches: list[list[tuple[str, bytes]]]):
    """Replies built before the run: each ``getXzcxList`` returns the next batch's listing
    (round robin), each ``shfeedXzcxInfo`` the acks of the batch last listed, ``getXzkzList``
    an empty listing. One client calls it at a time."""
    listings, acks = [_listing(rows) for rows in batches], [_acks(rows) for rows in batches]
    empty = _reply("getXzkzListResponse", lambda data: None)
    served = [-1]

    def handle(payload: bytes) -> bytes:
        operation = etree.QName(xml.parse(payload)).localname
        if operation == "getXzcxList":
            served[0] += 1
            return listings[served[0] % len(listings)]
        return acks[served[0] % len(acks)] if operation == "shfeedXzcxInfo" else empty

    return handle


def _fixed_server(certificate, batches):
    app = create_soap_app(wsdl_path=xml.WSDL_DIR / "pull-v1.wsdl", prefix=PULL_SERVICE_PATH,
                          handle=fixed_handler(batches), credentials=(DEMO_USERNAME, DEMO_PASSWORD))
    return SandboxServer(app, ssl_context=server_ssl_context(certificate)).start()


def baseline_run(certificate, n: int, batch: int, requests_stored: list[tuple[str, bytes]]):
    """The same polling client (``PollingBank``, a fresh bank, the same settings) against a
    fixed-reply server listing the gateway's own stored requests, each once (``n`` distinct
    rows, so the bank makes every answer as it does in the gateway run)."""
    batches = [requests_stored[i:i + batch] for i in range(0, n, batch)]
    server = _fixed_server(certificate, batches)
    try:
        poller = PollingBank(server.url + PULL_SERVICE_PATH + "?wsdl", verify=str(certificate.certfile),
                             bank=BankAgency("Bank C", 18), interval_seconds=0.01, timeout_seconds=120,
                             batch_size=batch)
        return poll_until(poller, n)
    finally:
        server.stop()


def bare_loop_run(certificate, n: int, batch: int, request_body: bytes, answer_body: bytes):
    """The old baseline (until 2026-12-07): a bare zeep list + feed loop, the same ``batch``
    rows (one request's bytes) on every list and one fixed answer fed for each: no bank
    answers, no control listing. (elapsed s, process CPU s, client thread CPU s)."""
    server = _fixed_server(certificate, [[(f"bench-{i:04d}", request_body) for i in range(batch)]])
    try:
        import requests
        from zeep.transports import Transport
        from zeep.wsse.username import UsernameToken

        session = requests.Session()
        session.trust_env, session.verify = False, str(certificate.certfile)
        client = zeep.Client(server.url + PULL_SERVICE_PATH + "?wsdl", wsse=UsernameToken(DEMO_USERNAME, DEMO_PASSWORD),
                             transport=Transport(session=session, timeout=60, operation_timeout=60),
                             settings=ZEEP_SETTINGS)
        done, cpu0, client0, started = 0, time.process_time(), time.thread_time(), time.perf_counter()
        while done < n:
            rows = client.service.getXzcxList(MAX=batch).Data.QQ
            acks = client.service.shfeedXzcxInfo(Data={"FK": [{"BDHM": r.BDHM, "FKNR": answer_body} for r in rows]})
            done += sum(1 for a in acks.Data.HZ if a.CLJG == "1")
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu0
        client_cpu = time.thread_time() - client0
        session.close()
    finally:
        server.stop()
    return elapsed, cpu, client_cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=600, help="pull requests answered per side (default 600)")
    parser.add_argument("--batch", type=int, default=100, help="rows per list call (MAX, default 100)")
    parser.add_argument("--database-url", default=None,
                        help="a PostgreSQL server (a private schema is made and dropped); default SQLite")
    parser.add_argument("--no-gc-freeze", action="store_true",
                        help="leave the objects made before the runs to the collector's full passes (see bench/README.md)")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from gateway.deliveries.models import Delivery

    with tempfile.TemporaryDirectory(prefix="bench-pull-") as tmp:
        work = Path(tmp)
        database_url = private_schema(args.database_url, f"bench_pull_{os.getpid()}") if args.database_url \
            else f"sqlite:///{work / 'pull.db'}"
        try:
            certificate = self_signed_certificate(work / "tls")
            started = time.perf_counter()
            app = prepare_gateway(work, database_url, args.requests)
            print(f"prepared {args.requests} pull deliveries in {time.perf_counter() - started:.1f} s "
                  f"({'PostgreSQL' if args.database_url else 'SQLite'})")
            with app.extensions["db"].reading() as session:
                stored = [(r.id, r.request_body) for r in session.execute(
                    sa.select(Delivery.id, Delivery.request_body).order_by(Delivery.created_at, Delivery.id))]
            answer_body = BankAgency("Bank C", 18).handle(stored[0][1])
            if not args.no_gc_freeze:  # what is alive now (imports, the app, the bench's own setup) is never collected
                gc.collect()
                gc.freeze()

            gateway, extra = gateway_run(app, certificate, args.requests, args.batch)
            app.extensions["db"].dispose()
            baseline = baseline_run(certificate, args.requests, args.batch, stored)
            bare = bare_loop_run(certificate, args.requests, args.batch, stored[0][1], answer_body)
        finally:
            drop_schemas()
    report(args.requests, args.batch, gateway, baseline, bare, extra)
    return 0


def _cpu(what: str, cpu: float, client: float, n: int) -> str:
    return (f"process CPU {1000 * cpu / n:.2f} ms per {what}: client {1000 * client / n:.2f}, "
            f"server {1000 * (cpu - client) / n:.2f}")


def report(n: int, batch: int, gateway, baseline, bare, extra) -> None:
    (g_first, g_elapsed, g_cpu, g_client), (b_first, b_elapsed, b_cpu, b_client) = gateway, baseline
    gateway_rate, baseline_rate = n / g_elapsed, n / b_elapsed
    print(f"gateway : {n} requests listed, answered by the bank and fed back in {g_elapsed:.2f} s = "
          f"{gateway_rate:.1f}/s ({extra['rounds']} rounds of up to {batch}; {_cpu('request', g_cpu, g_client, n)}); "
          f"first call (log-in) {1000 * g_first:.0f} ms before; audit chain verified ({extra['events']} events)")
    print(f"baseline: the same polling client and bank against a fixed-reply server listing the same {n} stored "
          f"requests in {b_elapsed:.2f} s = {baseline_rate:.1f}/s ({_cpu('row', b_cpu, b_client, n)}); "
          f"first call {1000 * b_first:.0f} ms before")
    bare_elapsed, bare_cpu, bare_client = bare
    old_rate = n / (g_first + g_elapsed)
    print(f"old definition: bare zeep list+feed loop (no bank answers, no control listing) {bare_elapsed:.2f} s = "
          f"{n / bare_elapsed:.1f}/s ({_cpu('row', bare_cpu, bare_client, n)}); gateway with its first log-in timed "
          f"{old_rate:.1f}/s; old pull ratio {old_rate * bare_elapsed / n:.2f}")
    print(f"pull ratio: {gateway_rate / baseline_rate:.2f}")


if __name__ == "__main__":
    sys.exit(main())
