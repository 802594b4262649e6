"""`gateway sandbox` and `gateway serve` started separately work together: the default
registry points at the ports, paths and SSH host key the sandboxes use by default."""

from urllib.parse import urlparse

from gateway.auth.passwords import PasswordChecker

from gateway.registry import load_registry
from gateway.settings import CONFIG_DIR
from sandboxes import polling_bank
from sandboxes.run import (
    ALL,
    HTTP_SANDBOXES,
    POLLING_SANDBOXES,
    SFTP_HOST_KEY,
    SFTP_PORT,
    SFTP_SANDBOXES,
    SFTP_USER,
)


def test_every_default_agency_has_a_sandbox_where_the_registry_looks():
    registry = load_registry(CONFIG_DIR / "agencies.toml")
    assert sorted(a.id for a in registry if a.mode == "push") == sorted(ALL)
    assert sorted(a.id for a in registry if a.mode == "pull") == sorted(POLLING_SANDBOXES) == ["bank-c"]
    for agency in registry:
        if agency.mode == "pull":
            continue
        endpoint = urlparse(agency.endpoint)
        assert endpoint.hostname == "127.0.0.1"
        if agency.id in HTTP_SANDBOXES:
            port, prefix, _ = HTTP_SANDBOXES[agency.id]
            assert (endpoint.port, endpoint.path) == (port, prefix), agency.id
        else:
            folder, _ = SFTP_SANDBOXES[agency.id]
            assert (endpoint.username, endpoint.port, endpoint.path) == (SFTP_USER, SFTP_PORT, f"/{folder}"), agency.id


def test_the_registry_pins_the_sandbox_host_key_and_uses_the_demo_client_key():
    registry = load_registry(CONFIG_DIR / "agencies.toml")
    published = (SFTP_HOST_KEY.parent / (SFTP_HOST_KEY.name + ".pub")).read_text().split()[:2]
    for agency in registry:
        if agency.transport == "sftp":
            assert agency.options["host_key"].split() == published
            assert (CONFIG_DIR / agency.options["client_key"]).is_file()


def test_the_polling_bank_logs_in_with_the_published_demo_password_the_registry_hashes():
    bank_c = load_registry(CONFIG_DIR / "agencies.toml").get("bank-c")
    assert bank_c.options["username"] == polling_bank.DEMO_USERNAME
    checker = PasswordChecker()
    assert checker.check(polling_bank.DEMO_PASSWORD, bank_c.options["password_hash"])
    assert not checker.check(polling_bank.DEMO_PASSWORD + "x", bank_c.options["password_hash"])
