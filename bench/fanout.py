"""Fan-out benchmark: how long a one-click inquiry to every agency takes, and how
many deliveries per second worker processes sustain.

    .venv/bin/python bench/fanout.py [--inquiries 50] [--latency 0.2] [--deliveries 6000]
                                     [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test]

1. **Fan-out latency.** Every default sandbox (SOAP banks and tax, REST public
   security and market regulation, SFTP national bank and land registry) answers
   after a fixed ``--latency`` (200 ms). The gateway runs in this process (API on
   loopback, in-process delivery worker, SQLite); one-click inquiries go in one
   after the other, each to every agency. Completion = the last delivery's
   ``answered_at`` minus the request's ``created_at`` (the gateway's own clock,
   no polling bias). Baselines, in the same run: the same messages exchanged
   through the agencies' adapters (codec + transport) in parallel threads, with no
   database: the call agencies alone, and every agency (the batch agencies' files
   uploaded and their outboxes listed every poll interval): the floors the network
   and the sandboxes set.
2. **Sustained deliveries per second** on PostgreSQL with 1 and with 3
   ``gateway worker`` processes against the two REST sandboxes at zero latency:
   ``--deliveries`` queued first (inquiries written through the intake service),
   then the workers started; rate = deliveries / (last answered_at - first answered_at).

Last line: ``fanout ratio: X`` = p95 completion / the slowest agency's latency.
Exits 1 without it if any delivery did not end answered.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.timeutil import utc_now
from gateway import migrate  # noqa: E402
from gateway.auth.keys import init_keys  # noqa: E402
from gateway.registry import Registry, load_registry  # noqa: E402
from gateway.settings import CONFIG_DIR, load_settings  # noqa: E402
from sandboxes.run import start_sandboxes  # noqa: E402
from support import drop_schemas, gateway_overrides, private_schema, register_case, submit_inquiries  # noqa: E402  (bench/ is on the path: scripts run by file)

BIN = Path(sys.executable).parent
def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


# --- 1. fan-out latency ---------------------------------------------------------------------


def fanout_latency(args, work: Path) -> tuple[list[float], list[float], dict[str, list[float]], dict[str, list[float]]]:
    """The gateway's completions (whole inquiry), each agency's, and the two floors: the
    call agencies' adapters alone, and every agency's (the batch agencies' files too)."""
    from gateway.app import create_app
    from gateway.deliveries import services
    from gateway.deliveries.models import Delivery
    from gateway.requests.models import Request

    sandboxes = start_sandboxes(latency=args.latency, ports={name: 0 for name in
                                                             ("bank-a", "bank-b", "psb", "tax", "samr", "sftp")},
                                sftp_root=work / "sftp")
    if args.fanout_database == "postgresql":
        database_url = private_schema(args.database_url, f"bench_fanout_{os.getpid()}_latency")
    else:
        database_url = f"sqlite:///{work / 'fanout.db'}"
    migrate.upgrade(database_url)
    default = load_registry(CONFIG_DIR / "agencies.toml")
    app = create_app(gateway_overrides(work, database_url, threads=16, batch_result_wait_seconds=30.0),
                     registry=Registry([a for a in default if a.id in sandboxes.endpoints],  # not bank-c: it polls
                                       default.source).with_endpoints(sandboxes.endpoints))
    register_case(app)
    worker = app.extensions["worker"].start()
    try:
        completions, per_agency = [], {}
        for n in range(args.inquiries + 2):  # the first two warm connections and caches, not counted
            (request_id,) = submit_inquiries(app, 1)
            worker.wake()
            give_up = time.monotonic() + 30
            while True:
                with app.extensions["db"].reading() as session:
                    if not services.unsettled_count(session, list(app.extensions["registry"].agencies)):
                        break
                if time.monotonic() > give_up:
                    raise SystemExit(f"inquiry {request_id} not settled after 30 s")
                # The completion is the gateway's own clock (answered_at): this look's pace
                # biases nothing but the CPU it takes from the gateway in this process.
                time.sleep(0.02)
            with app.extensions["db"].reading() as session:
                created = session.get(Request, request_id).created_at
                rows = session.execute(sa.select(Delivery.agency_id, Delivery.state, Delivery.answered_at)
                                       .where(Delivery.request_id == request_id)).all()
            if any(r.state != "answered" for r in rows):
                raise SystemExit(f"inquiry {request_id}: not every delivery answered: {rows}")
            if n >= 2:
                completions.append(max((r.answered_at - created).total_seconds() for r in rows))
                for r in rows:
                    per_agency.setdefault(r.agency_id, []).append((r.answered_at - created).total_seconds())
        ids = _delivery_ids(app)
    finally:
        worker.stop()  # before the floors: its looks would collect the floor's result files
    try:
        calls_floor, every_floor = floors(app, args, ids)
        return completions, calls_floor, every_floor, per_agency
    finally:
        app.extensions["db"].dispose()
        sandboxes.stop()


def _delivery_ids(app) -> list[str]:
    from gateway.deliveries.models import Delivery

    with app.extensions["db"].reading() as session:
        return list(session.scalars(sa.select(Delivery.id)))


def floors(app, args, ids: list[str]) -> tuple[list[float], list[float]]:
    """The same messages exchanged through the agencies' own adapters (codec + transport)
    in parallel threads, no database, on channels of their own: the call agencies alone
    (each a request and its reply), and every agency, the batch agencies' too (each its
    one-line file uploaded, then its outbox listed every poll interval, as the gateway
    looks, until the result names the message; the agency's own poll of its inbox is in
    both). Seconds per inquiry, one list per floor."""
    from gateway.deliveries import progress
    from gateway.deliveries.channels import AgencyChannel, BatchChannel, ChannelPlan

    channels = ChannelPlan(app.extensions["registry"], app.extensions["codecs"]).open()
    try:
        with app.extensions["db"].reading() as session:
            orders = {ref.agency_id: order for order, ref in progress.load_orders(session, ids, now=utc_now()).values()}
        calls = {a: c for a, c in channels.items() if isinstance(c, AgencyChannel)}
        files = {a: c for a, c in channels.items() if isinstance(c, BatchChannel)}
        look = app.config["SETTINGS"].workers.poll_interval_seconds
        calls_floor, every_floor = [], []
        with ThreadPoolExecutor(len(calls) + len(files)) as pool:
            for _ in range(args.inquiries):
                started = time.perf_counter()
                list(pool.map(lambda a: calls[a].exchange(calls[a].encode(_fresh(orders[a]))), calls))
                calls_floor.append(time.perf_counter() - started)
            for _ in range(args.inquiries):
                started = time.perf_counter()
                done = [pool.submit(calls[a].exchange, calls[a].encode(_fresh(orders[a]))) for a in calls]
                done += [pool.submit(_file_round_trip, files[a], _fresh(orders[a]), look) for a in files]
                for future in done:
                    future.result()
                every_floor.append(time.perf_counter() - started)
        return calls_floor, every_floor
    finally:
        for channel in channels.values():
            channel.close()


def _file_round_trip(channel, order, look: float) -> None:
    """One request in a batch file, uploaded; its outbox listed every ``look`` seconds until its result comes."""
    envelope = channel.encode(order)
    channel.send([envelope])
    give_up = time.monotonic() + 30
    while time.monotonic() < give_up:
        for batch in channel.receive():
            found = [r for r in batch.records if r.message_id == envelope.message_id]
            for record in found:
                channel.decode(record, envelope)
            channel.settle(batch)
            if found:
                return
        time.sleep(look)
    raise SystemExit(f"floor: no result from {channel.agency.id} after 30 s")


def _fresh(order):
    from dataclasses import replace

    return replace(order, message_id=str(uuid.uuid4()))  # a new message: the agency works it, not its memory


# --- 2. sustained deliveries per second -------------------------------------------------------


REST_SANDBOXES = {"psb": ("sandboxes.public_security:create_app()", "/psb/v1"),
                  "samr": ("sandboxes.market_regulation:create_app()", "/samr/v1")}


def serve_rest_sandboxes(work: Path) -> dict[str, tuple[str, subprocess.Popen]]:
    """psb and samr, each under gunicorn on a free port: {id: (endpoint, process)}. Two gthread
    workers of 8 threads, which keep connections alive as an agency's server would: gunicorn's
    sync workers close each one, and the worker's TCP connect per call was then a tenth of its
    CPU (bench/RESULTS.md, 2026-12-08)."""
    import socket
    import urllib.request

    served = {}
    for agency_id, (factory, prefix) in REST_SANDBOXES.items():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        process = subprocess.Popen([str(BIN / "gunicorn"), "-w", "2", "-k", "gthread", "--threads", "8",
                                    "-b", f"127.0.0.1:{port}", "--log-level", "warning",
                                    factory], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=(work / f"{agency_id}.log").open("w"))
        served[agency_id] = (f"http://127.0.0.1:{port}{prefix}", process)
        give_up = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}{prefix}/healthz", timeout=1)
                break
            except OSError:
                if time.monotonic() > give_up or process.poll() is not None:
                    raise SystemExit(f"sandbox {agency_id} did not start under gunicorn")
                time.sleep(0.1)
    return served


def _toml(value) -> str:
    if isinstance(value, str):
        return '"' + value + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return repr(value)


def sustained(args, work: Path, workers: int) -> tuple[float, int]:
    from gateway.app import create_app
    from gateway.deliveries.models import Delivery

    url = private_schema(args.database_url, f"bench_fanout_{os.getpid()}_{workers}")
    # Each REST sandbox in its own gunicorn (2 processes): in this process they would share
    # one GIL with everything else here and cap the rate far below what the workers do.
    sandboxes, processes = serve_rest_sandboxes(work), []
    try:
        migrate.upgrade(url)
        default = load_registry(CONFIG_DIR / "agencies.toml")
        entries = []
        for agency in default:
            if agency.id in sandboxes:
                entries.append("[[agency]]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in {
                    "id": agency.id, "kind": agency.kind, "name": agency.name, "transport": agency.transport,
                    "endpoint": sandboxes[agency.id][0], "categories": list(agency.categories),
                    "actions": ["inquiry"], "deadlines": {"inquiry": 86400}, "concurrency": 16,
                    "rate_limit_per_second": 100000, "timeout_seconds": 10}.items()))
        registry_file = work / f"agencies-{workers}.toml"
        registry_file.write_text("\n".join(entries), encoding="utf-8")
        app = create_app(gateway_overrides(work, url), registry=load_registry(registry_file))
        register_case(app)
        submit_inquiries(app, args.deliveries // len(entries))
        app.extensions["db"].dispose()
        config = work / f"worker-{workers}.toml"
        keys = work / "keys"
        config.write_text(
            f'[gateway]\ninstance_dir = "{work}"\nagencies_file = "{registry_file}"\nlog_level = "WARNING"\n'
            f'[auth]\njwks_file = "{keys / "jwks.json"}"\n[audit]\nsubject_key_file = "{keys / "subject-hash.key"}"\n'
            '[workers]\nthreads = 16\npoll_interval_seconds = 0.01\nbatch_size = 32\n', encoding="utf-8")
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")},
               "GATEWAY_CONFIG": str(config), "GATEWAY_DATABASE_URL": url}
        processes = [subprocess.Popen([str(BIN / "gateway"), "worker"], env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL) for _ in range(workers)]
        engine = sa.create_engine(url)
        give_up = time.monotonic() + 600
        with engine.connect() as conn:
            while True:
                left = conn.execute(sa.select(sa.func.count()).select_from(Delivery)
                                    .where(Delivery.state != "answered")).scalar()
                conn.commit()
                if not left:
                    break
                if time.monotonic() > give_up or any(p.poll() is not None for p in processes):
                    raise SystemExit(f"{left} deliveries not answered ({workers} workers)")
                time.sleep(0.2)
            first, last, count = conn.execute(sa.select(sa.func.min(Delivery.answered_at), sa.func.max(Delivery.answered_at),
                                                        sa.func.count()).select_from(Delivery)).one()
        engine.dispose()
        return count / max((last - first).total_seconds(), 1e-9), count
    finally:
        for p in processes + [served for _, served in sandboxes.values()]:
            p.terminate()
            p.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inquiries", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.2, help="every sandbox's fixed latency, seconds")
    parser.add_argument("--deliveries", type=int, default=6000, help="queued for the throughput runs")
    parser.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--fanout-database", choices=("sqlite", "postgresql"), default="sqlite",
                        help="database of the fan-out latency part (the throughput part is PostgreSQL)")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--sustained-only", action="store_true",
                        help="only the sustained runs (profiling them); no fanout ratio line")
    parser.add_argument("--processes", default="1,3", help="worker processes of each sustained run, comma-separated")
    args = parser.parse_args()
    try:
        run(args)
    finally:
        drop_schemas()


def run(args) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    init_keys(load_settings({"gateway": {"instance_dir": str(work)}}, environ={}))

    if args.sustained_only:
        for workers in (int(n) for n in args.processes.split(",")):
            rate, count = sustained(args, work, workers)
            print(f"sustained: {workers} worker process(es): {rate:.0f} deliveries/s ({count} deliveries)")
        return
    completions, calls_floor, every_floor, per_agency = fanout_latency(args, work)
    print(f"fan-out to {len(per_agency)} agencies, sandbox latency {args.latency * 1000:.0f} ms, "
          f"{len(completions)} inquiries one after the other, {args.fanout_database}")
    for agency_id, times in sorted(per_agency.items()):
        print(f"  {agency_id:14s} answered after median {statistics.median(times) * 1000:7.1f} ms, "
              f"p95 {percentile(times, 0.95) * 1000:7.1f} ms")
    batch = {"bank-national", "land"}  # the SFTP batch agencies among the default sandboxes
    call_completions = [max(per_agency[a][n] for a in per_agency if a not in batch) for n in range(len(completions))]
    print(f"gateway: whole inquiry median {statistics.median(completions) * 1000:.1f} ms, "
          f"p95 {percentile(completions, 0.95) * 1000:.1f} ms")
    print(f"gateway: the call agencies' last answer median {statistics.median(call_completions) * 1000:.1f} ms, "
          f"p95 {percentile(call_completions, 0.95) * 1000:.1f} ms")
    print(f"baseline (call agencies' adapters in parallel, no database): median "
          f"{statistics.median(calls_floor) * 1000:.1f} ms, p95 {percentile(calls_floor, 0.95) * 1000:.1f} ms")
    print(f"baseline (every agency's adapters, the batch agencies' files too): median "
          f"{statistics.median(every_floor) * 1000:.1f} ms, p95 {percentile(every_floor, 0.95) * 1000:.1f} ms")
    print(f"p95 vs its floor: whole inquiry {percentile(completions, 0.95) / percentile(every_floor, 0.95):.2f}, "
          f"call agencies {percentile(call_completions, 0.95) / percentile(calls_floor, 0.95):.2f}; "
          f"call agencies' p95 / latency {percentile(call_completions, 0.95) / args.latency:.2f}")
    if not args.skip_throughput:
        for workers in (int(n) for n in args.processes.split(",")):
            rate, count = sustained(args, work, workers)
            print(f"sustained: {workers} worker process(es), PostgreSQL, 2 REST sandboxes (gunicorn) at zero latency: "
                  f"{rate:.0f} deliveries/s ({count} deliveries)")
    print(f"median ratio: {statistics.median(completions) / args.latency:.2f}")
    print(f"fanout ratio: {percentile(completions, 0.95) / args.latency:.2f}")


if __name__ == "__main__":
    main()
