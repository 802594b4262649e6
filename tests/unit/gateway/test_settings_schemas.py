"""gateway.settings' typed section loading: a marshmallow schema per section, made
from the section dataclass (bools, optional fields, refusals naming the setting)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import pytest
from marshmallow import ValidationError

from gateway import settings as settings_module
from gateway.errors import ConfigError
from gateway.settings import load_settings, section_schema
from test_settings import config_file  # noqa: F401 (fixture)




@dataclass(frozen=True)
class _Example:
    name: str
    retries: int
    enabled: bool = False
    ca_file: str | None = None
    wait_seconds: float | None = None
    tags: list[str] = field(default_factory=list)


def test_every_section_has_a_schema_with_a_field_per_setting() -> None:
    for name, cls in settings_module._SECTIONS.items():
        assert set(settings_module._SCHEMAS[name].fields) == {f.name for f in fields(cls)}, name


def test_toml_true_and_false_load_as_bools_from_a_file(config_file) -> None:
    path = config_file('[console]\ntoken_login = false\n')
    assert load_settings(environ={"GATEWAY_CONFIG": path}).console.token_login is False
    path = config_file('[console]\ntoken_login = true\n')
    assert load_settings(environ={"GATEWAY_CONFIG": path}).console.token_login is True


@pytest.mark.parametrize("written", ['"true"', '"false"', "1", "0", '"yes"'])
def test_a_bool_setting_refuses_strings_and_numbers_from_a_file(config_file, written: str) -> None:
    path = config_file(f"[console]\ntoken_login = {written}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"GATEWAY_CONFIG": path})
    value = {'"true"': "true", '"false"': "false", "1": 1, "0": 0, '"yes"': "yes"}[written]
    assert str(info.value) == f"setting console.token_login must be of type bool, got {value!r}"


def test_the_environment_overrides_no_bool_only_the_database_url(config_file) -> None:
    # GATEWAY_DATABASE_URL is the one setting the environment sets, and it is a string.
    path = config_file('[console]\ntoken_login = true\n')
    loaded = load_settings(environ={"GATEWAY_CONFIG": path, "GATEWAY_DATABASE_URL": "sqlite:///env.db",
                                    "GATEWAY_CONSOLE_TOKEN_LOGIN": "false"})
    assert loaded.database.url == "sqlite:///env.db"
    assert loaded.console.token_login is True


def test_top_level_testing_must_be_a_bool(config_file) -> None:
    assert load_settings({"testing": True}, environ={}).testing is True
    path = config_file('testing = "no"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"GATEWAY_CONFIG": path})
    assert str(info.value) == f"{path}: setting testing must be of type bool, got 'no'"


def test_optional_fields_may_be_left_out_and_take_their_defaults() -> None:
    loaded = section_schema(_Example).load({"name": "bank-a", "retries": 3})
    assert loaded == {"name": "bank-a", "retries": 3, "enabled": False, "ca_file": None, "wait_seconds": None,
                      "tags": []}
    assert _Example(**loaded).tags == []


def test_optional_fields_take_a_value_of_their_type_and_refuse_others() -> None:
    schema = section_schema(_Example)
    loaded = schema.load({"name": "n", "retries": 1, "ca_file": "/etc/ca.pem", "wait_seconds": 2, "enabled": True})
    assert (loaded["ca_file"], loaded["wait_seconds"], loaded["enabled"]) == ("/etc/ca.pem", 2, True)
    for key, bad in (("ca_file", 5), ("wait_seconds", "2"), ("enabled", "true"), ("tags", ["a", 1])):
        with pytest.raises(ValidationError) as info:
            schema.load({"name": "n", "retries": 1, key: bad})
        assert isinstance(info.value.messages, dict) and key in info.value.messages


def test_a_required_setting_left_out_is_named_with_its_type(monkeypatch) -> None:
    merged = settings_module._read_toml(settings_module.DEFAULTS_FILE)
    del merged["workers"]["threads"]
    monkeypatch.setattr(settings_module, "_read_toml", lambda path: merged)
    with pytest.raises(ConfigError) as info:
        load_settings(environ={})
    assert str(info.value) == "setting workers.threads is missing (required, of type int)"


def test_each_bad_value_of_a_section_is_named_in_one_error() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({"workers": {"threads": "4", "batch_size": True, "poll_interval_seconds": "1"}}, environ={})
    assert str(info.value) == ("setting workers.threads must be of type int, got '4'; "
                               "setting workers.poll_interval_seconds must be of type float, got '1'; "
                               "setting workers.batch_size must be of type int, got True")


def test_a_value_that_fits_its_type_still_meets_the_sections_rule() -> None:
    with pytest.raises(ConfigError, match=r"setting auth\.login_failures_per_user must be at least 1, got 0"):
        load_settings({"auth": {"login_failures_per_user": 0}}, environ={})
