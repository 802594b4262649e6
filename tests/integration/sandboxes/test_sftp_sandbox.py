"""The SFTP sandbox itself, with a plain paramiko client: its root is a jail, only the
authorized key gets in, and its host key is kept across restarts."""

from __future__ import annotations

import base64
import socket
from pathlib import Path
from typing import Iterator

import paramiko
import pytest

from sandboxes.sftp_server import SftpSandbox, generate_ed25519_key, public_key_line


def client_for(sandbox: SftpSandbox, key_path: Path) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    host_key = paramiko.PKey.from_type_string(*_split(sandbox.host_key_line))
    client.get_host_keys().add(f"[127.0.0.1]:{sandbox.port}", host_key.get_name(), host_key)
    client.connect("127.0.0.1", port=sandbox.port, username="agency-test", key_filename=str(key_path),
                   look_for_keys=False, allow_agent=False, timeout=5)
    return client


def _split(line: str) -> tuple[str, bytes]:
    kind, data = line.split()[:2]
    return kind, base64.b64decode(data)


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    generate_ed25519_key(tmp_path / "client")
    return tmp_path / "client"


@pytest.fixture
def sandbox(tmp_path: Path, keys: Path) -> Iterator[SftpSandbox]:
    line = public_key_line(paramiko.PKey.from_path(keys))
    running = SftpSandbox(tmp_path / "root", tmp_path / "host_key", [line]).start()
    yield running
    running.stop()


def test_paths_outside_the_root_are_refused(sandbox: SftpSandbox, keys: Path, tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("outside the root")
    (tmp_path / "root" / "inside.txt").write_text("inside")
    client = client_for(sandbox, keys)
    sftp = client.open_sftp()
    try:
        assert sftp.listdir("/") == ["inside.txt"]
        assert sftp.listdir("/../..") == ["inside.txt"]  # ".." stops at the root, as in a chroot
        with pytest.raises(FileNotFoundError):
            sftp.open("../secret.txt")  # that is /secret.txt inside the root: there is none
        with pytest.raises(OSError):
            sftp.symlink("/etc/passwd", "/link")  # a link could lead out
        (tmp_path / "root" / "escape").symlink_to(tmp_path)  # planted by someone with local access
        with pytest.raises(PermissionError):
            sftp.listdir("/escape")
        with pytest.raises(PermissionError):
            sftp.open("/escape/secret.txt")
    finally:
        client.close()
    assert (tmp_path / "secret.txt").read_text() == "outside the root"


def test_only_the_authorized_key_gets_in(sandbox: SftpSandbox, tmp_path: Path) -> None:
    generate_ed25519_key(tmp_path / "stranger")
    with pytest.raises(paramiko.AuthenticationException):
        client_for(sandbox, tmp_path / "stranger")
    assert sandbox.auth_refused >= 1


def test_the_host_key_is_generated_once_and_kept(tmp_path: Path, keys: Path) -> None:
    line = public_key_line(paramiko.PKey.from_path(keys))
    first = SftpSandbox(tmp_path / "root", tmp_path / "host_key", [line]).start()
    first_line, port = first.host_key_line, first.port
    first.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    second = SftpSandbox(tmp_path / "root", tmp_path / "host_key", [line]).start()
    try:
        assert second.host_key_line == first_line and first_line.startswith("ssh-ed25519 AAAA")
    finally:
        second.stop()
