"""SftpTransport against two real servers: OpenSSH's sshd (internal-sftp) and the
paramiko sandbox. The test plays the agency by reading and writing the server's
folders directly."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path
from typing import Iterator

import paramiko
import pytest
from sftp_servers import SftpServer, start_sandbox, start_sshd, stop_sshd

from adapters.errors import ConnectFailed, HostKeyRejected, OutgoingInvalid, TransportError
from adapters.interfaces import BatchRecord
from adapters.transports.sftp import SftpTransport
from sandboxes.sftp_server import generate_ed25519_key, public_key_line


# --- servers (here rather than in a conftest.py, which would shadow tests/conftest.py) ---


@pytest.fixture(scope="session")
def client_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(private key path, public key line), made for this run and kept in a temp dir."""
    path = tmp_path_factory.mktemp("client-key") / "id_ed25519"
    generate_ed25519_key(path)
    return str(path), public_key_line(paramiko.PKey.from_path(path))


@pytest.fixture(scope="session")
def rsa_client_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    path = tmp_path_factory.mktemp("rsa-client-key") / "id_rsa"
    key = paramiko.RSAKey.generate(2048)
    key.write_private_key_file(str(path))
    return str(path), public_key_line(key)


@pytest.fixture(scope="session")
def sshd_server(tmp_path_factory: pytest.TempPathFactory, client_key: tuple[str, str],
                rsa_client_key: tuple[str, str]) -> Iterator[SftpServer]:
    process, server = start_sshd(tmp_path_factory.mktemp("sshd"), [client_key[1], rsa_client_key[1]])
    yield server
    stop_sshd(process)


@pytest.fixture(scope="session")
def sandbox_server(tmp_path_factory: pytest.TempPathFactory, client_key: tuple[str, str],
                   rsa_client_key: tuple[str, str]) -> Iterator[SftpServer]:
    sandbox, server = start_sandbox(tmp_path_factory.mktemp("sftp-sandbox"), [client_key[1], rsa_client_key[1]])
    yield server
    sandbox.stop()


@pytest.fixture(params=["sshd", "paramiko"])
def sftp_server(request: pytest.FixtureRequest) -> SftpServer:
    return request.getfixturevalue("sshd_server" if request.param == "sshd" else "sandbox_server")


def make_transport(server: SftpServer, remote_base: str, key: tuple[str, str], **kw) -> SftpTransport:
    kw.setdefault("host_key", server.host_key_line)
    kw.setdefault("client_key", key[0])
    return SftpTransport(server.endpoint(remote_base), timeout_seconds=5, **kw)


def write_result(outbox: Path, name: str, lines: list[bytes], *, records: int | None = None,
                 sha256: str | None = None, control: bool = True) -> bytes:
    """Write a result file as an agency would: data first, control file last."""
    outbox.mkdir(exist_ok=True)
    data = b"".join(line + b"\n" for line in lines)
    (outbox / name).write_bytes(data)
    if control:
        count = len(lines) if records is None else records
        digest = hashlib.sha256(data).hexdigest() if sha256 is None else sha256
        (outbox / (name + ".chk")).write_text(f"records={count}\nsha256={digest}\n")
    return data


@pytest.fixture
def base(sftp_server: SftpServer) -> tuple[str, Path]:
    return sftp_server.new_base()


@pytest.fixture
def transport(sftp_server: SftpServer, base: tuple[str, Path], client_key: tuple[str, str]):
    transport = make_transport(sftp_server, base[0], client_key)
    yield transport
    transport.close()


def test_send_batch_writes_data_then_control_file(transport: SftpTransport, base: tuple[str, Path]) -> None:
    records = [BatchRecord("m-1", "<a>一</a>".encode()), BatchRecord("m-2", b"<b/>")]
    name = transport.send_batch("inquiry", records)

    assert name.startswith("inquiry_") and name.endswith(".req")
    inbox = base[1] / "inbox"
    assert sorted(p.name for p in inbox.iterdir()) == [name, name + ".chk"]
    data = (inbox / name).read_bytes()
    assert data == "m-1\t<a>一</a>\nm-2\t<b/>\n".encode()
    assert (inbox / (name + ".chk")).read_text() == f"records=2\nsha256={hashlib.sha256(data).hexdigest()}\n"
    for folder in ("done", "quarantine"):
        assert (base[1] / folder).is_dir()  # the folders the gateway owns are created


def test_no_reader_ever_sees_a_partial_request_file(transport: SftpTransport, base: tuple[str, Path]) -> None:
    records = [BatchRecord(f"m-{i}", b"x" * 500) for i in range(8000)]  # ~4 MB: many SFTP writes
    expected_size = sum(len(r.message_id) + 2 + len(r.body) for r in records)
    inbox = base[1] / "inbox"
    seen: list[tuple[str, int, bool]] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            if inbox.is_dir():
                for path in inbox.iterdir():
                    try:
                        seen.append((path.name, path.stat().st_size, (inbox / (path.name + ".chk")).exists()))
                    except FileNotFoundError:
                        pass  # renamed between listing and stat

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        name = transport.send_batch("inquiry", records)
    finally:
        done.set()
        watcher.join()
    assert any(n.endswith(".part") for n, _, _ in seen), "the upload was never observed in flight"
    for seen_name, size, _ in seen:
        if seen_name == name:
            assert size == expected_size  # a .req is only ever there whole
    assert not any(n.endswith(".part") for n in os.listdir(inbox))


def test_invalid_records_are_never_sent(sftp_server: SftpServer, base: tuple[str, Path],
                                        transport: SftpTransport) -> None:
    accepted = sftp_server.accepted_connections()
    for bad in ([BatchRecord("m\t1", b"x")], [BatchRecord("m-1", b"two\nlines")], [], [BatchRecord("", b"x")]):
        with pytest.raises(OutgoingInvalid):
            transport.send_batch("inquiry", bad)
    assert transport.connections_opened == 0 and sftp_server.accepted_connections() == accepted
    assert list(base[1].iterdir()) == []


def test_receive_returns_complete_result_files_and_settle_moves_them_to_done(
    transport: SftpTransport, base: tuple[str, Path]
) -> None:
    outbox = base[1] / "outbox"
    write_result(outbox, "inquiry_1.res", [b"m-1\t<ok/>", "m-2\t<好/>".encode()])
    write_result(outbox, "inquiry_2.res", [b"m-3\t<x/>"], control=False)  # still being written

    batches = transport.receive()

    assert [b.name for b in batches] == ["inquiry_1.res"]
    batch = batches[0]
    assert batch.problem is None
    assert [(r.message_id, r.body) for r in batch.records] == [("m-1", b"<ok/>"), ("m-2", "<好/>".encode())]
    assert batch.sha256 == hashlib.sha256((outbox / "inquiry_1.res").read_bytes()).hexdigest()
    transport.settle(batch)
    assert sorted(p.name for p in (base[1] / "done").iterdir()) == ["inquiry_1.res", "inquiry_1.res.chk"]
    assert sorted(p.name for p in outbox.iterdir()) == ["inquiry_2.res"]  # the partial one is left alone
    assert transport.receive() == []


def test_receive_is_oldest_first_and_honours_the_limit(transport: SftpTransport, base: tuple[str, Path]) -> None:
    outbox = base[1] / "outbox"
    now = time.time()
    for name, age in (("b.res", 30), ("a.res", 10), ("c.res", 50)):
        write_result(outbox, name, [b"m\t<x/>"])
        os.utime(outbox / name, (now - age, now - age))
    assert [b.name for b in transport.receive()] == ["c.res", "b.res", "a.res"]
    assert [b.name for b in transport.receive(limit=1)] == ["c.res"]


@pytest.mark.parametrize(
    ("corruption", "problem"),
    [
        ({"sha256": "0" * 64}, "checksum mismatch"),
        ({"records": 3}, "record count mismatch"),
        ({"lines": [b"m-1\t<ok/>", b"no tab on this line"]}, "line 2 is not a record"),
    ],
)
def test_a_corrupt_result_file_is_quarantined_whole(
    transport: SftpTransport, base: tuple[str, Path], corruption: dict, problem: str
) -> None:
    outbox = base[1] / "outbox"
    corruption = dict(corruption)  # the parameter is shared by both servers
    lines = corruption.pop("lines", [b"m-1\t<ok/>", b"m-2\t<ok/>"])
    data = write_result(outbox, "r.res", lines, **corruption)

    [batch] = transport.receive()

    assert problem in (batch.problem or "")
    assert batch.records == () and batch.raw == data
    transport.settle(batch)
    assert sorted(p.name for p in (base[1] / "quarantine").iterdir()) == ["r.res", "r.res.chk"]
    assert list(outbox.iterdir()) == [] and list((base[1] / "done").iterdir()) == []


def test_a_partial_file_is_left_alone_then_quarantined(sftp_server: SftpServer, base: tuple[str, Path],
                                                       client_key: tuple[str, str]) -> None:
    transport = make_transport(sftp_server, base[0], client_key, partial_after_seconds=60)
    outbox = base[1] / "outbox"
    data = write_result(outbox, "p.res", [b"m-1\t<ok/>"], control=False)
    try:
        assert transport.receive() == []
        old = time.time() - 120
        os.utime(outbox / "p.res", (old, old))
        [batch] = transport.receive()
        assert batch.problem == "partial: no control file after 60 s" and batch.raw == data and batch.records == ()
        transport.settle(batch)
    finally:
        transport.close()
    assert [p.name for p in (base[1] / "quarantine").iterdir()] == ["p.res"]
    assert list(outbox.iterdir()) == []


def test_a_changed_host_key_is_refused_and_nothing_is_uploaded(
    sftp_server: SftpServer, base: tuple[str, Path], client_key: tuple[str, str], tmp_path: Path
) -> None:
    generate_ed25519_key(tmp_path / "other_host_key")
    other = public_key_line(paramiko.PKey.from_path(tmp_path / "other_host_key"))
    transport = make_transport(sftp_server, base[0], client_key, host_key=other)

    with pytest.raises(HostKeyRejected) as refused:
        transport.send_batch("inquiry", [BatchRecord("m-1", b"<x/>")])

    assert refused.value.retryable is False
    assert "expected the pinned ssh-ed25519 SHA256:" in refused.value.message
    assert "offered host key ssh-ed25519 SHA256:" in refused.value.message
    assert "AAAA" not in refused.value.message  # fingerprints only, never whole keys
    assert list(base[1].iterdir()) == []


def test_a_client_key_the_server_does_not_know_is_a_clear_error(
    sftp_server: SftpServer, base: tuple[str, Path], client_key: tuple[str, str], tmp_path: Path
) -> None:
    key = paramiko.RSAKey.generate(2048)  # an RSA key loads too; the server just does not know it
    key.write_private_key_file(str(tmp_path / "id_rsa"))
    transport = make_transport(sftp_server, base[0], client_key, client_key=str(tmp_path / "id_rsa"))

    with pytest.raises(ConnectFailed, match="refused authentication as .* with client key ssh-rsa SHA256:"):
        transport.receive()


def test_an_rsa_client_key_works_too(sftp_server: SftpServer, base: tuple[str, Path],
                                     rsa_client_key: tuple[str, str]) -> None:
    transport = make_transport(sftp_server, base[0], rsa_client_key)
    try:
        name = transport.send_batch("inquiry", [BatchRecord("m-1", b"<x/>")])
    finally:
        transport.close()
    assert (base[1] / "inbox" / name).read_bytes() == b"m-1\t<x/>\n"


def test_one_connection_serves_many_calls(sftp_server: SftpServer, transport: SftpTransport,
                                          base: tuple[str, Path]) -> None:
    (base[1] / "outbox").mkdir()
    before = sftp_server.accepted_connections()
    for i in range(5):
        transport.send_batch("inquiry", [BatchRecord(f"m-{i}", b"<x/>")])
        transport.receive()
    time.sleep(0.2)  # let sshd's log catch up before counting
    assert transport.connections_opened == 1
    assert sftp_server.accepted_connections() - before == 1


def test_reconnects_after_the_server_drops_the_connection(sftp_server: SftpServer, transport: SftpTransport,
                                                          base: tuple[str, Path]) -> None:
    transport.send_batch("inquiry", [BatchRecord("m-1", b"<x/>")])
    sftp_server.drop_connections()
    deadline = time.monotonic() + 5
    names = None
    while names is None:
        try:
            names = transport.send_batch("inquiry", [BatchRecord("m-2", b"<y/>")])
        except TransportError:
            # A drop noticed mid-call fails that call (the worker retries it); the next reconnects.
            assert time.monotonic() < deadline
    assert transport.connections_opened == 2
    assert len([p for p in (base[1] / "inbox").iterdir() if p.name.endswith(".req")]) == 2


def test_a_missing_outbox_is_a_clear_error(transport: SftpTransport, base: tuple[str, Path]) -> None:
    with pytest.raises(TransportError, match="no outbox/ folder under"):
        transport.receive()
    assert (base[1] / "inbox").is_dir()  # the folders the gateway owns were created all the same


def test_nothing_listening_is_connect_failed(client_key: tuple[str, str], sandbox_server: SftpServer) -> None:
    from sftp_servers import free_port

    transport = SftpTransport(f"sftp://gw@127.0.0.1:{free_port()}/x", timeout_seconds=2,
                              host_key=sandbox_server.host_key_line, client_key=client_key[0])
    with pytest.raises(ConnectFailed, match="could not reach"):
        transport.receive()
