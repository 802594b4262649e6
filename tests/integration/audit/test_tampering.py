"""Each kind of tampering an operator with database access could try, on SQLite
and PostgreSQL, is caught by verification against the signed checkpoints:
edited field, deleted row, inserted row, swapped rows, truncated tail, forged
or edited checkpoint. Checked through the store, the CLI and the API."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.chain import GENESIS_HASH, event_hash, event_mac
from audit.checkpoint_store import load_checkpoints, verify_log_with_checkpoints, write_checkpoint
from audit.checkpoint_file import CheckpointFileError, append_checkpoint, load_checkpoint_file
from audit.checkpoints import checkpoint_hash, load_private_key, load_public_key, sign_checkpoint
from audit.models import AuditCheckpoint, AuditEvent
from audit.store import AuditLog, SystemActor
from walk_support import assert_walks_agree, events_from_before_macs
from gateway.auditing.checkpointing import CheckpointWriter, checkpoint_due
from gateway.cli import main
from gateway.db import Database
from gateway.settings import load_settings
from gateway.timeutil import utc_now

AUDIT = AuditLog(b"t" * 32)
ACTOR = SystemActor(sub="tester")


@pytest.fixture
def db(database_url):
    database = Database(database_url)
    yield database
    database.dispose()


@pytest.fixture
def signing_key(keys_dir):
    return load_private_key((keys_dir / "checkpoint-ed25519.pem").read_bytes())


@pytest.fixture
def public_key(keys_dir):
    return load_public_key((keys_dir / "checkpoint-ed25519.pub.pem").read_bytes())


def append(db, n):
    for i in range(n):
        with db.transaction() as session:
            AUDIT.record(session, action="test.event", outcome="ok", actor=ACTOR, details={"i": i})
            AUDIT.integrate_pending(session)  # what the sequencer does next, here at once


def checkpoint(db, key):
    with db.transaction() as session:
        return write_checkpoint(session, key, now=utc_now())


def tampered(db, *statements, params=None):
    """What an operator could do: switch the guards off, then write."""
    with db.engine.begin() as conn:
        if db.dialect == "postgresql":
            conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
        else:
            for trigger in ("audit_events_no_update", "audit_events_no_delete",
                            "audit_checkpoints_no_update", "audit_checkpoints_no_delete"):
                conn.execute(sa.text(f"DROP TRIGGER IF EXISTS {trigger}"))
        for statement in statements:
            conn.execute(sa.text(statement), params or {})


def verify(db, public_key):
    """One walk, and the walk split over processes: both must say the same, and
    on SQLite (where the database builds the encoding) what the plain walk says."""
    with db.reading() as session:
        one = verify_log_with_checkpoints(session, public_key, batch=4, event_key=AUDIT.event_key)
        split = verify_log_with_checkpoints(session, public_key, workers=2, event_key=AUDIT.event_key)
        assert_walks_agree(session, AUDIT.event_key, batch=3)
    assert split == one
    return one


def events(db):
    with db.reading() as session:
        columns = AuditEvent.__table__.c
        return [dict(r) for r in session.execute(sa.select(*columns).order_by(columns.seq)).mappings()]


def reinsert(db, rows):
    with db.engine.begin() as conn:
        conn.execute(sa.insert(AuditEvent.__table__), rows)


@pytest.fixture
def log(db, signing_key):
    """Eight events, checkpoints at 4 and 8."""
    append(db, 4)
    checkpoint(db, signing_key)
    append(db, 4)
    checkpoint(db, signing_key)
    return db


def test_an_untouched_log_verifies_against_its_checkpoints(log, public_key):
    report = verify(log, public_key)
    assert report.ok and report.chain.events_checked == 8
    assert (report.checkpoints_checked, report.last_checkpoint_seq) == (2, 8)


def test_edited_field_is_named(log, public_key):
    tampered(log, "UPDATE audit_events SET outcome = 'refused' WHERE seq = 6")
    report = verify(log, public_key)
    assert (report.ok, report.chain.first_bad_seq, report.chain.kind) == (False, 6, "altered")


def test_deleted_row_is_named(log, public_key):
    tampered(log, "DELETE FROM audit_events WHERE seq = 3")
    report = verify(log, public_key)
    assert (report.ok, report.chain.first_bad_seq, report.chain.kind) == (False, 3, "missing")


def test_inserted_row_with_the_rest_rechained_is_caught_by_the_checkpoint(log, public_key):
    """The forger inserts event 6 and recomputes every hash after it, so the chain
    is sound on its own; the checkpoint at 8 still names the old head."""
    rows = events(log)
    forged = {**rows[4], "seq": 6, "outcome": "forged", "actor_sub": "intruder"}
    new_tail = [forged] + [{**r, "seq": r["seq"] + 1} for r in rows[5:]]
    prev = rows[4]["hash"]
    for row in new_tail:
        row["prev_hash"], row["hash"] = prev, event_hash(row, prev)
        prev = row["hash"]
    tampered(log, "DELETE FROM audit_events WHERE seq >= 6")
    reinsert(log, new_tail)
    report = verify(log, public_key)
    assert (report.ok, report.chain.kind) == (False, "rewritten")
    assert report.chain.first_bad_seq == 5  # after the last checkpoint that still matches (4)
    assert "rewritten after event 4" in report.chain.problem


def test_inserted_row_without_rechaining_is_named(log, public_key):
    rows = events(log)
    forged = {**rows[4], "seq": 6, "outcome": "forged"}
    forged["prev_hash"] = rows[4]["hash"]
    forged["hash"] = event_hash(forged, forged["prev_hash"])
    tampered(log, "DELETE FROM audit_events WHERE seq >= 6")
    reinsert(log, [forged] + [{**r, "seq": r["seq"] + 1} for r in rows[5:]])
    report = verify(log, public_key)
    assert (report.ok, report.chain.first_bad_seq, report.chain.kind) == (False, 7, "unlinked")


def test_swapped_rows_are_named(log, public_key):
    rows = events(log)
    a, b = rows[1], rows[5]  # events 2 and 6 trade places
    tampered(log, "DELETE FROM audit_events WHERE seq IN (2, 6)")
    reinsert(log, [{**b, "seq": 2}, {**a, "seq": 6}])
    report = verify(log, public_key)
    assert (report.ok, report.chain.first_bad_seq, report.chain.kind) == (False, 2, "unlinked")


def test_truncated_tail_past_a_checkpoint_is_named(log, public_key):
    tampered(log, "DELETE FROM audit_events WHERE seq >= 6")
    report = verify(log, public_key)
    assert (report.ok, report.chain.first_bad_seq, report.chain.kind) == (False, 6, "truncated")
    assert "reached event 8" in report.chain.problem


def test_truncated_tail_after_the_last_checkpoint_is_the_known_limit(log, public_key):
    """Events after the newest checkpoint are protected only by the next one: the
    interval settings bound how many can go unseen."""
    append(log, 2)
    tampered(log, "DELETE FROM audit_events WHERE seq >= 9")
    assert verify(log, public_key).ok


def test_checkpoint_signed_by_another_key_is_named(log, public_key):
    rows = events(log)
    foreign = sign_checkpoint(Ed25519PrivateKey.generate(), seq=8, head_hash=rows[7]["hash"], event_count=8,
                              signed_at=utc_now())
    with log.engine.begin() as conn:  # inserting needs no trigger switched off
        conn.execute(sa.insert(AuditCheckpoint.__table__), [foreign])
    report = verify(log, public_key)
    assert (report.ok, report.chain.first_bad_seq, report.chain.kind) == (False, 8, "foreign_key")


def test_edited_checkpoint_is_named(log, public_key):
    tampered(log, "UPDATE audit_checkpoints SET head_hash = :h WHERE seq = 4", params={"h": "a" * 64})
    report = verify(log, public_key)
    assert (report.ok, report.chain.first_bad_seq, report.chain.kind) == (False, 4, "bad_signature")


@pytest.mark.parametrize("statement", ["UPDATE audit_checkpoints SET seq = 1", "DELETE FROM audit_checkpoints"])
def test_the_database_refuses_to_change_checkpoints(log, statement):
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        with log.engine.begin() as conn:
            conn.execute(sa.text(statement))


def test_events_newer_than_any_archive_cannot_be_deleted(log):
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        with log.engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM audit_events WHERE seq = 1"))


def _cli(database_url, keys_dir, *args):
    env = {"GATEWAY_DATABASE_URL": database_url, "GATEWAY_CONFIG": ""}
    return CliRunner().invoke(main, ["audit", "verify", "--public-key", str(keys_dir / "checkpoint-ed25519.pub.pem"),
                                     *args], env=env)


def test_cli_verify_needs_only_the_public_key(log, database_url, keys_dir):
    ok = _cli(database_url, keys_dir)
    assert ok.exit_code == 0, ok.output
    assert "verified: 8 events, 2 checkpoints (last at event 8)" in ok.output
    tampered(log, "DELETE FROM audit_events WHERE seq >= 7")
    broken = _cli(database_url, keys_dir)
    assert broken.exit_code == 1
    assert "BROKEN at event 7 [truncated]" in broken.output


def test_cli_checkpoint_signs_the_head(db, database_url, keys_dir, tmp_path):
    append(db, 3)
    config = tmp_path / "settings.toml"
    config.write_text(f'[audit]\ncheckpoint_key_file = "{keys_dir / "checkpoint-ed25519.pem"}"\n'
                      f'checkpoint_file = "{tmp_path / "checkpoints.jsonl"}"\n')
    result = CliRunner().invoke(main, ["audit", "checkpoint"],
                                env={"GATEWAY_DATABASE_URL": database_url, "GATEWAY_CONFIG": str(config)})
    assert result.exit_code == 0, result.output
    assert "checkpoint signed at event 3" in result.output
    with db.reading() as session:
        assert [c["seq"] for c in load_checkpoints(session)] == [3]


def test_a_checkpoint_is_due_after_enough_events_or_time():
    now = utc_now()
    due = dict(now=now, every_events=10, every_seconds=60)
    assert not checkpoint_due(head=0, last_seq=None, last_signed_at=None, **due)
    assert checkpoint_due(head=1, last_seq=None, last_signed_at=None, **due)
    assert not checkpoint_due(head=15, last_seq=15, last_signed_at=now - timedelta(hours=1), **due)
    assert not checkpoint_due(head=19, last_seq=10, last_signed_at=now - timedelta(seconds=5), **due)
    assert checkpoint_due(head=20, last_seq=10, last_signed_at=now - timedelta(seconds=5), **due)
    assert checkpoint_due(head=11, last_seq=10, last_signed_at=now - timedelta(seconds=61), **due)


def test_the_writer_checkpoints_from_the_worker_loop(db, database_url, keys_dir, public_key, tmp_path):
    settings = load_settings({"database": {"url": database_url},
                              "audit": {"checkpoint_key_file": str(keys_dir / "checkpoint-ed25519.pem"),
                                        "checkpoint_file": str(tmp_path / "checkpoints.jsonl"),
                                        "checkpoint_every_events": 3, "checkpoint_every_seconds": 3600}}, environ={})
    writer = CheckpointWriter(db, settings)
    append(db, 2)
    assert writer.maybe_write() is not None  # the first checkpoint: none yet
    append(db, 2)
    writer._next_look = 0  # the once-a-second throttle, skipped for the test
    assert writer.maybe_write() is None  # 2 new events: not yet
    append(db, 1)
    writer._next_look = 0
    assert writer.maybe_write()["seq"] == 5
    report = verify(db, public_key)
    assert report.ok and report.checkpoints_checked == 2


def test_an_empty_log_verifies_and_has_nothing_to_sign(db, signing_key, public_key):
    assert checkpoint(db, signing_key) is None
    report = verify(db, public_key)
    assert report.ok and report.chain.head_hash == GENESIS_HASH


def test_details_stored_in_the_older_text_form_still_verify(db, public_key):
    """Events written before details were stored as canonical text (json.dumps'
    default form, keys in insertion order, non-ASCII escaped) verify unchanged;
    so does canonical text that holds '": ' inside a string."""
    append(db, 2)
    previous = events(db)[-1]
    old = {**previous, "seq": 3, "details": {"b": "杭州", "a": [1, 2]}, "prev_hash": previous["hash"]}
    old["hash"] = event_hash(old, old["prev_hash"])
    old["mac"] = event_mac(AUDIT.event_key, old["hash"])  # written by the gateway: it holds the key
    reinsert(db, [old])  # through the JSON type: json.dumps' default form
    with db.engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT details FROM audit_events WHERE seq = 3")).scalar_one()
    assert '": ' in (stored if isinstance(stored, str) else __import__("json").dumps(stored))
    with db.transaction() as session:
        AUDIT.record(session, action="test.event", outcome="ok", details={"note": 'say "x": y', "n": 1})
        AUDIT.integrate_pending(session)
    assert verify(db, public_key).ok and verify(db, public_key).chain.events_checked == 4
    tampered(db, "UPDATE audit_events SET details = '{\"a\": [1, 3], \"b\": \"x\"}' WHERE seq = 3")
    report = verify(db, public_key)
    assert (report.ok, report.chain.first_bad_seq, report.chain.kind) == (False, 3, "altered")


# --- the keyed chain: someone with database access but not the event key --------


def forge_append(db, *, mac=None):
    """Append an event the way the gateway would, hash recomputed, without the key."""
    last = events(db)[-1]
    forged = {**last, "seq": last["seq"] + 1, "action": "request.inquiry", "actor_sub": "intruder", "mac": mac}
    forged["prev_hash"] = last["hash"]
    forged["hash"] = event_hash(forged, forged["prev_hash"])
    reinsert(db, [forged])  # an INSERT: no trigger to switch off


@pytest.mark.parametrize(("mac", "kind"), [(None, "unkeyed"), ("ab" * 32, "forged")])
def test_an_event_appended_with_a_recomputed_hash_is_caught(log, public_key, mac, kind):
    forge_append(log, mac=mac)
    report = verify(log, public_key)
    assert (report.ok, report.chain.first_bad_seq, report.chain.kind) == (False, 9, kind)
    assert report.macs_checked


def test_events_rewritten_and_rechained_after_the_last_checkpoint_are_caught(log, public_key):
    append(log, 3)  # 9..11, after the checkpoint at 8
    rows = events(log)
    prev = rows[8]["prev_hash"]
    for row in rows[8:]:  # edit 9 and re-chain 9..11; their MACs cannot be recomputed
        if row["seq"] == 9:
            row["outcome"] = "refused"
        row["prev_hash"], row["hash"] = prev, event_hash(row, prev)
        prev = row["hash"]
    tampered(log, "DELETE FROM audit_events WHERE seq >= 9")
    reinsert(log, rows[8:])
    report = verify(log, public_key)
    assert (report.ok, report.chain.first_bad_seq, report.chain.kind) == (False, 9, "forged")


def test_events_from_before_the_mac_verify_and_are_vouched_for_by_the_first_keyed_one(db, public_key):
    """Migration 0008 leaves old events as they were (no MAC); the first keyed
    event after them covers them through its prev_hash; an unkeyed event after a
    keyed one is refused."""
    old = events_from_before_macs((1, 2, 3))
    reinsert(db, old)
    append(db, 2)
    report = verify(db, public_key)
    assert report.ok and report.chain.events_checked == 5
    assert (report.chain.first_keyed_seq, report.chain.last_unkeyed_seq) == (4, 3)
    forge_append(db, mac=None)
    report = verify(db, public_key)
    assert (report.ok, report.chain.first_bad_seq, report.chain.kind) == (False, 6, "unkeyed")


def test_without_the_event_key_the_report_says_macs_were_not_checked(log, public_key):
    forge_append(log, mac=None)
    with log.reading() as session:
        report = verify_log_with_checkpoints(session, public_key)
    assert report.ok and not report.macs_checked and report.as_dict()["macs_checked"] is False


def test_the_cli_checks_macs_with_the_gateways_key(log, database_url, keys_dir, tmp_path):
    forge_append(log, mac=None)
    key_file = tmp_path / "subject.key"
    key_file.write_text((b"t" * 32).hex())  # AUDIT's subject key, as `keys init` writes one
    config = tmp_path / "settings.toml"
    config.write_text(f'[audit]\nsubject_key_file = "{key_file}"\ncheckpoint_file = "{tmp_path / "none.jsonl"}"\n')
    result = CliRunner().invoke(main, ["audit", "verify", "--public-key", str(keys_dir / "checkpoint-ed25519.pub.pem")],
                                env={"GATEWAY_DATABASE_URL": database_url, "GATEWAY_CONFIG": str(config)})
    assert result.exit_code == 1, result.output
    assert "BROKEN at event 9 [unkeyed]" in result.output


# --- checkpoints chained, and kept outside the database --------------------------


def checkpoint_out(db, key, copy):
    """A checkpoint, written as the writer does: the database, then the outside file."""
    written = checkpoint(db, key)
    append_checkpoint(copy, written)
    return written


def verify_with(db, public_key, copy=None, *, event_key=AUDIT.event_key, **kw):
    outside = load_checkpoint_file(copy) if copy else None
    with db.reading() as session:
        one = verify_log_with_checkpoints(session, public_key, batch=4, event_key=event_key, outside=outside, **kw)
        split = verify_log_with_checkpoints(session, public_key, workers=2, event_key=event_key, outside=outside, **kw)
    assert split == one
    return one


@pytest.fixture
def copy(tmp_path):
    return tmp_path / "outside" / "audit-checkpoints.jsonl"


@pytest.fixture
def sealed(db, signing_key, copy):
    """Eight events, checkpoints at 4 and 8, each also in the outside file."""
    append(db, 4)
    checkpoint_out(db, signing_key, copy)
    append(db, 4)
    checkpoint_out(db, signing_key, copy)
    return db


def test_checkpoints_are_chained_and_copied_outside(sealed, public_key, copy):
    with sealed.reading() as session:
        first, second = load_checkpoints(session)
    assert (first["number"], second["number"]) == (1, 2)
    assert first["prev_checkpoint_hash"] == GENESIS_HASH and second["prev_checkpoint_hash"] == checkpoint_hash(first)
    lines = copy.read_text().splitlines()
    assert [json.loads(line)["signature"] for line in lines] == [first["signature"], second["signature"]]
    report = verify_with(sealed, public_key, copy)
    assert report.ok and report.outside_checkpoints == 2 and report.checkpoints_checked == 2


def test_deleting_the_newest_events_and_their_checkpoint_is_caught_with_the_outside_copy(sealed, signing_key,
                                                                                         public_key, copy):
    append(sealed, 3)
    checkpoint_out(sealed, signing_key, copy)  # at 11
    tampered(sealed, "DELETE FROM audit_events WHERE seq >= 10", "DELETE FROM audit_checkpoints WHERE seq = 11")
    assert verify_with(sealed, public_key).ok  # the database alone shows nothing: the report
    report = verify_with(sealed, public_key, copy)
    assert (report.ok, report.chain.first_bad_seq, report.chain.kind) == (False, 10, "truncated")


def test_deleting_the_newest_events_that_no_checkpoint_covers_leaves_the_rest_unsealed(sealed, public_key):
    append(sealed, 3)  # 9..11: the writer has stopped, no checkpoint covers them
    tampered(sealed, "DELETE FROM audit_events WHERE seq = 11")
    later = utc_now() + timedelta(seconds=120)
    report = verify_with(sealed, public_key, unsealed_after_seconds=60, now=later)
    assert report.ok and not report.sealed and report.unsealed_events == 2
    assert report.as_dict()["sealed"] is False and report.as_dict()["unsealed_events"] == 2
    assert verify_with(sealed, public_key, unsealed_after_seconds=60).sealed  # younger than the bound: not yet


def test_rewriting_under_deleted_checkpoints_is_caught(sealed, public_key, copy):
    """Events 5..8 rewritten and re-chained, the checkpoint at 8 deleted: only
    the checkpoint at 4 is left, and it still matches."""
    rows = events(sealed)
    prev = rows[4]["prev_hash"]
    for row in rows[4:]:
        row["outcome"] = "refused"
        row["prev_hash"], row["hash"] = prev, event_hash(row, prev)
        prev = row["hash"]
    tampered(sealed, "DELETE FROM audit_events WHERE seq >= 5", "DELETE FROM audit_checkpoints WHERE seq = 8")
    reinsert(sealed, rows[4:])
    keyed = verify_with(sealed, public_key)  # the MACs no longer match, even without the copy
    assert (keyed.ok, keyed.chain.first_bad_seq, keyed.chain.kind) == (False, 5, "forged")
    offline = verify_with(sealed, public_key, copy, event_key=None)  # an auditor without the key, with the copy
    assert (offline.ok, offline.chain.first_bad_seq, offline.chain.kind) == (False, 5, "rewritten")
    assert (verify_with(sealed, public_key, copy).chain.kind) == "rewritten"


def test_a_checkpoint_deleted_from_among_the_others_breaks_their_chain(sealed, signing_key, public_key):
    append(sealed, 2)
    checkpoint(sealed, signing_key)  # number 3, at 10
    tampered(sealed, "DELETE FROM audit_checkpoints WHERE seq = 8")
    report = verify_with(sealed, public_key)
    assert (report.ok, report.chain.first_bad_seq, report.chain.kind) == (False, 10, "checkpoint_missing")


def test_only_the_newest_checkpoint_deleted_is_caught_with_the_outside_copy(sealed, public_key, copy):
    tampered(sealed, "DELETE FROM audit_checkpoints WHERE seq = 8")
    assert verify_with(sealed, public_key).ok
    report = verify_with(sealed, public_key, copy)
    assert (report.ok, report.chain.first_bad_seq, report.chain.kind) == (False, 8, "checkpoint_missing")


def test_checkpoints_written_anew_after_deleting_the_newest_fork_their_chain(sealed, signing_key, public_key, copy):
    tampered(sealed, "DELETE FROM audit_checkpoints WHERE seq = 8")
    append(sealed, 1)
    checkpoint_out(sealed, signing_key, copy)  # number 2 again, at 9
    report = verify_with(sealed, public_key, copy)
    assert (report.ok, report.chain.kind) == (False, "checkpoint_forked")


def test_checkpoints_from_before_the_chain_verify_and_the_first_chained_one_links_to_them(db, signing_key,
                                                                                          public_key):
    append(db, 3)
    rows = events(db)
    old = sign_checkpoint(signing_key, seq=3, head_hash=rows[2]["hash"], event_count=3, signed_at=utc_now())
    with db.engine.begin() as conn:
        conn.execute(sa.insert(AuditCheckpoint.__table__), [old])
    append(db, 2)
    chained = checkpoint(db, signing_key)
    assert (chained["number"], chained["prev_checkpoint_hash"]) == (2, checkpoint_hash(old))
    assert verify_with(db, public_key).ok
    tampered(db, "DELETE FROM audit_checkpoints WHERE seq = 3")
    report = verify_with(db, public_key)
    assert (report.ok, report.chain.kind) == (False, "checkpoint_missing")


def test_a_torn_last_line_is_left_out_and_the_api_form_is_read_too(sealed, public_key, copy):
    text = copy.read_text()
    copy.write_text(text + '{"seq": 9, "head_')  # a crash in the middle of an append
    assert len(load_checkpoint_file(copy)) == 2
    records = [json.loads(line) for line in text.splitlines()]
    api_form = copy.with_name("checkpoints.json")
    api_form.write_text(json.dumps({"checkpoints": records}))
    assert verify_with(sealed, public_key, api_form).outside_checkpoints == 2
    copy.write_text('not json\n' + text)
    with pytest.raises(CheckpointFileError, match="line 1"):
        load_checkpoint_file(copy)


def _verify_cli(database_url, keys_dir, tmp_path, *args, bound=60.0):
    key_file = tmp_path / "subject.key"
    key_file.write_text((b"t" * 32).hex())
    config = tmp_path / "verify.toml"
    config.write_text(f'[audit]\nsubject_key_file = "{key_file}"\ncheckpoint_file = "{tmp_path / "none.jsonl"}"\n'
                      f"unsealed_after_seconds = {bound}\n")
    return CliRunner().invoke(main, ["audit", "verify", "--public-key", str(keys_dir / "checkpoint-ed25519.pub.pem"),
                                     *args], env={"GATEWAY_DATABASE_URL": database_url, "GATEWAY_CONFIG": str(config)})


def test_cli_holds_the_database_against_the_outside_copy(sealed, signing_key, database_url, keys_dir, tmp_path, copy):
    ok = _verify_cli(database_url, keys_dir, tmp_path, "--checkpoints", str(copy))
    assert ok.exit_code == 0, ok.output
    assert "2 checkpoints (last at event 8), 2 from the outside copy" in ok.output
    tampered(sealed, "DELETE FROM audit_events WHERE seq >= 7", "DELETE FROM audit_checkpoints WHERE seq = 8")
    alone = _verify_cli(database_url, keys_dir, tmp_path)
    assert alone.exit_code == 0, alone.output  # the database alone shows nothing: what the issue reported
    broken = _verify_cli(database_url, keys_dir, tmp_path, "--checkpoints", str(copy))
    assert broken.exit_code == 1
    assert "BROKEN at event 7 [truncated]" in broken.output


def test_cli_exits_3_when_events_wait_unsealed_longer_than_the_bound(sealed, database_url, keys_dir, tmp_path, copy):
    append(sealed, 2)
    result = _verify_cli(database_url, keys_dir, tmp_path, "--checkpoints", str(copy), bound=0.0)
    assert result.exit_code == 3, result.output
    assert "verified: 10 events" in result.output and "UNSEALED [unsealed]: 2 events" in result.output
    assert _verify_cli(database_url, keys_dir, tmp_path, "--checkpoints", str(copy)).exit_code == 0
