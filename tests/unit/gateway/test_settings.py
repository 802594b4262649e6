"""gateway.settings: defaults, GATEWAY_CONFIG, GATEWAY_DATABASE_URL, overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.settings import CONFIG_DIR, load_settings


@pytest.fixture
def config_file(tmp_path: Path):
    def _write(text: str) -> str:
        path = tmp_path / "gateway.toml"
        path.write_text(text, encoding="utf-8")
        return str(path)

    return _write


def test_defaults_from_settings_toml() -> None:
    s = load_settings(environ={})
    assert s.testing is False
    assert s.gateway.instance_dir == "instance"
    assert s.gateway.agencies_file == ""
    assert s.gateway.max_content_length == 1048576
    assert s.gateway.log_level == "INFO"
    assert s.database.url == ""
    assert s.auth.issuer == "enforcement-gateway"
    assert s.auth.algorithms == ["ES256", "EdDSA", "RS256"]
    assert s.auth.leeway_seconds == 30
    assert s.workers.threads == 4
    assert s.workers.max_attempts == 8
    assert s.workers.backoff_base_seconds == 2.0
    assert s.workers.backoff_cap_seconds == 300.0
    assert s.server.host == "127.0.0.1"
    assert s.server.port == 8080


def test_database_url_defaults_to_sqlite_in_instance_dir(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = load_settings(environ={})
    assert s.instance_path == (tmp_path / "instance").resolve()
    assert s.database_url == f"sqlite:///{(tmp_path / 'instance').resolve() / 'gateway.db'}"


def test_database_url_follows_instance_dir_override(tmp_path: Path) -> None:
    s = load_settings({"gateway": {"instance_dir": str(tmp_path / "inst")}}, environ={})
    assert s.database_url == f"sqlite:///{(tmp_path / 'inst').resolve() / 'gateway.db'}"
    assert s.keys_dir == (tmp_path / "inst").resolve() / "keys"
    assert s.jwks_path == s.keys_dir / "jwks.json"
    assert s.signing_key_path == s.keys_dir / "signing-key.pem"
    assert s.subject_key_path == s.keys_dir / "subject-hash.key"


def test_default_agencies_path_is_the_config_file() -> None:
    assert load_settings(environ={}).agencies_path == CONFIG_DIR / "agencies.toml"
    assert (CONFIG_DIR / "agencies.toml").is_file()


def test_gateway_config_file_overrides_defaults(config_file) -> None:
    path = config_file(
        '[gateway]\nlog_level = "DEBUG"\nagencies_file = "/srv/agencies.toml"\n\n'
        '[workers]\nthreads = 9\nbackoff_cap_seconds = 60\n\n'
        '[auth]\njwks_file = "/srv/jwks.json"\n'
    )
    s = load_settings(environ={"GATEWAY_CONFIG": path})
    assert s.gateway.log_level == "DEBUG"
    assert s.workers.threads == 9
    assert s.workers.backoff_cap_seconds == 60
    assert s.agencies_path == Path("/srv/agencies.toml")
    assert s.jwks_path == Path("/srv/jwks.json")
    # untouched settings keep their defaults
    assert s.workers.max_attempts == 8
    assert s.server.port == 8080


def test_gateway_database_url_overrides_file(config_file) -> None:
    path = config_file('[database]\nurl = "sqlite:////from/file.db"\n')
    assert load_settings(environ={"GATEWAY_CONFIG": path}).database_url == "sqlite:////from/file.db"
    s = load_settings(environ={"GATEWAY_CONFIG": path, "GATEWAY_DATABASE_URL": "postgresql+psycopg://u@h/db"})
    assert s.database.url == "postgresql+psycopg://u@h/db"
    assert s.database_url == "postgresql+psycopg://u@h/db"


def test_empty_environment_values_are_ignored() -> None:
    s = load_settings(environ={"GATEWAY_CONFIG": "", "GATEWAY_DATABASE_URL": ""})
    assert s.database.url == ""


def test_overrides_come_last() -> None:
    s = load_settings(
        {"database": {"url": "sqlite:///override.db"}, "server": {"port": 9000}, "testing": True},
        environ={"GATEWAY_DATABASE_URL": "sqlite:///env.db"},
    )
    assert s.database_url == "sqlite:///override.db"
    assert s.server.port == 9000
    assert s.testing is True


def test_defaults_are_not_shared_between_loads() -> None:
    first = load_settings({"auth": {"algorithms": ["ES256"]}}, environ={})
    second = load_settings(environ={})
    assert first.auth.algorithms == ["ES256"]
    assert second.auth.algorithms == ["ES256", "EdDSA", "RS256"]


def test_environment_is_not_read_when_environ_is_given(monkeypatch) -> None:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", "sqlite:///from-os-environ.db")
    assert load_settings(environ={}).database.url == ""


def test_unknown_section_in_file_is_refused(config_file) -> None:
    path = config_file("[gatway]\nlog_level = \"DEBUG\"\n")
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"GATEWAY_CONFIG": path})
    assert str(info.value).startswith(f"{path}: unknown settings section [gatway]")
    assert "known: gateway, database, auth, audit, workers, server" in str(info.value)


def test_unknown_key_in_file_is_refused(config_file) -> None:
    path = config_file("[workers]\nthread = 3\n")
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"GATEWAY_CONFIG": path})
    message = str(info.value)
    assert message.startswith(f"{path}: unknown setting workers.thread")
    assert "threads" in message


def test_unknown_key_in_overrides_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({"database": {"uri": "sqlite://"}}, environ={})
    assert str(info.value).startswith("create_app overrides: unknown setting database.uri")


def test_unknown_section_in_overrides_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"create_app overrides: unknown settings section \[db\]"):
        load_settings({"db": {"url": "sqlite://"}}, environ={})


def test_section_that_is_not_a_table_is_refused(config_file) -> None:
    path = config_file('database = "sqlite://"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"GATEWAY_CONFIG": path})
    assert str(info.value) == f"{path}: [database] must be a table of settings"


@pytest.mark.parametrize(
    ("section", "key", "value", "type_name"),
    [
        ("workers", "threads", "4", "int"),
        ("workers", "threads", 4.0, "int"),
        ("workers", "threads", True, "int"),
        ("workers", "backoff_cap_seconds", "300", "float"),
        ("server", "port", None, "int"),
        ("gateway", "log_level", 10, "str"),
        ("auth", "algorithms", "ES256", "list[str]"),
    ],
)
def test_wrong_type_is_refused_naming_the_setting(section: str, key: str, value, type_name: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({section: {key: value}}, environ={})
    assert str(info.value) == f"setting {section}.{key} must be of type {type_name}, got {value!r}"


def test_wrong_type_in_file_is_refused(config_file) -> None:
    path = config_file('[server]\nport = "8080"\n')
    with pytest.raises(ConfigError, match=r"setting server\.port must be of type int, got '8080'"):
        load_settings(environ={"GATEWAY_CONFIG": path})


def test_int_is_accepted_for_a_float_setting() -> None:
    assert load_settings({"workers": {"poll_interval_seconds": 1}}, environ={}).workers.poll_interval_seconds == 1


def test_missing_config_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"GATEWAY_CONFIG": str(path)})
    assert str(info.value) == f"{path}: settings file not found"


def test_invalid_toml_config_file_is_refused(config_file) -> None:
    path = config_file("[workers\nthreads = 3\n")
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"GATEWAY_CONFIG": path})
    assert str(info.value).startswith(f"{path}: not valid TOML: ")


def test_settings_are_frozen() -> None:
    s = load_settings(environ={})
    with pytest.raises(AttributeError):
        s.server.port = 1  # type: ignore[misc]


def test_limits_below_one_stop_the_gateway_naming_the_setting() -> None:
    with pytest.raises(ConfigError, match="limits.officer_subjects_per_day must be at least 1, got 0"):
        load_settings({"limits": {"officer_subjects_per_day": 0}}, environ={})


def test_no_proxy_is_trusted_by_default_and_a_wildcard_or_bad_address_is_refused() -> None:
    assert load_settings(environ={}).server.forwarded_allow_ips == []
    assert load_settings({"server": {"forwarded_allow_ips": ["10.0.0.5", "fd00::/8"]}},
                         environ={}).server.forwarded_allow_ips == ["10.0.0.5", "fd00::/8"]
    with pytest.raises(ConfigError, match=r"server.forwarded_allow_ips: '\*' would let any client claim https"):
        load_settings({"server": {"forwarded_allow_ips": ["*"]}}, environ={})
    with pytest.raises(ConfigError, match="server.forwarded_allow_ips: 'proxy.local' is not an IP address or network"):
        load_settings({"server": {"forwarded_allow_ips": ["proxy.local"]}}, environ={})


def test_gunicorn_timeouts_must_exceed_the_longest_agency_call() -> None:
    from gateway.server import timeout_settings

    server = load_settings(environ={}).server
    assert timeout_settings(server, 30.0) == {"timeout": 120, "graceful_timeout": 45}
    with pytest.raises(ConfigError, match=r"server.graceful_timeout_seconds \(45 s\) must exceed the longest agency "
                                          r"call: an agency in the registry has timeout_seconds = 60"):
        timeout_settings(server, 60.0)


def test_gateway_server_trusts_no_forwarded_headers_unless_told_and_sets_its_timeouts() -> None:
    from gateway.server import GatewayServer

    default = GatewayServer(bind="127.0.0.1:0", workers=1, threads=1)
    assert default.cfg.forwarded_allow_ips == []  # gunicorn's own default: 127.0.0.1,::1
    assert (default.cfg.timeout, default.cfg.graceful_timeout) == (120, 45)
    proxied = GatewayServer(bind="127.0.0.1:0", workers=1, threads=1, forwarded_allow_ips=["10.0.0.5"], timeout=90,
                            graceful_timeout=40)
    assert proxied.cfg.forwarded_allow_ips == ["10.0.0.5"]
    assert (proxied.cfg.timeout, proxied.cfg.graceful_timeout) == (90, 40)


def test_bool_settings_take_toml_booleans_only(config_file) -> None:
    path = config_file('[console]\ndemo_provider = true\noidc_issuer = "http://127.0.0.1:8080/console/demo-idp"\n'
                       'token_login = false\n')
    console = load_settings(environ={"GATEWAY_CONFIG": path}).console
    assert console.demo_provider is True and console.token_login is False
    for value in ("yes", 1, 0, None):
        with pytest.raises(ConfigError) as info:
            load_settings({"console": {"token_login": value}}, environ={})
        assert str(info.value) == f"setting console.token_login must be of type bool, got {value!r}"


def test_list_and_table_items_are_type_checked_too() -> None:
    with pytest.raises(ConfigError, match=r"setting console.role_values must be of type dict\[str, str\]"):
        load_settings({"console": {"role_values": {"judge": 1}}}, environ={})
    with pytest.raises(ConfigError, match=r"setting anomalies.office_weekdays must be of type list\[int\]"):
        load_settings({"anomalies": {"office_weekdays": ["1"]}}, environ={})


@pytest.mark.parametrize(("console", "message"), [
    ({"demo_provider": True}, "console.demo_provider needs console.oidc_issuer"),
    ({"role_values": {"sysadmin": "admin"}}, "'sysadmin' maps to 'admin', not a console role"),
    ({"oidc_scopes": ["profile"]}, 'console.oidc_scopes must include "openid"'),
    ({"role_claim": " "}, "console.role_claim must not be empty"),
    ({"session_minutes": 0}, "console.session_minutes must be at least 1"),
])
def test_console_settings_that_cannot_work_stop_the_gateway(console, message) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings({"console": console}, environ={})


def test_freeze_startup_objects_moves_what_is_alive_out_of_the_collectors_generations():
    import gc

    from gateway.server import freeze_startup_objects

    alive = [object()]  # a list is tracked by the collector
    assert any(o is alive for o in gc.get_objects())
    freeze_startup_objects()
    try:
        assert gc.get_freeze_count() > 0
        assert not any(o is alive for o in gc.get_objects())  # frozen: full collections no longer scan it
        later = [object()]
        assert any(o is later for o in gc.get_objects())  # what is made after is collected as before
    finally:
        gc.unfreeze()
