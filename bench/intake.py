"""Intake benchmark: one-click requests accepted per second through the real API.

    .venv/bin/python bench/intake.py [--connections 8] [--threads 2] [--duration 10]

Runs `gateway serve` (gunicorn gthread, SQLite, WAL + synchronous=FULL, audit
event in the same transaction) and, in the same run, a bare Flask endpoint that
does one durable insert per request (bench/baseline_app.py) under the same
gunicorn settings; drives both with the same load from 127.0.0.1 (wrk, or a
Python load generator if wrk cannot be had), checks the database rows against
the 202s, and prints the CPU each server spent per accepted request (every process
of its gunicorn, read from /proc over the measured run) and, as its last line,
`intake ratio: X.XX` (gateway accepted/s divided by baseline inserts/s). CPU per
request is the steadier figure on a shared machine: another process's load slows
the rate, hardly the CPU a request takes. Results are kept in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # .venv/bin: the gateway CLI sits beside this python
GUNICORN = {"workers": 2, "threads": 4}  # the same for the gateway and the baseline
COURT, CASE_NUMBER = "330102", "(2024)浙0102执1234号"
DEBTOR = {"kind": "person", "name": "张三", "id_number": "330102198703151157"}  # fictitious, valid check digit
BODY = json.dumps({"case_number": CASE_NUMBER, "action": "inquiry", "subject": DEBTOR}, ensure_ascii=False)

# wrk script: a unique Idempotency-Key per request (run tag, thread number, counter),
# and its own count of 202s vs anything else, because wrk's "requests" counts every
# reply, errors included.
WRK_LUA = r"""
wrk.method = "POST"
wrk.body = [==[%(body)s]==]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(token)s"

local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_no", #threads)
end

accepted, other, counter = 0, 0, 0
function init(args) prefix = args[1] .. "-" .. thread_no .. "-" end

function request()
  counter = counter + 1
  wrk.headers["Idempotency-Key"] = prefix .. counter
  return wrk.format()
end

function response(status, headers, body)
  if status == 202 then accepted = accepted + 1 else other = other + 1 end
end

function done(summary, latency, requests)
  local ok, bad = 0, 0
  for _, t in ipairs(threads) do ok = ok + t:get("accepted"); bad = bad + t:get("other") end
  local e = summary.errors
  io.write(string.format("WRK replies=%%d seconds=%%.3f accepted=%%d other_status=%%d socket_errors=%%d "
    .. "p50_ms=%%.2f p99_ms=%%.2f\n", summary.requests, summary.duration / 1e6, ok, bad,
    e.connect + e.read + e.write + e.timeout, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_call(method: str, url: str, body: str | None = None, headers: dict | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, data=body.encode() if body else None, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


class Server:
    """A server command in its own process group, killed whole on stop (also on error)."""

    def __init__(self, name: str, cmd: list[str], env: dict, log_dir: Path, ready_url: str):
        self.name, self.cmd, self.env, self.ready_url = name, cmd, env, ready_url
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen | None = None
        self.log = None

    def __enter__(self) -> "Server":
        self.log = self.log_path.open("wb")
        self.proc = subprocess.Popen(self.cmd, env=self.env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        give_up = time.monotonic() + 30
        while time.monotonic() < give_up and self.proc.poll() is None:
            try:
                if http_call("GET", self.ready_url)[0] == 200:
                    return self
            except OSError:
                pass  # not listening yet
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} did not get ready; its log:\n{self.log_path.read_text()[-3000:]}")

    def __exit__(self, *_exc) -> None:
        self.stop()
        self.log.close()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.proc.pid, sig)  # gunicorn master and its workers
            except ProcessLookupError:
                return
            try:
                self.proc.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue


def session_cpu_seconds(session_id: int) -> float:
    """User + system CPU of every live process of a session (a server started with
    start_new_session: gunicorn's master and its workers), from /proc."""
    total, tick = 0, os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[3]) == session_id:  # field 6 of stat(5): after ")", state is [0], session [3]
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def ensure_wrk() -> str | None:
    if shutil.which("wrk") is None and shutil.which("apt-get"):
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "timeout": 300}
        if subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], **quiet).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], **quiet)
            subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], **quiet)
    return shutil.which("wrk")


def load_with_wrk(wrk: str, url: str, token: str, args, seconds: float, tag: str, work: Path) -> dict:
    script = work / "intake.lua"
    script.write_text(WRK_LUA % {"body": BODY, "token": token}, encoding="utf-8")
    cmd = [wrk, f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds}s", "--timeout", "10s",
           "-s", str(script), url, "--", tag]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
    line = next((l for l in out.splitlines() if l.startswith("WRK ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{out}")
    figures = dict(item.split("=") for item in line.split()[1:])
    return {k: float(v) for k, v in figures.items()}


def _python_client(job: tuple) -> tuple[int, int, int, list[float]]:
    """One keep-alive connection sending requests until the deadline (or a count cap)."""
    port, path, token, tag, deadline = job
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    accepted = other = errors = 0
    latencies: list[float] = []
    for n in range(1_000_000):
        if time.monotonic() >= deadline:
            break
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}",
                   "Idempotency-Key": f"{tag}-{n}"}
        started = time.perf_counter()
        try:
            conn.request("POST", path, body=BODY.encode(), headers=headers)
            reply = conn.getresponse()
            reply.read()
        except (OSError, http.client.HTTPException):
            errors += 1
            conn.close()
            continue
        latencies.append(time.perf_counter() - started)
        accepted, other = (accepted + 1, other) if reply.status == 202 else (accepted, other + 1)
    conn.close()
    return accepted, other, errors, latencies


def load_with_python(url: str, token: str, args, seconds: float, tag: str) -> dict:
    port, path = int(url.split(":")[2].split("/")[0]), "/" + url.split("/", 3)[3]
    started = time.monotonic()
    jobs = [(port, path, token, f"{tag}-{i}", started + seconds) for i in range(args.connections)]
    with multiprocessing.get_context("fork").Pool(args.connections) as pool:
        results = pool.map_async(_python_client, jobs).get(timeout=seconds + 60)
    elapsed = time.monotonic() - started
    latencies = sorted(x for r in results for x in r[3])
    pct = lambda p: 1000 * latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else 0.0
    return {"replies": len(latencies), "seconds": elapsed, "accepted": sum(r[0] for r in results),
            "other_status": sum(r[1] for r in results), "socket_errors": sum(r[2] for r in results),
            "p50_ms": pct(0.50), "p99_ms": pct(0.99)}


def count(db: Path, sql: str) -> int:
    with sqlite3.connect(db, timeout=30) as conn:
        return conn.execute(sql).fetchone()[0]


def settled_counts(counter) -> tuple[int, ...]:
    """Counts once the last in-flight requests have committed (stable for 0.5 s, at most 10 s)."""
    last, give_up = counter(), time.monotonic() + 10
    while time.monotonic() < give_up:
        time.sleep(0.5)
        now = counter()
        if now == last:
            return now
        last = now
    return last


def measure(name: str, url: str, token: str, args, work: Path, wrk: str | None, counter,
            server: Server) -> tuple[dict, tuple]:
    """Warm up, then one measured run; return wrk's figures (with the server's CPU
    seconds over the run, ``cpu``) and the row-count deltas."""
    run = lambda seconds, tag: (load_with_wrk(wrk, url, token, args, seconds, tag, work) if wrk
                                else load_with_python(url, token, args, seconds, tag))
    run(args.warmup, f"{name}-warm-{uuid.uuid4().hex[:8]}")
    before = settled_counts(counter)
    cpu = session_cpu_seconds(server.proc.pid)
    figures = run(args.duration, f"{name}-{uuid.uuid4().hex[:8]}")
    after = settled_counts(counter)  # the requests in flight at the end are in the CPU too: a few in thousands
    figures["cpu"] = session_cpu_seconds(server.proc.pid) - cpu
    return figures, tuple(a - b for a, b in zip(after, before))


def check(name: str, figures: dict, rows: int, connections: int) -> list[str]:
    """Every 202 must be a committed row; rows beyond the 202s may only be requests whose
    reply was not read: in flight when the load stopped (one per connection at most)
    or lost to a socket error. Any non-202 reply, or socket errors on more than 1% of
    the replies, make the run invalid rather than a lower figure."""
    problems = []
    if figures["other_status"] or figures["socket_errors"] > 0.01 * figures["replies"]:
        problems.append(f"{name}: {figures['other_status']:.0f} non-202 replies, {figures['socket_errors']:.0f} socket errors")
    if not figures["accepted"] <= rows <= figures["accepted"] + connections + figures["socket_errors"]:
        problems.append(f"{name}: {figures['accepted']:.0f} replies 202 but {rows} rows committed")
    return problems


def cpu_ms(figures: dict) -> str:
    return f"{1000 * figures['cpu'] / max(1.0, figures['accepted']):.2f}"


def describe(figures: dict) -> str:
    return (f"{figures['accepted']:.0f} x 202 in {figures['seconds']:.2f} s, {cpu_ms(figures)} ms CPU per 202, "
            f"p50 {figures['p50_ms']:.1f} ms, "
            f"p99 {figures['p99_ms']:.1f} ms, non-202 {figures['other_status']:.0f}, socket errors {figures['socket_errors']:.0f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=8, help="concurrent keep-alive clients")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--duration", type=int, default=10, help="measured seconds per server")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up seconds per server")
    parser.add_argument("--python-load", action="store_true", help="use the Python load generator, not wrk")
    args = parser.parse_args()
    # A SIGTERM becomes SystemExit, so the servers' __exit__ still kills their process groups.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    wrk = None if args.python_load else ensure_wrk()
    load_tool = f"wrk -t{args.threads} -c{args.connections}" if wrk else f"python load generator, {args.connections} processes"
    gunicorn_opts = ["--workers", str(GUNICORN["workers"]), "--threads", str(GUNICORN["threads"])]

    with tempfile.TemporaryDirectory(prefix="bench-intake-") as tmp:
        work = Path(tmp)
        instance = work / "instance"
        (work / "settings.toml").write_text(
            f'[gateway]\ninstance_dir = "{instance}"\nlog_level = "WARNING"\n'
            # One officer sends everything: the limits would stop a benchmark, not measure it.
            '[limits]\nofficer_requests_per_hour = 1000000000\ncourt_requests_per_hour = 1000000000\n'
            'officer_subjects_per_day = 1000000000\n')
        env = {k: v for k, v in os.environ.items() if k != "GATEWAY_DATABASE_URL"}  # SQLite in the instance dir
        env["GATEWAY_CONFIG"] = str(work / "settings.toml")
        cli = lambda *a: subprocess.run([str(BIN / "gateway"), *a], env=env, cwd=ROOT, check=True,
                                        capture_output=True, text=True, timeout=120).stdout.strip()
        cli("keys", "init")
        cli("db", "upgrade")
        token = cli("token", "--role", "court_officer", "--court", COURT, "--sub", "bench.officer")
        gateway_db = instance / "gateway.db"

        # Delivery workers off: this measures intake (202 = request row + outbox + audit event
        # committed); in production `gateway worker` processes deliver.
        port = free_port()
        gateway_cmd = [str(BIN / "gateway"), "serve", "--host", "127.0.0.1", "--port", str(port), *gunicorn_opts,
                       "--no-delivery-workers", "--no-access-log"]
        with Server("gateway", gateway_cmd, env, work, f"http://127.0.0.1:{port}/readyz") as gateway:
            base = f"http://127.0.0.1:{port}/api/v1"
            case = {"case_number": CASE_NUMBER, "court_code": COURT, "amount_owed": "150000.00",
                    "parties": [{"role": "debtor", "subject": DEBTOR}]}
            status, text = http_call("POST", f"{base}/cases", json.dumps(case, ensure_ascii=False),
                                     {"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
            if status not in (200, 201):
                raise RuntimeError(f"case registration answered {status}: {text}")
            gateway_counts = lambda: (
                count(gateway_db, "SELECT count(*) FROM requests"),
                # An event is in exactly one of the two tables: sequenced, or still pending (the
                # API-only gateway runs no sequencer; `audit verify` below integrates them).
                count(gateway_db, "SELECT (SELECT count(*) FROM audit_events WHERE action = 'request.inquiry' AND "
                                  "outcome = 'accepted') + (SELECT count(*) FROM audit_pending WHERE "
                                  "action = 'request.inquiry' AND outcome = 'accepted')"),
                count(gateway_db, "SELECT count(*) FROM deliveries"),
            )
            gw, (gw_requests, gw_audit, gw_deliveries) = measure("gw", f"{base}/requests", token, args, work, wrk,
                                                                 gateway_counts, gateway)
        verify = subprocess.run([str(BIN / "gateway"), "audit", "verify"], env=env, cwd=ROOT, capture_output=True,
                                text=True, timeout=300)

        baseline_db = work / "baseline.db"
        port = free_port()
        baseline_cmd = [str(BIN / "python"), "-m", "gunicorn", "-k", "gthread", *gunicorn_opts, "--keep-alive", "5",
                        "--bind", f"127.0.0.1:{port}", "bench.baseline_app:app"]
        with Server("baseline", baseline_cmd, {**env, "BASELINE_DB": str(baseline_db)}, work,
                    f"http://127.0.0.1:{port}/readyz") as baseline:
            base_counts = lambda: (count(baseline_db, "SELECT count(*) FROM intake"),)
            bl, (bl_rows,) = measure("bl", f"http://127.0.0.1:{port}/intake", token, args, work, wrk, base_counts,
                                     baseline)

    problems = check("gateway", gw, gw_requests, args.connections) + check("baseline", bl, bl_rows, args.connections)
    if gw_audit != gw_requests:
        problems.append(f"gateway: {gw_requests} requests committed but {gw_audit} 'request.inquiry accepted' audit events")
    if verify.returncode != 0:
        problems.append(f"gateway: audit chain does not verify: {verify.stderr.strip() or verify.stdout.strip()}")
    gw_rate, bl_rate = gw["accepted"] / gw["seconds"], bl["accepted"] / bl["seconds"]
    print(f"machine: {os.cpu_count()} cpus, python {sys.version.split()[0]}; load: {load_tool}, "
          f"{args.warmup:g} s warm-up + {args.duration:g} s each; gunicorn gthread {GUNICORN['workers']}x{GUNICORN['threads']}")
    print(f"gateway : {gw_rate:8.1f} accepted/s  ({describe(gw)}; rows: {gw_requests} requests, "
          f"{gw_deliveries} deliveries, {gw_audit} audit events; {verify.stdout.strip() or 'audit log NOT verified'})")
    print(f"baseline: {bl_rate:8.1f} inserts/s   ({describe(bl)}; rows: {bl_rows})")
    if problems:
        for problem in problems:
            print(f"BENCHMARK INVALID: {problem}", file=sys.stderr)
        return 1
    print(f"intake CPU per request: gateway {cpu_ms(gw)} ms, baseline {cpu_ms(bl)} ms")
    print(f"intake ratio: {gw_rate / bl_rate:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
