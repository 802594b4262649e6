"""Where the intake's CPU goes: one-click inquiries (every agency: 8 deliveries)
through the real API in this process (Flask test client: token check, schema
load, purpose rule, limits, routing, the write and its audit event), under cProfile.

    .venv/bin/python bench/intake_profile.py [--requests 300] [--top 25]
                                             [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test]

SQLite by default (a file with the same WAL + synchronous=FULL the server uses), or
a private schema on the PostgreSQL server ``--database-url`` names. Prints the CPU
per request without the profiler, then the profile's top functions by own time and
by cumulative time, and the statements per request. Not a ratio bench: it says
where the time goes (bench/RESULTS.md, "intake").
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
)

BODY = {"case_number": CASE_NUMBER, "action": "inquiry", "subject": DEBTOR}  # no categories: every agency


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--top", type=int, default=25)
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
            token = issue_token(settings, role=OFFICER.role, sub=OFFICER.sub, court=COURT)
            client = app.test_client()
            headers = {"Authorization": f"Bearer {token}"}
            statements = [0]

            @event.listens_for(app.extensions["db"].engine, "before_cursor_execute")
            def _count(*_args) -> None:
                statements[0] += 1

            def submit(tag: str, n: int) -> None:
                for i in range(n):
                    reply = client.post("/api/v1/requests", json=BODY, headers={**headers, "Idempotency-Key": f"{tag}-{i:06d}"})
                    if reply.status_code != 202 or len(reply.get_json()["deliveries"]) != 8:
                        raise RuntimeError(f"intake answered {reply.status_code}: {reply.get_data(as_text=True)[:500]}")

            submit("warm", 30)
            statements[0] = 0
            cpu, wall = time.process_time(), time.perf_counter()
            submit("plain", args.requests)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            per_request = statements[0] / args.requests
            profiler = cProfile.Profile()
            profiler.enable()
            submit("profiled", args.requests)
            profiler.disable()
        finally:
            drop_schemas()
    backend = "postgresql" if args.database_url else "sqlite"
    print(f"{backend}: {args.requests} inquiries x 8 deliveries: CPU {1000 * cpu / args.requests:.2f} ms per request, "
          f"wall {1000 * wall / args.requests:.2f} ms, {per_request:.1f} statements per request")
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(order).print_stats(args.top)
        print(out.getvalue().split("\n", 6)[-1] if order == "tottime" else out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
