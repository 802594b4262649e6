"""An SFTP server on loopback, for the agencies that take batch files (the agency side).

``SftpSandbox`` is paramiko's server side: public-key authentication against the
given authorized keys only, an SFTP subsystem rooted in one folder (paths that
would leave it are refused), a listening thread and one thread per connection.
What the agency does with the files it receives is ``BatchAgencyProcessor``'s
job (``sandboxes/batch_agency.py``), which works on the same folder.

Imports ``schemas`` at most; never ``adapters`` or ``gateway``.
"""

from __future__ import annotations

import base64
import logging
import os
import posixpath
import socket
import threading
from pathlib import Path
from typing import IO, Any

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paramiko.common import AUTH_FAILED, AUTH_SUCCESSFUL, OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED, OPEN_SUCCEEDED
from paramiko.sftp import SFTP_FAILURE, SFTP_OK, SFTP_OP_UNSUPPORTED, SFTP_PERMISSION_DENIED

from sandboxes.batch_agency import BatchAgencyProcessor

__all__ = ["BatchAgencyProcessor", "SftpSandbox", "generate_ed25519_key", "public_key_line"]

log = logging.getLogger(__name__)


def generate_ed25519_key(path: Path) -> None:
    """Write a new Ed25519 private key in OpenSSH format (paramiko cannot generate one)."""
    key = Ed25519PrivateKey.generate()
    path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption(),
    ))
    path.chmod(0o600)


def public_key_line(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.get_base64()}"


def _parse_authorized(line: str) -> paramiko.PKey:
    parts = line.strip().split()
    if len(parts) < 2:
        raise ValueError(f"authorized key must be '<type> <base64> [comment]', got {line[:40]!r}")
    return paramiko.PKey.from_type_string(parts[0], base64.b64decode(parts[1]))


def _sftp_error(exc: OSError) -> int:
    """The SFTP status for an OS error (a failure when it carries no errno)."""
    return SFTP_FAILURE if exc.errno is None else paramiko.SFTPServer.convert_errno(exc.errno)


class _KeyOnlyAuth(paramiko.ServerInterface):
    def __init__(self, authorized: list[paramiko.PKey], on_refused: Any):
        self._authorized = {key.asbytes() for key in authorized}
        self._on_refused = on_refused

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        if key.asbytes() in self._authorized:
            return AUTH_SUCCESSFUL
        self._on_refused()
        return AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return OPEN_SUCCEEDED
        return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED


class _FileHandle(paramiko.SFTPHandle):
    # paramiko's SFTPHandle reads and writes through these when they are set.
    filename: str
    readfile: IO[bytes]
    writefile: IO[bytes]

    def stat(self) -> Any:
        try:
            return paramiko.SFTPAttributes.from_stat(os.fstat(self.readfile.fileno()))
        except OSError as exc:
            return _sftp_error(exc)

    def chattr(self, attr: paramiko.SFTPAttributes) -> int:
        return SFTP_OK  # permissions and times of uploads do not matter here


class _RootedSftp(paramiko.SFTPServerInterface):
    """The SFTP view of one folder: "/" is the root, and nothing outside it exists."""

    def __init__(self, server: Any, *args: Any, root: Path, **kwargs: Any):
        super().__init__(server, *args, **kwargs)
        self._root = root.resolve()

    def _real(self, path: str) -> Path | None:
        virtual = posixpath.normpath("/" + path.replace("\\", "/"))
        real = (self._root / virtual.lstrip("/")).resolve()
        if real != self._root and self._root not in real.parents:
            log.warning("SFTP sandbox refused a path outside its root: %r", path)
            return None
        return real

    def canonicalize(self, path: str) -> str:
        return posixpath.normpath("/" + path)

    def list_folder(self, path: str) -> Any:
        real = self._real(path)
        if real is None:
            return SFTP_PERMISSION_DENIED
        try:
            listing = []
            for name in os.listdir(real):
                try:
                    attr = paramiko.SFTPAttributes.from_stat(os.stat(real / name))
                except FileNotFoundError:
                    # Renamed or moved since listdir (an agency's ".part" becoming its file):
                    # it is not there now, as a real server's readdir would say.
                    continue
                attr.filename = name
                listing.append(attr)
            return listing
        except OSError as exc:
            return _sftp_error(exc)

    def stat(self, path: str) -> Any:
        real = self._real(path)
        if real is None:
            return SFTP_PERMISSION_DENIED
        try:
            return paramiko.SFTPAttributes.from_stat(os.stat(real))
        except OSError as exc:
            return _sftp_error(exc)

    lstat = stat  # symlinks are never created here

    def open(self, path: str, flags: int, attr: Any) -> Any:
        real = self._real(path)
        if real is None:
            return SFTP_PERMISSION_DENIED
        try:
            fd = os.open(real, flags, 0o644)
        except OSError as exc:
            return _sftp_error(exc)
        if flags & os.O_WRONLY:
            mode = "ab" if flags & os.O_APPEND else "wb"
        elif flags & os.O_RDWR:
            mode = "a+b" if flags & os.O_APPEND else "r+b"
        else:
            mode = "rb"
        handle = _FileHandle(flags)
        handle.filename = str(real)
        handle.readfile = handle.writefile = os.fdopen(fd, mode)
        return handle

    def remove(self, path: str) -> int:
        return self._call(os.remove, path)

    def rmdir(self, path: str) -> int:
        return self._call(os.rmdir, path)

    def mkdir(self, path: str, attr: Any) -> int:
        return self._call(os.mkdir, path)

    def rename(self, oldpath: str, newpath: str) -> int:
        old, new = self._real(oldpath), self._real(newpath)
        if old is None or new is None:
            return SFTP_PERMISSION_DENIED
        if new.exists():
            return SFTP_FAILURE  # SFTP v3 rename never replaces a file
        return self._call2(os.rename, old, new)

    def posix_rename(self, oldpath: str, newpath: str) -> int:
        old, new = self._real(oldpath), self._real(newpath)
        if old is None or new is None:
            return SFTP_PERMISSION_DENIED
        return self._call2(os.replace, old, new)

    def chattr(self, path: str, attr: Any) -> int:
        return SFTP_OK if self._real(path) is not None else SFTP_PERMISSION_DENIED

    def symlink(self, target_path: str, path: str) -> int:
        return SFTP_OP_UNSUPPORTED  # a link could point outside the root

    def readlink(self, path: str) -> int:
        return SFTP_OP_UNSUPPORTED

    def _call(self, operation: Any, path: str) -> int:
        real = self._real(path)
        if real is None:
            return SFTP_PERMISSION_DENIED
        return self._call2(operation, real)

    @staticmethod
    def _call2(operation: Any, *args: Path) -> int:
        try:
            operation(*args)
        except OSError as exc:
            return _sftp_error(exc)
        return SFTP_OK


class SftpSandbox:
    """An SFTP server on a loopback port, rooted in ``root``.

        sandbox = SftpSandbox(tmp / "drop", tmp / "host_key", [client_key_line]).start()
        SftpTransport(f"sftp://gw@127.0.0.1:{sandbox.port}/", host_key=sandbox.host_key_line, ...)
    """

    def __init__(self, root: Path, host_key_path: Path, authorized_keys: list[str], port: int = 0,
                 host: str = "127.0.0.1"):
        if not authorized_keys:
            raise ValueError("authorized_keys must name at least one public key")
        self.root = Path(root)
        self.host = host
        self._requested_port = port
        self._host_key_path = Path(host_key_path)
        self._authorized = [_parse_authorized(line) for line in authorized_keys]
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._transports: list[paramiko.Transport] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.connections_accepted = 0
        self.auth_refused = 0
        self._host_key: paramiko.PKey | None = None

    @property
    def port(self) -> int:
        if self._listener is None:
            raise RuntimeError("the SFTP sandbox is not started")
        return self._listener.getsockname()[1]

    @property
    def host_key_line(self) -> str:
        if self._host_key is None:
            raise RuntimeError("the SFTP sandbox is not started")
        return public_key_line(self._host_key)

    def start(self) -> "SftpSandbox":
        if self._listener is not None:
            raise RuntimeError("an SftpSandbox can be started once")
        self.root.mkdir(parents=True, exist_ok=True)
        if not self._host_key_path.exists():
            generate_ed25519_key(self._host_key_path)
        self._host_key = paramiko.PKey.from_path(self._host_key_path)
        self._listener = socket.create_server((self.host, self._requested_port))
        self._listener.settimeout(0.2)  # accept() wakes up to notice stop()
        thread = threading.Thread(target=self._accept_loop, name=f"sftp-sandbox-{self.port}", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return  # the listener was closed by stop()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            thread = threading.Thread(target=self._serve, args=(conn,), name="sftp-sandbox-conn", daemon=True)
            with self._lock:
                self.connections_accepted += 1
                self._threads = [t for t in self._threads if t.is_alive()]
                self._threads.append(thread)
            thread.start()

    def _count_refusal(self) -> None:
        with self._lock:
            self.auth_refused += 1

    def _serve(self, conn: socket.socket) -> None:
        transport = paramiko.Transport(conn)
        with self._lock:
            self._transports.append(transport)
        try:
            assert self._host_key is not None
            transport.add_server_key(self._host_key)
            transport.set_subsystem_handler("sftp", paramiko.SFTPServer, sftp_si=_RootedSftp, root=self.root)
            transport.start_server(server=_KeyOnlyAuth(self._authorized, self._count_refusal))
            # Channels are served by the subsystem handler; they are accepted here to
            # hold a reference while the connection lives (paramiko closes a channel
            # object that is garbage collected).
            channels: list[paramiko.Channel] = []
            while transport.is_active() and not self._stopping.is_set():
                channel = transport.accept(timeout=0.2)
                if channel is not None:
                    channels = [c for c in channels if not c.closed] + [channel]
        except (paramiko.SSHException, EOFError, OSError) as exc:
            log.info("SFTP sandbox connection ended: %s", exc)
        finally:
            transport.close()
            with self._lock:
                self._transports.remove(transport)

    def drop_connections(self) -> None:
        """Close every open connection from the server's side (tests of reconnecting)."""
        with self._lock:
            transports = list(self._transports)
        for transport in transports:
            transport.close()

    def stop(self) -> None:
        self._stopping.set()
        if self._listener is not None:
            self._listener.close()
        self.drop_connections()
        for thread in list(self._threads):
            thread.join(timeout=5)

    def __enter__(self) -> "SftpSandbox":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
