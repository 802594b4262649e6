"""The `gateway` command (DESIGN.md, "Command line")."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import click

from gateway.batches import cli as batches_cli
from gateway.controls import cli as controls_cli
from gateway.errors import ConfigError
from gateway.settings import load_settings


def _settings():
    try:
        return load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _create_app(**kwargs):
    """The app, or a one-line error naming the file, the entry and the rule broken."""
    from gateway.app import create_app

    try:
        return create_app(**kwargs)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _start_worker(app):
    """Start the app's delivery worker, which builds the agencies' transports: a transport's bad
    settings (a WSDL or key file missing, options it refuses) are the same one-line error."""
    try:
        return app.extensions["worker"].start()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _check_registry(settings):
    from gateway.registry import load_registry

    try:
        return load_registry(settings.agencies_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
def main() -> None:
    """Enforcement data exchange gateway."""


main.add_command(controls_cli.controls)
main.add_command(batches_cli.batch)


@main.command()
@click.option("--serve", is_flag=True, help="Keep the gateway and sandboxes running afterwards, with the console's "
              "demo identity provider on; prints how to log in as the demo officer, judge and auditor.")
@click.option("--port", default=0, help="Gateway port with --serve (0: any free port).")
def demo(serve: bool, port: int) -> None:
    """Sandboxes + gateway in one process: a one-click inquiry, the asset report, the audit trail."""
    from gateway.demo import run_demo

    sys.exit(run_demo(keep_serving=serve, port=port))


@main.command()
@click.option("--with-sandboxes", is_flag=True, help="Start the agency sandboxes too (in a process of their own).")
@click.option("--dev", is_flag=True, help="Werkzeug server with the reloader instead of gunicorn.")
@click.option("--host", default=None, help="Default: [server].host.")
@click.option("--port", default=None, type=int, help="Default: [server].port.")
@click.option("--workers", "gunicorn_workers", default=None, type=int, help="gunicorn worker processes.")
@click.option("--threads", default=None, type=int, help="Threads per gunicorn worker.")
@click.option("--no-delivery-workers", is_flag=True, help="Accept requests only; run `gateway worker` separately.")
@click.option("--no-access-log", is_flag=True)
@click.option("--certfile", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Serve https with this PEM certificate (needs --keyfile); agencies' UsernameTokens need TLS.")
@click.option("--keyfile", type=click.Path(exists=True, dir_okay=False), default=None, help="Its PEM private key.")
def serve(with_sandboxes, dev, host, port, gunicorn_workers, threads, no_delivery_workers, no_access_log,
          certfile, keyfile) -> None:
    """The API (gunicorn, gthread) with in-process delivery workers."""
    from gateway import migrate
    from gateway.auth.keys import init_keys

    if bool(certfile) != bool(keyfile):
        raise click.UsageError("--certfile and --keyfile go together")
    settings = _settings()
    registry = _check_registry(settings)  # before gunicorn forks workers that would each fail on it
    host, port = host or settings.server.host, port or settings.server.port
    init_keys(settings)  # only what is missing: a first run works out of the box
    migrate.upgrade(settings.database_url)
    # The sandboxes run in a process of their own: gunicorn forks its workers from this
    # one, and a forked worker would inherit the sandboxes' listening sockets (holding
    # their ports after a stop) and run this function's `finally` on exit, stopping
    # server threads that do not exist in it (it hung there for ever).
    sandboxes = _SandboxProcess().start() if with_sandboxes else None
    poller = _PollerWhenUp(settings, host, port, certfile).start() if with_sandboxes else None
    master = os.getpid()
    try:
        if dev:
            app = _create_app()
            if not no_delivery_workers:
                _start_worker(app)
            app.run(host=host, port=port, debug=True, use_reloader=not with_sandboxes,
                    ssl_context=(certfile, keyfile) if certfile else None)
        else:
            from gateway.server import GatewayServer, prepare_metrics_dir, timeout_settings

            try:
                timeouts = timeout_settings(settings.server, max((a.timeout_seconds for a in registry), default=0))
            except ConfigError as exc:
                raise click.ClickException(str(exc)) from None
            prepare_metrics_dir(settings.metrics_path)
            GatewayServer(
                bind=f"{host}:{port}", workers=gunicorn_workers or settings.server.gunicorn_workers,
                threads=threads or settings.server.gunicorn_threads, run_delivery_workers=not no_delivery_workers,
                access_log=not no_access_log, certfile=certfile, keyfile=keyfile,
                forwarded_allow_ips=settings.server.forwarded_allow_ips,
                timeout=timeouts["timeout"], graceful_timeout=timeouts["graceful_timeout"],
            ).run()
    finally:
        if os.getpid() == master:  # not in a gunicorn worker unwinding the stack it was forked with
            if poller is not None:
                poller.stop()
            if sandboxes is not None:
                sandboxes.stop()


class _SandboxProcess:
    """`gateway sandbox` as a child process of `serve --with-sandboxes`: started and
    waited for until every sandbox listens, its output passed on, stopped with SIGTERM."""

    READY = "sandboxes ready"

    def __init__(self, start_timeout: float = 60.0):
        self.start_timeout = start_timeout
        self.process: subprocess.Popen | None = None

    def start(self) -> "_SandboxProcess":
        self.process = subprocess.Popen([sys.executable, "-m", "gateway", "sandbox"], stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, bufsize=1,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1"})  # each line as it is written
        ready = threading.Event()

        def relay() -> None:
            assert self.process is not None and self.process.stdout is not None
            for line in self.process.stdout:
                if line.strip() == self.READY:
                    ready.set()
                click.echo(line, nl=False)

        threading.Thread(target=relay, name="sandbox-output", daemon=True).start()
        give_up = time.monotonic() + self.start_timeout
        while not ready.wait(0.1):
            if self.process.poll() is not None or time.monotonic() > give_up:
                self.stop()
                raise click.ClickException("the agency sandboxes did not start (their output is above); "
                                           "is another gateway already holding their ports?")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)


class _PollerWhenUp:
    """The polling bank (bank-c) of `serve --with-sandboxes`, started once the gateway
    answers: with the published demo password over https (--certfile), else with an
    agency token for bank-c (a UsernameToken is refused over plain HTTP)."""

    def __init__(self, settings, host: str, port: int, certfile: str | None):
        from gateway.auth.tokens import issue_token

        scheme = "https" if certfile else "http"
        self.url = f"{scheme}://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"
        self.options: dict = {"verify": certfile or True, "interval_seconds": 1.0}
        if not certfile:
            self.options["bearer_token"] = issue_token(settings, role="agency", sub="bank-c-sandbox", agency="bank-c",
                                                       lifetime_seconds=30 * 86400)
        self.poller: Any = None  # a sandboxes.polling_bank.PollingBank once the gateway is up
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="poller-when-up", daemon=True)

    def start(self) -> "_PollerWhenUp":
        self._thread.start()
        return self

    def _run(self) -> None:
        from sandboxes.run import start_polling_bank

        give_up = time.monotonic() + 120
        while not self._stop.is_set() and time.monotonic() < give_up:
            try:
                self.poller = start_polling_bank(self.url, **self.options)
                click.echo(f"sandbox bank-c polls {self.url}")
                return
            except Exception:  # noqa: BLE001 - the gateway not up yet: try again
                self._stop.wait(1.0)
        if not self._stop.is_set():
            click.echo(f"sandbox bank-c could not reach {self.url}: its requests wait unanswered", err=True)

    def stop(self) -> None:
        self._stop.set()
        if self.poller is not None:
            self.poller.stop()


@main.group()
def agency() -> None:
    """Agencies' accounts."""


@agency.command("hash-password")
def agency_hash_password() -> None:
    """Print the scrypt hash of a pull agency's password (options.password_hash), read
    from stdin when piped, else prompted for (not echoed, asked twice)."""
    from gateway.auth.passwords import hash_password

    if sys.stdin.isatty():
        password = click.prompt("password", hide_input=True, confirmation_prompt=True, err=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise click.UsageError("the password must not be empty")
    click.echo(hash_password(password))


@main.command()
def worker() -> None:
    """A delivery worker process (claims due deliveries from the database)."""
    from gateway.server import freeze_startup_objects

    app = _create_app()
    delivery_worker = _start_worker(app)
    freeze_startup_objects()  # as each `gateway serve` worker does: the start-up objects out of every full collection
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    click.echo(f"delivery worker running for agencies: {', '.join(app.extensions['registry'].agencies)}")
    stopped.wait()
    delivery_worker.stop()


def _start_sandboxes(latency: float = 0.0, failure_rate: float = 0.0, seed: int | None = None):
    from sandboxes.run import start_sandboxes

    sandboxes = start_sandboxes(latency=latency, failure_rate=failure_rate, seed=seed)
    for sandbox in sandboxes:
        click.echo(f"sandbox {sandbox.name} listening on {sandbox.url}")
    return sandboxes


@main.command()
@click.option("--latency", default=0.0, help="Seconds added to every answer.")
@click.option("--failure-rate", default=0.0, help="Share of calls failed (HTTP 503, SOAP fault, batch file answered late), 0 to 1.")
@click.option("--seed", default=None, type=int, help="Seed of the failure draw, for repeatable runs.")
@click.option("--gateway", "gateway_url", default=None, metavar="URL",
              help="Also run the polling bank (bank-c) against the gateway at URL (https://host:port).")
@click.option("--ca", "ca_file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="CA file to verify the gateway's TLS certificate with (default: the system's).")
@click.option("--poll-interval", default=5.0, show_default=True, help="Seconds between the polling bank's rounds.")
def sandbox(latency: float, failure_rate: float, seed: int | None, gateway_url: str | None, ca_file: str | None,
            poll_interval: float) -> None:
    """The agency sandboxes alone, on the ports the default registry points at; with
    --gateway, also the bank that polls the gateway (it logs in with the published demo password)."""
    if ca_file and not gateway_url:
        raise click.UsageError("--ca is for --gateway: the CA that signed the gateway's certificate")
    servers = _start_sandboxes(latency, failure_rate, seed)
    poller = None
    if gateway_url:
        from sandboxes.run import start_polling_bank

        try:
            poller = start_polling_bank(gateway_url, verify=ca_file or True, interval_seconds=poll_interval)
        except Exception as exc:  # noqa: BLE001 - the gateway down, its certificate not trusted, no pull service: say which
            servers.stop()
            raise click.ClickException(f"the polling bank cannot reach the gateway at {gateway_url}: "
                                       f"{type(exc).__name__}: {exc}") from None
        click.echo(f"sandbox bank-c polling {gateway_url} every {poll_interval} s")
    click.echo(_SandboxProcess.READY)  # `serve --with-sandboxes` waits for this line
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    stopped.wait()
    if poller is not None:
        poller.stop()
        counters = poller.counters
        click.echo(f"bank-c polled {counters.rounds} times: {counters.listed} listed, {counters.answered} answered, "
                   f"{counters.sent_back} sent back")
    servers.stop()


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply migrations."""
    from gateway import migrate

    settings = _settings()
    migrate.upgrade(settings.database_url, revision)
    click.echo(f"database at revision {migrate.head_revision() if revision == 'head' else revision}")


@main.group()
def keys() -> None:
    """Local keys."""


@keys.command("init")
@click.option("--force", is_flag=True, help="New token and checkpoint keys at once (tokens signed before stop "
              "verifying; the audit subject key is never replaced). To change keys on a running gateway: keys rotate.")
def keys_init(force: bool) -> None:
    """Make the token signing key, its JWKS and the audit subject-hash key."""
    from gateway.auth.keys import init_keys

    written = init_keys(_settings(), force=force)
    for path in written:
        click.echo(f"wrote {path}")
    if not written:
        click.echo("keys already present (use --force to replace them)")


@keys.command("rotate")
@click.option("--token", "token_key", is_flag=True, help="A new token signing key; the old one verifies for the grace period.")
@click.option("--checkpoint", "checkpoint_key", is_flag=True,
              help="A new audit checkpoint key; the old public key is kept so its checkpoints still verify.")
@click.option("--grace-seconds", type=int, default=None,
              help="How long tokens signed by the old key stay valid (default: [auth].token_lifetime_seconds).")
def keys_rotate(token_key: bool, checkpoint_key: bool, grace_seconds: int | None) -> None:
    """Rotate a key without a restart: running gateways read the new files within a second
    (tokens) or at their next checkpoint (checkpoints)."""
    from gateway.auth.keys import rotate_checkpoint_key, rotate_token_key

    if not (token_key or checkpoint_key):
        raise click.UsageError("say which key: --token, --checkpoint or both")
    settings = _settings()
    try:
        if token_key:
            grace = settings.auth.token_lifetime_seconds if grace_seconds is None else grace_seconds
            old, new = rotate_token_key(settings, grace_seconds=grace)
            click.echo(f"token key {new} signs from now; {old} verifies for {grace} s more ({settings.jwks_path})")
        if checkpoint_key:
            old, new = rotate_checkpoint_key(settings)
            click.echo(f"checkpoint key {new} signs from the next checkpoint; {old} kept to verify the earlier ones")
    except FileNotFoundError as exc:
        raise click.ClickException(f"{exc.filename}: no key to rotate; run `gateway keys init` first") from None


@main.command()
@click.option("--role", required=True)
@click.option("--court", default=None)
@click.option("--agency", default=None)
@click.option("--sub", required=True, help="Who the token is for (an officer's user name).")
@click.option("--lifetime", default=None, type=int, help="Seconds; default [auth].token_lifetime_seconds.")
def token(role, court, agency, sub, lifetime) -> None:
    """Print a signed token (demo and tests)."""
    from gateway.auth.tokens import COURT_ROLES, issue_token

    if role in COURT_ROLES and not court:
        raise click.UsageError(f"a {role} token needs --court")
    if role == "agency" and not agency:
        raise click.UsageError("an agency token needs --agency")
    try:
        click.echo(issue_token(_settings(), role=role, sub=sub, court=court, agency=agency, lifetime_seconds=lifetime))
    except FileNotFoundError:
        raise click.ClickException("no signing key: run `gateway keys init` first") from None
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@main.group()
def audit() -> None:
    """The audit log."""


def _report_integrity(report, what: str) -> None:
    chain = report.chain if hasattr(report, "chain") else report
    if chain.ok:
        extra = ""
        if hasattr(report, "checkpoints_checked"):
            extra = f", {report.checkpoints_checked} checkpoints" + (
                f" (last at event {report.last_checkpoint_seq})" if report.last_checkpoint_seq else "")
            if getattr(report, "outside_checkpoints", 0):
                extra += f", {report.outside_checkpoints} from the outside copy"
        click.echo(f"{what} verified: {chain.events_checked} events{extra}, head {chain.head_seq} {chain.head_hash}")
        if not getattr(report, "sealed", True):
            click.echo(f"{what} UNSEALED [unsealed]: {report.unsealed_events} events after the newest checkpoint, "
                       f"the oldest written {report.unsealed_since}, wait longer than the bound; they could have "
                       "been cut without trace (is a worker (its housekeeper) running to write checkpoints?)", err=True)
            sys.exit(3)
        return
    click.echo(f"{what} BROKEN at event {chain.first_bad_seq} [{chain.kind}]: {chain.problem} "
               f"({chain.events_checked} events verified before it)", err=True)
    sys.exit(1)


def _read_checkpoint_copy(path):
    from audit.checkpoint_file import CheckpointFileError, load_checkpoint_file

    try:
        return load_checkpoint_file(path)
    except (OSError, CheckpointFileError) as exc:
        raise click.ClickException(str(exc)) from None


@audit.command("verify")
@click.option("--public-key", "public_key_files", type=click.Path(exists=True, dir_okay=False), multiple=True,
              help="Checkpoint public key; repeat it for keys retired by rotation (default: "
                   "[audit].checkpoint_public_key_file and the retired keys beside it).")
@click.option("--archive", "archive_dir", type=click.Path(exists=True, file_okay=False),
              help="Also check the archive files in DIR and that the live log goes on from them.")
@click.option("--export", "export_file", type=click.Path(exists=True, dir_okay=False),
              help="Check an export file (CSV or JSON lines) offline instead of the database.")
@click.option("--checkpoints", "checkpoints_file", type=click.Path(exists=True, dir_okay=False),
              help="A copy of the checkpoints kept outside the database: the checkpoint file (JSON lines) or the "
                   "JSON of GET /api/v1/audit/checkpoints. The database is held against it (default: "
                   "[audit].checkpoint_file if it exists); with --export, the export is.")
@click.option("--inclusion-proof", "inclusion_file", type=click.Path(exists=True, dir_okay=False),
              help="Check offline a proof from GET /api/v1/audit/proofs/inclusion: the event's fields hash to the "
                   "leaf, the path leads to the root, and a checkpoint whose signature holds signs that root.")
@click.option("--consistency-proof", "consistency_file", type=click.Path(exists=True, dir_okay=False),
              help="Check offline a proof from GET /api/v1/audit/proofs/consistency: the later signed tree "
                   "extends the earlier one.")
def audit_verify(public_key_files, archive_dir, export_file, checkpoints_file, inclusion_file, consistency_file) -> None:
    """Check the audit chain, its MACs and its signed checkpoints (with the outside copy),
    after integrating the events still pending; or check a proof offline.

    Exit 0: verified and sealed. Exit 1: broken, naming the first bad event and the
    kind of break. Exit 3: intact, but events after the newest checkpoint have
    waited longer than [audit].unsealed_after_seconds (``unsealed``)."""
    from pathlib import Path

    from gateway.auth.keys import read_checkpoint_public_keys

    settings = _settings()
    try:
        public_key = read_checkpoint_public_keys(settings, [Path(p) for p in public_key_files])
    except ConfigError as exc:
        if public_key_files or checkpoints_file:
            raise click.ClickException(str(exc)) from None
        # Fine while no checkpoint exists; once one does, verification says it cannot check it.
        click.echo(f"note: {exc}", err=True)
        public_key = None
    if export_file:
        _verify_export(Path(export_file), Path(checkpoints_file) if checkpoints_file else None, public_key)
        return
    if inclusion_file or consistency_file:
        _verify_proofs(inclusion_file, consistency_file, Path(checkpoints_file) if checkpoints_file else None,
                       public_key)
        return
    from audit.chain import event_mac_key
    from audit.checkpoint_store import verify_log_with_checkpoints
    from gateway.auth.keys import read_subject_key
    from gateway.db import Database

    try:
        event_key = event_mac_key(read_subject_key(settings))
    except ConfigError as exc:
        # Away from the gateway's keys: the chain and the signed checkpoints still
        # hold the log, but an event appended or re-chained after the newest
        # checkpoint is only caught by its MAC.
        click.echo(f"note: event MACs not checked: {exc}", err=True)
        event_key = None
    copy = Path(checkpoints_file) if checkpoints_file else settings.checkpoint_file_path
    if copy.exists():
        outside = _read_checkpoint_copy(copy)
    else:
        click.echo(f"note: no outside copy of the checkpoints ({copy}): the newest ones, and events rewritten "
                   "under them, could be deleted without trace", err=True)
        outside = []
    database = Database(settings.database_url)
    try:
        _integrate_pending_first(database, event_key)
        with database.reading() as session:
            # The chain walk split over the cores (audit/parallel.py): a million events in seconds.
            report = verify_log_with_checkpoints(session, public_key, archive_dir=Path(archive_dir) if archive_dir else None,
                                                 workers=max(1, min(8, os.cpu_count() or 1)), event_key=event_key,
                                                 outside=outside,
                                                 unsealed_after_seconds=settings.audit.unsealed_after_seconds)
    finally:
        database.dispose()
    _report_integrity(report, "audit log" + (" and archive" if archive_dir else ""))


def _integrate_pending_first(database, event_key) -> None:
    """Sequence what was written and not yet integrated, so verify sees the whole log."""
    if event_key is None:  # the sequencer's step needs the key to MAC what it chains
        click.echo("note: events still pending are not integrated (that needs the audit subject key)", err=True)
        return
    from audit.sequencing import integrate_pending

    with database.transaction() as session:
        integrate_pending(session, event_key)


def _verify_proofs(inclusion_file, consistency_file, checkpoints_path, public_key) -> None:
    import json
    from pathlib import Path

    from audit.proofs import check_consistency, check_inclusion

    checkpoints = _read_checkpoint_copy(checkpoints_path) if checkpoints_path else []
    failed = False
    for name, check in ((inclusion_file, check_inclusion), (consistency_file, check_consistency)):
        if not name:
            continue
        try:
            document = json.loads(Path(name).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise click.ClickException(f"{name}: not a JSON proof: {exc}") from None
        if not isinstance(document, dict):
            raise click.ClickException(f"{name}: not a JSON proof: expected an object")
        ok, message = check(document, public_key, checkpoints)
        click.echo(f"{Path(name).name}: {'verified' if ok else 'FAILED'}: {message}", err=not ok)
        failed = failed or not ok
    if failed:
        sys.exit(1)


def _verify_export(path, checkpoints_path, public_key) -> None:
    from audit.export import ExportFormatError, read_export, verify_export

    fmt = "csv" if path.suffix.lower() == ".csv" else "jsonl"
    checkpoints = _read_checkpoint_copy(checkpoints_path) if checkpoints_path else []
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            report = verify_export(read_export(fh, fmt), checkpoints=checkpoints, public_key=public_key)
    except ExportFormatError as exc:
        raise click.ClickException(f"{path}: {exc}") from None
    _report_integrity(report, f"export {path.name}")


@audit.command("checkpoint")
def audit_checkpoint() -> None:
    """Sign the current chain head now."""
    from gateway.auditing.checkpointing import CheckpointWriter
    from gateway.db import Database

    from audit.chain import event_mac_key
    from audit.sequencing import integrate_pending
    from gateway.auth.keys import read_subject_key

    settings = _settings()
    database = Database(settings.database_url)
    try:
        try:
            event_key = event_mac_key(read_subject_key(settings))
        except ConfigError as exc:
            click.echo(f"note: events still pending are not integrated first: {exc}", err=True)
        else:
            with database.transaction() as session:  # sign what has been written, not only what was sequenced
                integrate_pending(session, event_key)
        checkpoint = CheckpointWriter(database, settings).write_now(force=True)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        database.dispose()
    if checkpoint is None:
        click.echo("the audit log is empty: nothing to sign")
        return
    click.echo(f"checkpoint signed at event {checkpoint['seq']}: {checkpoint['head_hash']} (key {checkpoint['key_id']})")


@audit.command("archive")
@click.option("--older-than", "days", required=True, type=click.FloatRange(min=0), help="Retention period in days.")
@click.option("--to", "directory", required=True, type=click.Path(file_okay=False), help="Archive directory.")
def audit_archive(days: float, directory: str) -> None:
    """Move events older than DAYS into a chained archive file in DIR."""
    from datetime import timedelta
    from pathlib import Path

    from audit.archive_store import ArchiveRefused, archive_older_than
    from gateway.db import Database
    from gateway.timeutil import utc_now

    database = Database(_settings().database_url)
    now = utc_now()
    try:
        with database.transaction() as session:
            record = archive_older_than(session, Path(directory), cutoff=now - timedelta(days=days), now=now)
    except ArchiveRefused as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        database.dispose()
    if record is None:
        click.echo(f"no events older than {days:g} days to archive")
        return
    click.echo(f"archived events {record['first_seq']}..{record['last_seq']} to {Path(directory) / record['file_name']} "
               f"(sha256 {record['file_sha256']})")
