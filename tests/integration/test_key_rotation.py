"""Key rotation on a running gateway (`gateway keys rotate --token|--checkpoint`).

Tokens: the new key signs at once, the old one verifies for its grace period (the
JWKS holds both), then tokens it signed are refused; no restart. Checkpoints: the
next checkpoint is signed with the new key, and `audit verify` holds every
checkpoint against the key it names, the retired ones included.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from conftest import issue_token
from gateway.auth.keys import read_checkpoint_public_keys, rotate_checkpoint_key, rotate_token_key
from gateway.settings import load_settings


@pytest.fixture
def own_keys(overrides, keys_dir, tmp_path):
    """A copy of the test keys that this test may rotate (the shared ones stay as they are)."""
    mine = tmp_path / "keys"
    shutil.copytree(keys_dir, mine)
    for section, values in overrides.items():
        if isinstance(values, dict):
            for key, value in list(values.items()):
                if isinstance(value, str) and value.startswith(str(keys_dir)):
                    values[key] = str(mine / Path(value).relative_to(keys_dir))
    return mine


@pytest.fixture
def app(overrides, own_keys):
    from gateway.app import create_app

    application = create_app(overrides)
    yield application
    application.extensions["db"].dispose()


def _status(api, token):
    return api.get("/api/v1/requests", token=token).status_code


def test_a_token_key_is_rotated_without_a_restart_and_the_old_one_retires_after_its_grace(api, app):
    settings = app.config["SETTINGS"]
    before = issue_token(settings, role="court_officer", sub="officer.wang", court="330102")
    kept_unused = issue_token(settings, role="court_officer", sub="officer.wang", court="330102")
    assert _status(api, before) == 200

    old_kid, new_kid = rotate_token_key(settings, grace_seconds=3600)
    assert old_kid != new_kid
    after = issue_token(settings, role="court_officer", sub="officer.wang", court="330102")
    assert _status(api, after) == 200          # the running gateway took the new key
    assert _status(api, kept_unused) == 200    # the old key verifies during its grace

    another_unused = issue_token(settings, role="court_officer", sub="officer.wang", court="330102")
    rotate_token_key(settings, grace_seconds=0)  # both earlier keys retire now
    newest = issue_token(settings, role="court_officer", sub="officer.wang", court="330102")
    assert _status(api, newest) == 200
    refused = api.get("/api/v1/requests", token=another_unused)
    assert refused.status_code == 401 and "retired key" in refused.json()["error"]["message"]
    # A token the gateway verified and remembers before the rotation ends with its key too,
    # once the verifier looks at the key file again (at most a second later).
    time.sleep(1.1)
    refused = api.get("/api/v1/requests", token=before)
    assert refused.status_code == 401 and "retired key" in refused.json()["error"]["message"]


def test_a_checkpoint_key_is_rotated_and_every_checkpoint_still_verifies(api, app):
    settings = app.config["SETTINGS"]
    auditor = api.token(role="auditor", sub="auditor.sun", court=None)
    writer = app.extensions["audit_checkpoints"]
    api.register_case()
    first = writer.write_now(force=True)
    old_id, new_id = rotate_checkpoint_key(settings)
    api.register_case()  # more events
    second = writer.write_now(force=True)
    assert (first["key_id"], second["key_id"]) == (old_id, new_id)  # signed with the new key, no restart

    verdict = api.get("/api/v1/audit/verify", token=auditor).json()
    assert verdict["ok"] and verdict["checkpoints_checked"] >= 2, verdict
    assert set(read_checkpoint_public_keys(settings)) == {old_id, new_id}

    # A verifier that holds only the new public key cannot vouch for the older checkpoints.
    from audit.checkpoint_store import verify_log_with_checkpoints
    from gateway.auth.keys import read_checkpoint_public_key

    with app.extensions["db"].reading() as session:
        report = verify_log_with_checkpoints(session, read_checkpoint_public_key(settings))
    assert not report.ok and report.chain.kind == "foreign_key"


def test_keys_init_force_keeps_the_old_checkpoint_key_and_the_subject_key(overrides, own_keys):
    from gateway.auth.keys import init_keys, read_subject_key

    settings = load_settings(overrides, environ={})
    subject_key = read_subject_key(settings)
    before = set(read_checkpoint_public_keys(settings))
    init_keys(settings, force=True)
    after = read_checkpoint_public_keys(settings)
    assert before < set(after) and len(after) == len(before) + 1
    assert read_subject_key(settings) == subject_key  # it keys the audit log's hashes and MACs
