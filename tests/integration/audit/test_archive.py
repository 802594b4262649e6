"""`gateway audit archive` and `gateway audit verify --archive`: old events move
into chained files, the database keeps the link, and the archived past and the
live log verify as one chain; a modified or missing archive file is caught."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from audit.archive import NO_PREVIOUS_FILE, verify_archive
from audit.archive_store import ArchiveRefused, archive_older_than, load_archive_records
from audit.checkpoint_store import verify_log_with_checkpoints, write_checkpoint
from audit.checkpoints import load_private_key, load_public_key
from audit.models import AuditEvent
from audit.store import AuditLog, SystemActor
from gateway.cli import main
from gateway.db import Database
from gateway.timeutil import utc_now

AUDIT = AuditLog(b"a" * 32)


@pytest.fixture
def db(database_url):
    database = Database(database_url)
    yield database
    database.dispose()


@pytest.fixture
def keys(keys_dir):
    return (load_private_key((keys_dir / "checkpoint-ed25519.pem").read_bytes()),
            load_public_key((keys_dir / "checkpoint-ed25519.pub.pem").read_bytes()))


@pytest.fixture
def archive_dir(tmp_path):
    return tmp_path / "archive"


def append(db, n):
    for i in range(n):
        with db.transaction() as session:
            AUDIT.record(session, action="test.event", outcome="ok", actor=SystemActor("t"), details={"i": i})
            AUDIT.integrate_pending(session)  # what the sequencer does next, here at once


def archive(db, directory, cutoff=None):
    with db.transaction() as session:
        return archive_older_than(session, directory, cutoff=cutoff or utc_now(), now=utc_now())


def live_seqs(db):
    with db.reading() as session:
        return list(session.scalars(sa.select(AuditEvent.seq).order_by(AuditEvent.seq)))


def verify_cli(database_url, keys_dir, *args):
    return CliRunner().invoke(main, ["audit", "verify", "--public-key", str(keys_dir / "checkpoint-ed25519.pub.pem"),
                                     *args], env={"GATEWAY_DATABASE_URL": database_url, "GATEWAY_CONFIG": ""})


def test_archived_past_and_live_log_verify_as_one_chain(db, database_url, keys_dir, keys, archive_dir):
    signing, public = keys
    append(db, 3)
    with db.transaction() as session:
        write_checkpoint(session, signing, now=utc_now())  # at event 3, which will be archived
    cutoff = utc_now()
    append(db, 3)
    first = archive(db, archive_dir, cutoff)
    assert (first["first_seq"], first["last_seq"], first["prev_file_sha256"]) == (1, 3, NO_PREVIOUS_FILE)
    assert live_seqs(db) == [4, 5, 6]
    append(db, 2)
    second = archive(db, archive_dir)  # everything but the newest event
    assert (second["first_seq"], second["last_seq"]) == (4, 7)
    assert second["prev_file_sha256"] == first["file_sha256"]
    assert live_seqs(db) == [8]
    append(db, 1)
    assert live_seqs(db) == [8, 9]  # appends go on from the live head

    with db.reading() as session:
        records = load_archive_records(session)
        assert [r["file_name"] for r in records] == ["audit-000000000001-000000000003.jsonl",
                                                     "audit-000000000004-000000000007.jsonl"]
        assert verify_log_with_checkpoints(session, public).ok  # the live log alone, from the archive's link
        both = verify_log_with_checkpoints(session, public, archive_dir=archive_dir)
        assert both.ok and both.chain.head_seq == 9 and both.checkpoints_checked == 1
    result = verify_cli(database_url, keys_dir, "--archive", str(archive_dir))
    assert result.exit_code == 0 and "audit log and archive verified" in result.output, result.output

    archived = verify_archive(archive_dir)
    assert archived.ok and archived.files_checked == 2 and archived.chain.events_checked == 7


def test_a_modified_archive_file_is_caught(db, database_url, keys_dir, archive_dir):
    append(db, 4)
    record = archive(db, archive_dir)
    path = archive_dir / record["file_name"]
    lines = path.read_text().splitlines(keepends=True)
    event = json.loads(lines[2])
    event["outcome"] = "forged"
    lines[2] = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"
    path.write_text("".join(lines))
    result = verify_cli(database_url, keys_dir, "--archive", str(archive_dir))
    assert result.exit_code == 1 and "[archive]" in result.output and "was modified" in result.output
    alone = verify_archive(archive_dir)  # without the database's record: the event's own hash gives it away
    assert not alone.ok and alone.chain.first_bad_seq == 2 and alone.chain.kind == "altered"


def test_a_missing_archive_file_is_caught(db, database_url, keys_dir, archive_dir):
    append(db, 4)
    record = archive(db, archive_dir)
    (archive_dir / record["file_name"]).rename(archive_dir / "elsewhere.jsonl")
    result = verify_cli(database_url, keys_dir, "--archive", str(archive_dir))
    assert result.exit_code == 1 and "is not in" in result.output


def test_only_archived_events_may_be_deleted(db, archive_dir):
    append(db, 5)
    archive(db, archive_dir, cutoff=None)
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        with db.engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM audit_events WHERE seq = 5"))
    for statement in ("DELETE FROM audit_archives", "UPDATE audit_archives SET last_seq = 99"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            with db.engine.begin() as conn:
                conn.execute(sa.text(statement))


def test_a_broken_chain_is_not_archived(db, archive_dir):
    append(db, 4)
    with db.engine.begin() as conn:
        if db.dialect == "postgresql":
            conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
        else:
            conn.execute(sa.text("DROP TRIGGER audit_events_no_update"))
        conn.execute(sa.text("UPDATE audit_events SET outcome = 'x' WHERE seq = 2"))
    with pytest.raises(ArchiveRefused, match="event 2"):
        archive(db, archive_dir)
    assert live_seqs(db) == [1, 2, 3, 4] and not archive_dir.exists()


def test_cli_archive(db, database_url, archive_dir):
    append(db, 3)
    env = {"GATEWAY_DATABASE_URL": database_url, "GATEWAY_CONFIG": ""}
    runner = CliRunner()
    nothing = runner.invoke(main, ["audit", "archive", "--older-than", "30", "--to", str(archive_dir)], env=env)
    assert nothing.exit_code == 0 and "no events older than 30 days" in nothing.output
    done = runner.invoke(main, ["audit", "archive", "--older-than", "0", "--to", str(archive_dir)], env=env)
    assert done.exit_code == 0 and "archived events 1..2" in done.output, done.output
