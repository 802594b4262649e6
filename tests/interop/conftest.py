"""Fixtures for the SFTP transport's tests: a client key, and two real servers
(OpenSSH's sshd and the paramiko sandbox) that every test runs against."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import paramiko
import pytest
from sftp_servers import SftpServer, start_sandbox, start_sshd, stop_sshd

from sandboxes.sftp_server import generate_ed25519_key, public_key_line


@pytest.fixture(scope="session")
def client_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(private key path, public key line), made for this run and kept in a temp dir."""
    path = tmp_path_factory.mktemp("client-key") / "id_ed25519"
    generate_ed25519_key(path)
    return str(path), public_key_line(paramiko.PKey.from_path(path))


@pytest.fixture(scope="session")
def sshd_server(tmp_path_factory: pytest.TempPathFactory, client_key: tuple[str, str]) -> Iterator[SftpServer]:
    process, server = start_sshd(tmp_path_factory.mktemp("sshd"), client_key[1])
    yield server
    stop_sshd(process)


@pytest.fixture(scope="session")
def sandbox_server(tmp_path_factory: pytest.TempPathFactory, client_key: tuple[str, str]) -> Iterator[SftpServer]:
    sandbox, server = start_sandbox(tmp_path_factory.mktemp("sftp-sandbox"), client_key[1])
    yield server
    sandbox.stop()


@pytest.fixture(params=["sshd", "paramiko"])
def sftp_server(request: pytest.FixtureRequest) -> SftpServer:
    return request.getfixturevalue("sshd_server" if request.param == "sshd" else "sandbox_server")
