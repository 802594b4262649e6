"""SFTP batch transport: request files into an agency's ``inbox/``, result files
back from its ``outbox/`` (format: docs/agencies/sftp-batch.md).

It knows files, lines and checksums, nothing of agencies. paramiko and socket
exceptions are translated in ``_translated_errors`` and go no further.

* The server's host key is pinned: a HostKeys holding only the configured key and
  ``RejectPolicy``; any other key is HostKeyRejected, never accepted.
* One SSH connection per transport, reused under a lock, opened again after a
  failure or after the server dropped it.
* Uploads go to ``NAME.part`` and are renamed when complete (``posix_rename``),
  data file first, control file last, so the agency never reads half a file.
* Result files are read whole, checked against their control file, and handed
  over all or nothing; ``settle`` moves them to ``done/`` or ``quarantine/``
  (never deletes).
* ``missing`` tells which request files sent earlier the agency has lost: neither
  waiting in ``inbox/`` nor answered (a gateway restarting after a crash resends
  those at once instead of waiting out ``batch_result_wait_seconds``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import posixpath
import secrets
import socket
import stat
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Callable, Iterator, Sequence, TypeVar
from urllib.parse import unquote, urlsplit

import paramiko

from adapters.errors import (
    ConnectFailed,
    HostKeyRejected,
    TransportError,
    TransportTimeout,
)
from adapters.interfaces import BatchRecord, InboundBatch
from adapters.transports.batch_files import (
    CONTROL_SUFFIX,
    PART_SUFFIX,
    REQUEST_SUFFIX,
    RESULT_SUFFIX,
    BatchFileCorrupt,
    check_operation,
    parse_control,
    parse_records,
    render_control,
    render_records,
)

log = logging.getLogger(__name__)

INBOX, OUTBOX, DONE, QUARANTINE = "inbox", "outbox", "done", "quarantine"
_OWNED_FOLDERS = (INBOX, DONE, QUARANTINE)  # outbox/ is the agency's

T = TypeVar("T")


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's form: SHA256:<unpadded base64>."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode("ascii").rstrip("=")


def parse_public_key_line(line: str) -> paramiko.PKey:
    """An OpenSSH public key line (``ssh-ed25519 AAAA... [comment]``) as a key."""
    parts = line.strip().split()
    if len(parts) < 2:
        raise ValueError("host_key must be an OpenSSH public key line: '<type> <base64> [comment]'")
    try:
        return paramiko.PKey.from_type_string(parts[0], base64.b64decode(parts[1], validate=True))
    except (binascii.Error, paramiko.SSHException, ValueError) as exc:
        raise ValueError(f"host_key is not a usable {parts[0]} public key: {exc}") from None


@contextmanager
def _translated_errors(where: str) -> Iterator[None]:
    try:
        yield
    except (socket.timeout, TimeoutError):
        raise TransportTimeout(f"no answer from {where} within the timeout") from None
    except paramiko.AuthenticationException as exc:
        raise ConnectFailed(f"{where} refused our client key: {exc}") from None
    except paramiko.SSHException as exc:
        if "timeout" in str(exc).lower():
            raise TransportTimeout(f"SSH exchange with {where} timed out: {exc}") from None
        raise TransportError(f"SSH exchange with {where} failed: {exc}") from None
    except EOFError:
        raise TransportError(f"{where} closed the connection") from None
    except OSError as exc:
        # paramiko's SFTP client raises IOError/OSError subclasses with the server's reason.
        raise TransportError(f"SFTP operation at {where} failed: {type(exc).__name__}: {exc}") from None


class SftpTransport:
    def __init__(
        self,
        endpoint: str,
        *,
        timeout_seconds: float,
        host_key: str,
        client_key: str,
        partial_after_seconds: float = 300,
    ):
        parts = urlsplit(endpoint)
        if parts.scheme != "sftp" or not parts.hostname or not parts.username:
            raise ValueError(f"endpoint must be sftp://user@host[:port]/base/dir, got {endpoint!r}")
        if timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be > 0")
        self.host = parts.hostname
        self.port = parts.port or 22
        self.username = unquote(parts.username)
        self.base_dir = posixpath.normpath(unquote(parts.path) or "/")
        self.where = f"sftp://{self.username}@{self.host}:{self.port}{self.base_dir}"
        self._timeout = timeout_seconds
        self._partial_after = partial_after_seconds
        self._host_key = parse_public_key_line(host_key)
        try:
            self._client_key = paramiko.PKey.from_path(client_key)
        except (OSError, paramiko.SSHException, ValueError) as exc:
            raise ValueError(f"client_key {client_key!r} is not a readable Ed25519 or RSA private key: {exc}") from None
        self._lock = threading.Lock()
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self.connections_opened = 0

    # --- the connection --------------------------------------------------------------

    def _connect(self) -> paramiko.SFTPClient:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self._timeout)
        except (socket.timeout, TimeoutError):
            raise TransportTimeout(f"connect to {self.where} timed out") from None
        except OSError as exc:
            raise ConnectFailed(f"could not reach {self.where}: {exc.strerror or exc}") from None
        # Without it each small SFTP request waits on Nagle + delayed ACK (51 ms connects, measured).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        name = self.host if self.port == 22 else f"[{self.host}]:{self.port}"
        client.get_host_keys().add(name, self._host_key.get_name(), self._host_key)
        try:
            with _translated_errors(self.where):
                try:
                    client.connect(
                        self.host, port=self.port, username=self.username, pkey=self._client_key, sock=sock,
                        timeout=self._timeout, banner_timeout=self._timeout, auth_timeout=self._timeout,
                        channel_timeout=self._timeout, look_for_keys=False, allow_agent=False,
                    )
                except paramiko.BadHostKeyException as exc:
                    raise HostKeyRejected(
                        f"{self.where} offered host key {exc.key.get_name()} {fingerprint(exc.key)}, "
                        f"expected the pinned {exc.expected_key.get_name()} {fingerprint(exc.expected_key)}"
                    ) from None
                except paramiko.AuthenticationException:
                    raise ConnectFailed(
                        f"{self.where} refused authentication as {self.username!r} with client key "
                        f"{self._client_key.get_name()} {fingerprint(self._client_key)}"
                    ) from None
                sftp = client.open_sftp()
                channel = sftp.get_channel()
                if channel is None:  # paramiko opens it above, or raises
                    raise ConnectFailed(f"{self.where} opened no SFTP channel")
                channel.settimeout(self._timeout)
                self._ensure_folders(sftp)
        except BaseException:
            client.close()
            sock.close()
            raise
        self._client, self._sftp = client, sftp
        self.connections_opened += 1
        return sftp

    def _ensure_folders(self, sftp: paramiko.SFTPClient) -> None:
        try:
            sftp.stat(self.base_dir)
        except FileNotFoundError:
            raise TransportError(f"base folder {self.base_dir} does not exist at {self.where}") from None
        for folder in _OWNED_FOLDERS:
            path = posixpath.join(self.base_dir, folder)
            try:
                sftp.stat(path)
            except FileNotFoundError:
                sftp.mkdir(path)

    def _drop(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client = self._sftp = None

    def _run(self, operation: Callable[[paramiko.SFTPClient], T]) -> T:
        """Run one operation on the shared connection; a failure closes it so the next call reconnects."""
        with self._lock:
            transport = self._client.get_transport() if self._client is not None else None
            if transport is None or not transport.is_active():
                self._drop()  # the server dropped it (or it never was): open a new one
                sftp = self._connect()
            else:
                assert self._sftp is not None
                sftp = self._sftp
            try:
                with _translated_errors(self.where):
                    return operation(sftp)
            except TransportError:
                self._drop()
                raise

    def close(self) -> None:
        with self._lock:
            self._drop()

    # --- files -------------------------------------------------------------------------

    def _path(self, folder: str, name: str = "") -> str:
        return posixpath.join(self.base_dir, folder, name) if name else posixpath.join(self.base_dir, folder)

    def _upload(self, sftp: paramiko.SFTPClient, folder: str, name: str, data: bytes) -> None:
        part = self._path(folder, name + PART_SUFFIX)
        with sftp.open(part, "wb") as remote:
            remote.set_pipelined(True)  # without it every 32 KB write waits for its ack
            remote.write(data)
        sftp.posix_rename(part, self._path(folder, name))

    def send_batch(self, operation: str, records: Sequence[BatchRecord]) -> str:
        check_operation(operation)
        data = render_records(records)  # OutgoingInvalid before anything is sent
        control = render_control(data, len(records))
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        name = f"{operation}_{stamp}_{secrets.token_hex(6)}{REQUEST_SUFFIX}"

        def upload(sftp: paramiko.SFTPClient) -> str:
            self._upload(sftp, INBOX, name, data)
            self._upload(sftp, INBOX, name + CONTROL_SUFFIX, control)
            return name

        return self._run(upload)

    def missing(self, names: Sequence[str]) -> list[str]:
        """Of these request files sent earlier, those the agency has lost: not waiting
        in ``inbox/`` and not answered (no result file ``NAME.res`` or its control file
        in ``outbox/``, ``done/`` or ``quarantine/``).

        An agency keeps a request file in ``inbox/`` until its result file is in
        ``outbox/`` (docs/agencies/sftp-batch.md), and a result only moves on from
        ``outbox/`` to ``done/``; so looking in that order (inbox, outbox, then the
        rest) never takes a file being answered, or a result being collected, for lost.
        """
        wanted = [n for n in dict.fromkeys(names) if n.endswith(REQUEST_SUFFIX)]
        if not wanted:
            return []
        return self._run(lambda sftp: self._missing(sftp, wanted))

    def _missing(self, sftp: paramiko.SFTPClient, names: list[str]) -> list[str]:
        waiting = set(sftp.listdir(self._path(INBOX)))
        left = [n for n in names if n not in waiting]
        if not left:
            return []
        try:
            answered = set(sftp.listdir(self._path(OUTBOX)))
        except FileNotFoundError:
            raise TransportError(f"no {OUTBOX}/ folder under {self.base_dir} at {self.where}") from None

        def result_names(name: str) -> tuple[str, str]:
            result = name[: -len(REQUEST_SUFFIX)] + RESULT_SUFFIX
            return result, result + CONTROL_SUFFIX

        lost = []
        for name in left:
            results = result_names(name)
            if any(r in answered for r in results):
                continue
            # Settled results (few files to look for; done/ grows without bound, so no listing).
            if any(self._exists(sftp, self._path(folder, r)) for folder in (DONE, QUARANTINE) for r in results):
                continue
            lost.append(name)
        return lost

    def receive(self, limit: int = 100) -> list[InboundBatch]:
        return self._run(lambda sftp: self._receive(sftp, limit))

    def _receive(self, sftp: paramiko.SFTPClient, limit: int) -> list[InboundBatch]:
        try:
            entries = sftp.listdir_attr(self._path(OUTBOX))
        except FileNotFoundError:
            raise TransportError(f"no {OUTBOX}/ folder under {self.base_dir} at {self.where}") from None
        files = {e.filename: e for e in entries if e.st_mode is not None and stat.S_ISREG(e.st_mode)}
        data_names = [n for n in files if n.endswith(RESULT_SUFFIX)]
        orphan_controls = [
            n[: -len(CONTROL_SUFFIX)] for n in files
            if n.endswith(RESULT_SUFFIX + CONTROL_SUFFIX) and n[: -len(CONTROL_SUFFIX)] not in files
        ]
        candidates = sorted(data_names + orphan_controls, key=lambda n: (self._mtime(files, n), n))
        stale_before = time.time() - self._partial_after
        batches: list[InboundBatch] = []
        for name in candidates:
            if len(batches) >= limit:
                break
            has_data, has_control = name in files, name + CONTROL_SUFFIX in files
            if has_data and has_control:
                batches.append(self._read_complete(sftp, name))
            elif self._mtime(files, name) < stale_before:
                # Left half-written (no control file, or a control file without data) for
                # longer than any agency takes to finish a file: quarantine it whole.
                missing = "control file" if has_data else "data file"
                raw = self._read(sftp, name) if has_data else b""
                batches.append(InboundBatch(
                    name=name, records=(), sha256=hashlib.sha256(raw).hexdigest(), raw=raw,
                    problem=f"partial: no {missing} after {self._partial_after:g} s",
                ))
        return batches

    @staticmethod
    def _mtime(files: dict[str, paramiko.SFTPAttributes], name: str) -> float:
        entry = files.get(name) or files.get(name + CONTROL_SUFFIX)
        return float(entry.st_mtime or 0) if entry is not None else 0.0

    def _read(self, sftp: paramiko.SFTPClient, name: str) -> bytes:
        with sftp.open(self._path(OUTBOX, name), "rb") as remote:
            remote.prefetch()  # pipelined reads: a 10,000-line file in a few round trips
            return remote.read()

    def _read_complete(self, sftp: paramiko.SFTPClient, name: str) -> InboundBatch:
        control_raw = self._read(sftp, name + CONTROL_SUFFIX)
        data = self._read(sftp, name)
        sha256 = hashlib.sha256(data).hexdigest()
        try:
            records = parse_records(data, parse_control(control_raw))
        except BatchFileCorrupt as exc:
            log.warning("result file %s refused whole: %s", name, exc)
            return InboundBatch(name=name, records=(), sha256=sha256, problem=str(exc), raw=data)
        return InboundBatch(name=name, records=records, sha256=sha256, raw=data)

    def settle(self, batch: InboundBatch) -> None:
        target = QUARANTINE if batch.problem else DONE
        self._run(lambda sftp: self._move_out(sftp, batch.name, target))

    def _move_out(self, sftp: paramiko.SFTPClient, name: str, target: str) -> None:
        suffix = ""
        for file_name in (name, name + CONTROL_SUFFIX):
            try:
                sftp.stat(self._path(OUTBOX, file_name))
            except FileNotFoundError:
                continue  # never written (a partial file) or already settled
            if not suffix and self._exists(sftp, self._path(target, file_name)):
                suffix = "." + secrets.token_hex(4)  # never overwrite: moving must not delete
            sftp.posix_rename(self._path(OUTBOX, file_name), self._path(target, file_name + suffix))

    @staticmethod
    def _exists(sftp: paramiko.SFTPClient, path: str) -> bool:
        try:
            sftp.stat(path)
        except FileNotFoundError:
            return False
        return True
