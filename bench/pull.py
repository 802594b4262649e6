"""Pull benchmark: requests fetched and answered per second by one polling client
(zeep) through the gateway's SOAP pull service, beside a bare zeep call loop to a
server that returns a fixed reply, in the same run.

    .venv/bin/python bench/pull.py [--requests 600] [--batch 100] [--database-url URL]

1. **Gateway.** ``--requests`` one-click inquiries to the polling bank bank-c only,
   written through the gateway's own intake code and stored for pull by its
   delivery worker (not timed), in SQLite (default) or a private PostgreSQL schema.
   The gateway is served over TLS on loopback (a certificate made at run time,
   werkzeug threaded server, in this process). One ``sandboxes.polling_bank``
   client (zeep from the served ``?wsdl``, UsernameToken, TLS verified) polls in a
   loop, timed from its first round until every request is answered: list a batch
   (``getXzcxList``), answer each request with the sandbox bank's ledger, feed the
   batch back (``shfeedXzcxInfo``), and list controls (``getXzkzList``, empty).
   Checked after: every delivery answered in the database, no failed round, no
   refused row, the audit chain verifies.
2. **Baseline.** The same WSDL served by ``sandboxes.soap_service`` over TLS with a
   fixed handler: ``getXzcxList`` returns the same batch of rows every time (each
   carrying a real stored request's bytes), ``shfeedXzcxInfo`` fixed acks. A bare
   zeep client (same settings, same UsernameToken, same TLS) calls list + feed in
   a loop with a fixed answer, no bank, no database: rows per second.

Last line: ``pull ratio: X`` = gateway requests answered per second / baseline rows
per second. Exits 1 without it if a check fails.
"""

from __future__ import annotations

import argparse
import base64
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


def gateway_run(app, certificate, n: int, batch: int) -> tuple[float, float, dict]:
    from gateway.deliveries.models import Delivery

    server = SandboxServer(app, ssl_context=server_ssl_context(certificate)).start()
    try:
        poller = PollingBank(server.url + PULL_SERVICE_PATH + "?wsdl", verify=str(certificate.certfile),
                             bank=BankAgency("Bank C", 18), interval_seconds=0.01, timeout_seconds=120,
                             batch_size=batch)
        cpu0, started = time.process_time(), time.perf_counter()
        while poller.counters.answered < n and poller.counters.errors == 0:
            poller.poll_once()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu0
        poller.stop()
    finally:
        server.stop()
    counters = poller.counters
    if counters.errors or counters.acks_refused or counters.answered != n:
        raise SystemExit(f"the polling client did not get every request answered: {counters}")
    with app.extensions["db"].transaction() as session:
        app.extensions["audit"].integrate_pending(session)  # no worker runs here, so no sequencer: the events wait
    with app.extensions["db"].reading() as session:
        answered = session.scalar(sa.select(sa.func.count()).select_from(Delivery).where(Delivery.state == "answered"))
        report = verify_log(session)
    if answered != n:
        raise SystemExit(f"{answered} of {n} deliveries answered in the database")
    if not report.ok:
        raise SystemExit(f"audit chain broken at {report.first_bad_seq}: {report.problem}")
    return elapsed, cpu, {"rounds": counters.rounds, "events": report.events_checked}


def fixed_handler(rows: int, request_body: bytes):
    """The fixed replies: the same ``rows`` pending requests on every list, acks for them on every feed."""
    def element(tag, parent=None, text=None):
        node = etree.Element(f"{{{PULL}}}{tag}", nsmap={None: PULL}) if parent is None else \
            etree.SubElement(parent, f"{{{PULL}}}{tag}")
        if text is not None:
            node.text = text
        return node

    def answer(name: str, fill) -> bytes:
        root = element(name)
        head = element("Head", root)
        for tag, value in (("CREATETIME", "2026-11-24T10:00:00Z"), ("RESPONSECODE", "0000"), ("RESPONSEINFO", "ok")):
            element(tag, head, value)
        fill(element("Data", root))
        xml.validate(root, "pull-v1")
        return xml.serialize(root)

    keys = [f"bench-{i:04d}" for i in range(rows)]
    body = base64.b64encode(request_body).decode()
    digest = xml.digest(xml.parse(request_body))

    def listing(data):
        for key in keys:
            row = element("QQ", data)
            for tag, value in (("BDHM", key), ("XZ", "1"), ("CZLX", "inquiry"), ("CJSJ", "2026-11-24T10:00:00Z"),
                               ("JZSJ", "2026-11-25T10:00:00Z"), ("WSSL", "0"), ("SHA256", digest), ("QQNR", body)):
                element(tag, row, value)

    def acks(data):
        for key in keys:
            row = element("HZ", data)
            for tag, value in (("BDHM", key), ("CLJG", "1"), ("CLXX", "recorded")):
                element(tag, row, value)

    replies = {"getXzcxList": answer("getXzcxListResponse", listing),
               "getXzkzList": answer("getXzkzListResponse", lambda data: None),
               "shfeedXzcxInfo": answer("shfeedXzcxInfoResponse", acks)}

    def handle(payload: bytes) -> bytes:
        return replies[etree.QName(xml.parse(payload)).localname]

    return handle, keys


def baseline_run(certificate, n: int, batch: int, request_body: bytes, answer_body: bytes) -> tuple[float, float]:
    handle, _keys = fixed_handler(batch, request_body)
    app = create_soap_app(wsdl_path=xml.WSDL_DIR / "pull-v1.wsdl", prefix=PULL_SERVICE_PATH, handle=handle,
                          credentials=(DEMO_USERNAME, DEMO_PASSWORD))
    server = SandboxServer(app, ssl_context=server_ssl_context(certificate)).start()
    try:
        import requests
        from zeep.transports import Transport
        from zeep.wsse.username import UsernameToken

        session = requests.Session()
        session.trust_env, session.verify = False, str(certificate.certfile)
        client = zeep.Client(server.url + PULL_SERVICE_PATH + "?wsdl", wsse=UsernameToken(DEMO_USERNAME, DEMO_PASSWORD),
                             transport=Transport(session=session, timeout=60, operation_timeout=60),
                             settings=ZEEP_SETTINGS)
        done, cpu0, started = 0, time.process_time(), time.perf_counter()
        while done < n:
            rows = client.service.getXzcxList(MAX=batch).Data.QQ
            acks = client.service.shfeedXzcxInfo(Data={"FK": [{"BDHM": r.BDHM, "FKNR": answer_body} for r in rows]})
            done += sum(1 for a in acks.Data.HZ if a.CLJG == "1")
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu0
        session.close()
    finally:
        server.stop()
    return elapsed, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=600, help="pull requests answered per side (default 600)")
    parser.add_argument("--batch", type=int, default=100, help="rows per list call (MAX, default 100)")
    parser.add_argument("--database-url", default=None,
                        help="a PostgreSQL server (a private schema is made and dropped); default SQLite")
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
                request_body = session.scalars(sa.select(Delivery.request_body).limit(1)).one()
            answer_body = BankAgency("Bank C", 18).handle(request_body)

            g_elapsed, g_cpu, extra = gateway_run(app, certificate, args.requests, args.batch)
            app.extensions["db"].dispose()
            b_elapsed, b_cpu = baseline_run(certificate, args.requests, args.batch, request_body, answer_body)
        finally:
            drop_schemas()
    gateway_rate, baseline_rate = args.requests / g_elapsed, args.requests / b_elapsed
    print(f"gateway : {args.requests} requests listed, answered by the bank and fed back in {g_elapsed:.2f} s = "
          f"{gateway_rate:.1f}/s ({extra['rounds']} rounds of up to {args.batch}; process CPU "
          f"{1000 * g_cpu / args.requests:.2f} ms per request, server and client together); audit chain verified "
          f"({extra['events']} events)")
    print(f"baseline: {args.requests} rows listed and fed back by a bare zeep loop to a fixed-reply server in "
          f"{b_elapsed:.2f} s = {baseline_rate:.1f}/s (process CPU {1000 * b_cpu / args.requests:.2f} ms per row)")
    print(f"pull ratio: {gateway_rate / baseline_rate:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
