"""Where the intake's CPU goes: one-click inquiries (every agency: 8 deliveries)
through the real API in this process (Flask test client: token check, schema
load, purpose rule, limits, routing, the write and its audit event), under cProfile.

    .venv/bin/python bench/intake_profile.py [--requests 300] [--top 25] [--prior N]
                                             [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test]

SQLite by default (a file with the same WAL + synchronous=FULL the server uses), or
a private schema on the PostgreSQL server ``--database-url`` names. Prints the CPU
per request without the profiler and the statements per request with the time each
took in the driver (those SQLAlchemy executes: the ones run on the driver's cursor,
gateway/driver_sql.py, pass no engine event and show in the profile instead), then
the profile's top functions by own time and by cumulative time. ``--prior N`` first writes N inquiries about the same debtor through the intake
service (no HTTP), as a busy day would have: what grows with a debtor's history shows.
Not a ratio bench: it says where the time goes (bench/RESULTS.md, "intake").
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import event

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway import migrate  # noqa: E402
from gateway.app import create_app  # noqa: E402
from gateway.auth.keys import init_keys  # noqa: E402
from gateway.auth.tokens import issue_token  # noqa: E402
from gateway.settings import load_settings  # noqa: E402
from support import (  # noqa: E402  (bench/ is on the path: scripts run by file)
    CASE_NUMBER, COURT, DEBTOR, OFFICER, drop_schemas, gateway_overrides, private_schema, register_case,
    submit_inquiries,
)

BODY = {"case_number": CASE_NUMBER, "action": "inquiry", "subject": DEBTOR}  # no categories: every agency


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--prior", type=int, default=0, help="inquiries about the debtor written first")
    parser.add_argument("--database-url", default=None, help="a PostgreSQL server (a private schema is made)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-intake-profile-") as tmp:
        instance = Path(tmp)
        url = (private_schema(args.database_url, f"bench_profile_{uuid.uuid4().hex[:8]}") if args.database_url
               else f"sqlite:///{instance / 'gateway.db'}")
        try:
            overrides = gateway_overrides(instance, url)
            overrides["limits"] = {"officer_requests_per_hour": 10**9, "court_requests_per_hour": 10**9,
                                   "officer_subjects_per_day": 10**9}  # counted, never reached
            overrides["reuse"] = {"freshness_seconds": 86400}  # the default: the reuse lookup runs
            settings = load_settings(overrides)
            init_keys(settings)
            migrate.upgrade(settings.database_url)
            app = create_app(overrides)
            register_case(app)
            submit_inquiries(app, args.prior)
            token = issue_token(settings, role=OFFICER.role, sub=OFFICER.sub, court=COURT)
            client = app.test_client()
            headers = {"Authorization": f"Bearer {token}"}
            statements = [0]
            driver_time: dict[str, list[float]] = {}  # statement's first words -> [calls, seconds]
            started = [0.0]

            @event.listens_for(app.extensions["db"].engine, "before_cursor_execute")
            def _count(*_args) -> None:
                statements[0] += 1
                started[0] = time.perf_counter()

            @event.listens_for(app.extensions["db"].engine, "after_cursor_execute")
            def _time(_conn, _cursor, statement, *_args) -> None:
                entry = driver_time.setdefault(" ".join(statement.split())[:90], [0, 0.0])
                entry[0] += 1
                entry[1] += time.perf_counter() - started[0]

            def submit(tag: str, n: int) -> None:
                for i in range(n):
                    reply = client.post("/api/v1/requests", json=BODY, headers={**headers, "Idempotency-Key": f"{tag}-{i:06d}"})
                    if reply.status_code != 202 or len(reply.get_json()["deliveries"]) != 8:
                        raise RuntimeError(f"intake answered {reply.status_code}: {reply.get_data(as_text=True)[:500]}")

            submit("warm", 30)
            statements[0] = 0
            driver_time.clear()
            cpu, wall = time.process_time(), time.perf_counter()
            submit("plain", args.requests)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            per_request = statements[0] / args.requests
            timed = sorted(((k, list(v)) for k, v in driver_time.items()), key=lambda kv: -kv[1][1])
            profiler = cProfile.Profile()
            profiler.enable()
            submit("profiled", args.requests)
            profiler.disable()
        finally:
            drop_schemas()
    backend = "postgresql" if args.database_url else "sqlite"
    print(f"{backend}: {args.requests} inquiries x 8 deliveries: CPU {1000 * cpu / args.requests:.2f} ms per request, "
          f"wall {1000 * wall / args.requests:.2f} ms, {per_request:.1f} statements per request through SQLAlchemy"
          f"{f' ({args.prior} earlier inquiries about the debtor)' if args.prior else ''}")
    print("statements (calls per request, ms per request in the driver):")
    for text, (calls, seconds) in timed:
        print(f"  {calls / args.requests:4.1f}  {1000 * seconds / args.requests:6.3f}  {text}")
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(order).print_stats(args.top)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
