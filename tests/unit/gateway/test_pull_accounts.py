"""Pull agencies' accounts: scrypt password hashes, their registry checks, the
`gateway agency hash-password` command, and the run-time TLS certificate."""

from __future__ import annotations

import ssl

import pytest
from click.testing import CliRunner
from cryptography import x509

from gateway.auth.passwords import PasswordChecker, PasswordHashInvalid, hash_password, parse_password_hash
from gateway.cli import main
from gateway.errors import ConfigError
from gateway.registry import load_registry, parse_agency
from gateway.tls import self_signed_certificate, server_ssl_context

ENTRY = {"id": "bank-p", "kind": "bank", "name": "Bank P", "transport": "soap", "mode": "pull",
         "categories": ["deposit"], "actions": ["inquiry"], "deadlines": {"inquiry": 60}}


def test_a_hash_verifies_its_password_only():
    stored = hash_password("s3cret", n=2**10)
    parsed = parse_password_hash(stored)
    assert (parsed.n, parsed.r, parsed.p, len(parsed.salt), len(parsed.key)) == (1024, 8, 1, 16, 32)
    assert hash_password("s3cret", n=2**10) != stored  # a fresh salt each time
    checker = PasswordChecker()
    assert checker.check("s3cret", stored) and checker.check("s3cret", stored)
    assert not checker.check("s3cret ", stored) and not checker.check("", stored)
    assert not checker.check("s3cret", stored.replace("$8$", "$9$"))  # other parameters, other key
    assert not checker.check("s3cret", "scrypt$nonsense")


def test_remembered_successes_are_keyed_by_hash_and_password_not_kept_in_clear():
    checker = PasswordChecker()
    stored = hash_password("s3cret", n=2**10)
    assert checker.check("s3cret", stored)
    assert all(b"s3cret" not in memo for memo in checker._verified)
    assert not checker.check("s3cret", hash_password("other", n=2**10))  # a new hash is checked afresh


@pytest.mark.parametrize("text, problem", [
    ("bcrypt$1$2$3$a$b", "must be scrypt$n$r$p$salt_b64$hash_b64"),
    ("scrypt$x$8$1$AAAA$AAAA", "whole numbers"),
    ("scrypt$1000$8$1$" + "A" * 24 + "$" + "A" * 44, "power of two"),
    ("scrypt$1024$8$1$AAAA$" + "A" * 44, "at least 16 bytes"),
])
def test_a_malformed_hash_is_named(text, problem):
    with pytest.raises(PasswordHashInvalid, match=problem.replace("$", r"\$")):
        parse_password_hash(text)


def test_the_registry_checks_a_pull_agencys_account():
    good = {**ENTRY, "options": {"username": "bank-p", "password_hash": hash_password("x", n=2**10),
                                 "refetch_after_seconds": 30}}
    assert parse_agency(good, "test", 0).options["refetch_after_seconds"] == 30
    with pytest.raises(ConfigError, match="options.username and options.password_hash go together"):
        parse_agency({**ENTRY, "options": {"username": "bank-p"}}, "test", 0)
    with pytest.raises(ConfigError, match=r"options.password_hash: must be scrypt"):
        parse_agency({**ENTRY, "options": {"username": "bank-p", "password_hash": "plain"}}, "test", 0)
    with pytest.raises(ConfigError, match="refetch_after_seconds must be a whole number of seconds above 0"):
        parse_agency({**ENTRY, "options": {"refetch_after_seconds": 0}}, "test", 0)


def test_two_pull_agencies_may_not_share_a_user_name(tmp_path):
    hashed = hash_password("x", n=2**10)
    block = ('[[agency]]\nid = "{id}"\nkind = "bank"\nname = "B"\ntransport = "soap"\nmode = "pull"\n'
             'categories = ["deposit"]\nactions = ["inquiry"]\ndeadlines = {{ inquiry = 60 }}\n'
             'options = {{ username = "same", password_hash = "{hashed}" }}\n')
    path = tmp_path / "agencies.toml"
    path.write_text(block.format(id="b1", hashed=hashed) + block.format(id="b2", hashed=hashed))
    with pytest.raises(ConfigError, match="agency\\[1\\] 'b2': options.username 'same' is used by an earlier pull agency"):
        load_registry(path)


def test_hash_password_reads_stdin_and_prints_a_hash_that_verifies():
    result = CliRunner().invoke(main, ["agency", "hash-password"], input="s3cret\n")
    assert result.exit_code == 0, result.output
    stored = result.output.strip()
    assert stored.startswith("scrypt$16384$8$1$") and "s3cret" not in result.output
    assert PasswordChecker().check("s3cret", stored)
    assert CliRunner().invoke(main, ["agency", "hash-password"], input="\n").exit_code == 2


def test_a_self_signed_certificate_for_loopback_is_made_at_run_time(tmp_path):
    files = self_signed_certificate(tmp_path)
    certificate = x509.load_pem_x509_certificate(files.certfile.read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert [str(i) for i in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert files.keyfile.stat().st_mode & 0o077 == 0
    assert isinstance(server_ssl_context(files), ssl.SSLContext)


def test_gateway_server_serves_https_when_given_a_certificate(tmp_path):
    from gateway.server import GatewayServer

    files = self_signed_certificate(tmp_path)
    server = GatewayServer(bind="127.0.0.1:0", workers=1, threads=1, certfile=str(files.certfile),
                           keyfile=str(files.keyfile))
    assert server.cfg.certfile == str(files.certfile) and server.cfg.is_ssl
