"""Where a one-click inquiry's time goes (not a ratio bench): the fan-out of
``bench/fanout.py`` with the worker's steps timed, milliseconds from the request's
``created_at``, per inquiry and as medians.

    .venv/bin/python bench/fanout_trace.py [--inquiries 10] [--latency 0.2]

Steps: intake committed; the dispatcher's first pass after it; the claim transaction
and the messages encoded and kept; each call agency's exchange (start, answer) and its
answer recorded (the recorder's transaction start = ``answered_at``, its commit); each
batch agency's file (sent, marked sent), every look for its results and the look that
found them, the results recorded. SQLite write-lock waits over 5 ms are counted by
the thread that waited.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from gateway import migrate  # noqa: E402
from gateway.auth.keys import init_keys  # noqa: E402
from gateway.registry import Registry, load_registry  # noqa: E402
from gateway.settings import CONFIG_DIR, load_settings  # noqa: E402
from sandboxes.run import start_sandboxes  # noqa: E402
from support import gateway_overrides, register_case, submit_inquiries  # noqa: E402

EVENTS: list[tuple[float, str, str]] = []  # (time.time(), thread name, what)


def mark(what: str) -> None:
    EVENTS.append((time.time(), threading.current_thread().name, what))


def wrap(owner, name: str, label) -> None:
    """Mark the start and end of ``owner.name`` (label: a str or a function of the args)."""
    original = getattr(owner, name)

    def traced(*args, **kwargs):
        what = label(*args, **kwargs) if callable(label) else label
        mark(what + " start")
        try:
            return original(*args, **kwargs)
        finally:
            mark(what + " end")

    setattr(owner, name, traced)


def instrument() -> None:
    from gateway import db as gdb
    from gateway.deliveries import recorder, worker
    from gateway.deliveries.channels import AgencyChannel, BatchChannel

    W = worker.DeliveryWorker
    wrap(W, "dispatch_once", "pass")
    if hasattr(W, "_claim_and_encode"):  # main: claim and encode in one step
        wrap(W, "_claim_and_encode", "claim+encode")
    else:
        wrap(W, "_claim", "claim+encode")
        wrap(W, "_encode_and_keep", "encode+keep")
    look = "_look" if hasattr(W, "_look") else "_collect_if_due"  # the branch's name, or main's
    wrap(W, look, lambda self, ch: f"look {ch.agency.id}")
    if hasattr(W, "_hold_collection_lease"):
        wrap(W, "_hold_collection_lease", lambda self, a: f"lease {a}")
    wrap(W, "_apply_results", lambda self, ch, *a: f"apply {ch.agency.id}")
    wrap(W, "deliver_batch", lambda self, ids, a, *r: f"batch {a}")
    wrap(AgencyChannel, "exchange", lambda self, env: f"call {self.agency.id}")
    wrap(BatchChannel, "send", lambda self, envs: f"send {self.agency.id}")
    from gateway.deliveries import progress
    wrap(progress, "keep_requests", lambda session, fresh, **kw: f"keep {len(fresh)}")
    wrap(progress, "mark_sent", "mark_sent")
    wrap(progress, "load_orders", lambda session, ids, **kw: f"load_orders {len(ids)}")
    wrap(BatchChannel, "encode", lambda self, order: f"encode {self.agency.id}")
    wrap(recorder.AnswerRecorder, "_record_batch", lambda self, items: f"record {len(items)}")
    original_held = gdb.SqliteWriteGate.held

    @contextmanager
    def held(self):
        asked = time.time()
        with original_held(self):
            if time.time() - asked > 0.005:
                EVENTS.append((asked, threading.current_thread().name, f"lock wait {(time.time() - asked) * 1000:.0f} ms"))
            yield

    gdb.SqliteWriteGate.held = held


def epoch(value) -> float:
    from datetime import timezone

    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()


def run(args) -> None:
    from gateway.app import create_app
    from gateway.deliveries import services
    from gateway.deliveries.models import Delivery
    from gateway.requests.models import Request

    work = Path(tempfile.mkdtemp(prefix="bench-fanout-trace-"))
    init_keys(load_settings({"gateway": {"instance_dir": str(work)}}, environ={}))
    sandboxes = start_sandboxes(latency=args.latency, ports={n: 0 for n in ("bank-a", "bank-b", "psb", "tax", "samr", "sftp")},
                                sftp_root=work / "sftp")
    url = f"sqlite:///{work / 'fanout.db'}"
    migrate.upgrade(url)
    default = load_registry(CONFIG_DIR / "agencies.toml")
    app = create_app(gateway_overrides(work, url, threads=16, batch_result_wait_seconds=30.0),
                     registry=Registry([a for a in default if a.id in sandboxes.endpoints], default.source)
                     .with_endpoints(sandboxes.endpoints))
    register_case(app)
    instrument()
    worker = app.extensions["worker"].start()
    steps: dict[str, list[float]] = defaultdict(list)
    try:
        for n in range(args.inquiries + 2):
            EVENTS.clear()
            (request_id,) = submit_inquiries(app, 1)
            mark("intake committed")
            worker.wake()
            while True:
                with app.extensions["db"].reading() as session:
                    if not services.unsettled_count(session, list(app.extensions["registry"].agencies)):
                        break
                time.sleep(0.005)
            with app.extensions["db"].reading() as session:
                created = epoch(session.get(Request, request_id).created_at)
                rows = session.execute(sa.select(Delivery.agency_id, Delivery.answered_at)
                                       .where(Delivery.request_id == request_id)).all()
            if n < 2:
                continue
            report(n, created, rows, list(EVENTS), steps, args.verbose)
    finally:
        worker.stop()
        app.extensions["db"].dispose()
        sandboxes.stop()
    print("\nmedians over", args.inquiries, "inquiries (ms from created_at):")
    for what, values in steps.items():
        print(f"  {what:40s} {statistics.median(values):7.1f}   (p90 {sorted(values)[int(0.9 * (len(values) - 1))]:7.1f}, n={len(values)})")


def report(n: int, created: float, rows, events, steps, verbose: bool) -> None:
    def first(prefix: str, after: float = 0.0) -> float | None:
        found = [t for t, _, w in events if w.startswith(prefix) and t >= after]
        return (min(found) - created) * 1000 if found else None

    def note(what: str, value: float | None) -> None:
        if value is not None:
            steps[what].append(value)

    note("intake committed", first("intake committed"))
    committed = created + (first("intake committed") or 0) / 1000
    note("first pass start after commit", first("pass start", committed))
    note("claim+encode start", first("claim+encode start", committed))
    note("claim+encode end", first("claim+encode end", committed))
    note("encode+keep end (branch)", first("encode+keep end", committed))
    for agency, answered in rows:
        note(f"{agency}: answered_at", (epoch(answered) - created) * 1000)
        note(f"{agency}: call start", first(f"call {agency} start"))
        note(f"{agency}: call end", first(f"call {agency} end"))
        note(f"{agency}: batch start", first(f"batch {agency} start"))
        note(f"{agency}: file sent", first(f"send {agency} end"))
        note(f"{agency}: batch marked sent", first(f"batch {agency} end"))
        looks = [t for t, _, w in events if w == f"look {agency} start"]
        sent = first(f"send {agency} end")
        if sent is not None:
            steps[f"{agency}: looks after the file left"].append(len([t for t in looks if (t - created) * 1000 > sent]))
        note(f"{agency}: results applied", first(f"apply {agency} end"))
    note("whole inquiry", max((epoch(a) - created) * 1000 for _, a in rows))
    waits = [w for _, _, w in events if w.startswith("lock wait")]
    steps["lock waits > 5 ms (count)"].append(len(waits))
    if verbose:
        print(f"--- inquiry {n}")
        for t, thread, what in sorted(events):
            print(f"  {(t - created) * 1000:8.1f} {thread:24s} {what}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inquiries", type=int, default=10)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--verbose", action="store_true", help="every event of every inquiry")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
