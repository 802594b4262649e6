"""The registry's ``mode``: push (default) or pull, checked at start."""

import pytest

from gateway.errors import ConfigError
from gateway.registry import parse_agency

ENTRY = {"id": "psb", "kind": "public_security", "name": "PSB", "transport": "rest",
         "endpoint": "http://127.0.0.1:1/psb/v1", "categories": ["identity"], "actions": ["inquiry"],
         "deadlines": {"inquiry": 60}}


def test_push_is_the_default_and_pull_is_accepted():
    assert parse_agency(ENTRY, "test", 0).mode == "push"
    assert parse_agency({**ENTRY, "mode": "pull"}, "test", 0).mode == "pull"


def test_an_unknown_mode_stops_the_gateway_naming_it():
    with pytest.raises(ConfigError, match=r"agency\[0\] 'psb': mode must be one of push, pull, got 'poll'"):
        parse_agency({**ENTRY, "mode": "poll"}, "test", 0)
