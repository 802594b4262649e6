"""gateway.auth.lockout's pure parts: how long a lockout lasts, what the audit log keeps of a name tried."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from gateway.auth.lockout import audited_name, locked_for, user_key
from gateway.errors import ConfigError
from gateway.settings import load_settings

NOW = datetime(2026, 12, 7, 2, 0, tzinfo=timezone.utc)
WINDOW = timedelta(minutes=10)


def test_fewer_failures_than_the_limit_lock_nothing():
    assert locked_for([NOW - timedelta(seconds=5)] * 2, 3, WINDOW, NOW) is None


def test_the_lockout_lasts_until_the_limit_th_newest_failure_leaves_the_window():
    newest_first = [NOW - timedelta(seconds=s) for s in (10, 100, 400)]
    assert locked_for(newest_first, 3, WINDOW, NOW) == 200  # the failure 400 s ago leaves in 200 s
    assert locked_for(newest_first, 2, WINDOW, NOW) == 500
    assert locked_for([NOW - WINDOW + timedelta(milliseconds=10)], 1, WINDOW, NOW) == 1  # never 0


def test_the_audited_name_is_bounded_and_masks_identity_numbers_anywhere():
    assert audited_name("bank-c") == "bank-c"
    assert audited_name("330102198703151157") == "3301**********1157"
    assert audited_name("u330102198703151157x") == "u3301**********1157x"
    assert audited_name("y" * 100) == "y" * 64 + "…"
    assert audited_name("y" * 50 + "330102198703151157") == "y" * 50 + "3301**********"[:14] + "…"  # cut, masked first
    assert user_key("bank-c") != user_key("Bank-C") and len(user_key("x" * 10_000)) == 64


def test_login_limits_below_one_stop_the_gateway_naming_the_setting():
    assert load_settings(environ={}).auth.login_failures_per_user == 5
    with pytest.raises(ConfigError, match="auth.login_failure_window_seconds must be at least 1, got 0"):
        load_settings({"auth": {"login_failure_window_seconds": 0}}, environ={})
