"""The two SFTP servers the transport's tests run against: Debian's OpenSSH sshd
(internal-sftp) and the project's paramiko sandbox, behind one small handle.

sshd is installed with apt-get when missing (CI must run these tests, never skip
them); if it cannot be installed the tests FAIL saying so.
"""

from __future__ import annotations

import getpass
import itertools
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from sandboxes.sftp_server import SftpSandbox
from system_packages import apt_install

SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/bin/sshd")
_counter = itertools.count(1)


@dataclass
class SftpServer:
    """What a test needs of a server: where to point the transport and how to look behind it."""

    kind: str
    port: int
    host_key_line: str
    username: str
    _new_base: Callable[[], tuple[str, Path]]  # (path as the server names it, real path)
    accepted_connections: Callable[[], int]
    drop_connections: Callable[[], None]
    _bases: list[Path] = field(default_factory=list)

    def new_base(self) -> tuple[str, Path]:
        """A fresh, empty base folder: its name on the server and its real path here."""
        remote, real = self._new_base()
        real.mkdir(parents=True)
        return remote, real

    def endpoint(self, remote_base: str) -> str:
        return f"sftp://{self.username}@127.0.0.1:{self.port}{remote_base}"


def find_or_install_sshd() -> str:
    def found() -> str | None:
        return next((c for c in SSHD_CANDIDATES if os.access(c, os.X_OK)), None)

    output = apt_install(["openssh-server"], lambda: found() is not None, recommends=False)
    sshd = found()
    if sshd is None:
        pytest.fail(
            "OpenSSH's sshd is required for the SFTP interop tests and could not be installed "
            f"with apt-get install openssh-server:\n{output}",
            pytrace=False,
        )
    return sshd


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _children_of(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(entry.name))
    return children


def start_sshd(workdir: Path, client_public_lines: list[str]) -> tuple[subprocess.Popen, SftpServer]:
    sshd = find_or_install_sshd()
    workdir.mkdir(parents=True, exist_ok=True)
    host_key = workdir / "ssh_host_ed25519_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True)
    (workdir / "authorized_keys").write_text("".join(line + "\n" for line in client_public_lines))
    files = workdir / "files"
    files.mkdir()
    port = free_port()
    config = workdir / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}",
        "ListenAddress 127.0.0.1",
        f"HostKey {host_key}",
        f"PidFile {workdir / 'sshd.pid'}",
        f"AuthorizedKeysFile {workdir / 'authorized_keys'}",
        "StrictModes no",
        "UsePAM no",
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PubkeyAuthentication yes",
        "Subsystem sftp internal-sftp",
        "LogLevel VERBOSE",
        "",
    ]))
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
    log_path = workdir / "sshd.log"
    log_file = log_path.open("wb")
    process = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stdout=log_file, stderr=log_file)
    deadline = time.monotonic() + 15
    while True:
        if process.poll() is not None:
            pytest.fail(f"sshd exited with {process.returncode}:\n{log_path.read_text()[-3000:]}", pytrace=False)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"sshd did not listen on port {port}:\n{log_path.read_text()[-3000:]}", pytrace=False)
            time.sleep(0.05)

    def new_base() -> tuple[str, Path]:
        real = files / f"t{next(_counter)}"
        return str(real), real

    def accepted() -> int:
        return log_path.read_text(errors="replace").count("Accepted publickey")

    def drop() -> None:
        # Each connection is a child process of the listening sshd (ours, started above).
        for child in _children_of(process.pid):
            os.kill(child, signal.SIGTERM)

    server = SftpServer("sshd", port, (host_key.with_suffix(".pub")).read_text().strip(), getpass.getuser(),
                        new_base, accepted, drop)
    return process, server


def stop_sshd(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def start_sandbox(workdir: Path, client_public_lines: list[str]) -> tuple[SftpSandbox, SftpServer]:
    root = workdir / "root"
    sandbox = SftpSandbox(root, workdir / "host_key", client_public_lines).start()

    def new_base() -> tuple[str, Path]:
        name = f"t{next(_counter)}"
        return f"/{name}", root / name

    def accepted() -> int:
        return sandbox.connections_accepted

    server = SftpServer("paramiko", sandbox.port, sandbox.host_key_line, "gateway", new_base, accepted,
                        sandbox.drop_connections)
    return sandbox, server


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
