"""gateway.deliveries.channels: turning an agency's [agency.options] into transport arguments."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.deliveries.channels import transport_options
from gateway.errors import ConfigError
from gateway.registry import Agency
from schemas.xml import WSDL_DIR


def agency(transport: str, **options) -> Agency:
    return Agency(
        id="bank-a", kind="bank", name="Bank A", transport=transport, endpoint="http://127.0.0.1:1/soap",
        categories=("deposit",), actions=("inquiry",), deadlines={"inquiry": 60}, concurrency=1,
        rate_limit_per_second=1.0, timeout_seconds=1.0, options=options,
    )


def test_a_wsdl_name_is_looked_up_in_schemas(tmp_path: Path) -> None:
    (WSDL_DIR / "unit-test-v1.wsdl").write_text("<definitions/>")
    try:
        options = transport_options(agency("soap", wsdl="unit-test-v1"), tmp_path)
    finally:
        (WSDL_DIR / "unit-test-v1.wsdl").unlink()
    assert options == {"wsdl": str(WSDL_DIR / "unit-test-v1.wsdl")}


def test_paths_are_relative_to_the_registry_file(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "client.pem").write_text("x")
    (tmp_path / "local.wsdl").write_text("<definitions/>")
    options = transport_options(agency("soap", wsdl="local.wsdl", client_key="keys/client.pem", verify=False), tmp_path)
    assert options == {"wsdl": str(tmp_path / "local.wsdl"), "client_key": str(tmp_path / "keys" / "client.pem"), "verify": False}


def test_a_missing_file_stops_the_gateway_naming_the_agency(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"agency 'bank-a': options.client_key: no file at .*absent.pem"):
        transport_options(agency("sftp", client_key="absent.pem", host_key="ssh-ed25519 AAAA"), tmp_path)
    with pytest.raises(ConfigError, match=r"agency 'bank-a': options.wsdl: no WSDL file at"):
        transport_options(agency("soap", wsdl="no-such-agency-v9"), tmp_path)


def test_a_password_comes_from_the_variable_named(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BANK_A_SOAP_PASSWORD", "s3cret")
    (tmp_path / "a.wsdl").write_text("<definitions/>")
    options = transport_options(agency("soap", wsdl="a.wsdl", username="court", password_env="BANK_A_SOAP_PASSWORD"), tmp_path)
    assert (options["username"], options["password"]) == ("court", "s3cret")
    assert "password_env" not in options
    monkeypatch.delenv("BANK_A_SOAP_PASSWORD")
    with pytest.raises(ConfigError, match="environment variable BANK_A_SOAP_PASSWORD is not set"):
        transport_options(agency("soap", wsdl="a.wsdl", password_env="BANK_A_SOAP_PASSWORD"), tmp_path)
