"""adapters.transports.rest against tiny HTTP servers on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterator

import pytest
import requests

from adapters import TRANSPORTS
from adapters.errors import AdapterError, ConnectFailed, TransportError, TransportTimeout
from adapters.interfaces import Envelope, Reply
from adapters.transports.rest import RestTransport

ENVELOPE = Envelope(
    message_id="0b7f0c9e-3d0e-4a53-9d7e-1f7a1c1b2d3e",
    operation="inquiries",
    body='{"Query":{"XM":"张三"}}'.encode("utf-8"),
    media_type="application/json; charset=utf-8",
)


class Recorded:
    def __init__(self) -> None:
        self.requests: list[dict] = []


@contextmanager
def serve(respond: Callable[[BaseHTTPRequestHandler, bytes], None]) -> Iterator[tuple[str, Recorded]]:
    recorded = Recorded()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            recorded.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            respond(self, body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", recorded
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def reply_with(status: int, body: bytes, content_type: str = "application/json; charset=utf-8"):
    def respond(handler: BaseHTTPRequestHandler, _body: bytes) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return respond


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_rest_is_the_registered_transport() -> None:
    assert TRANSPORTS["rest"] is RestTransport


def test_post_reaches_endpoint_operation_with_headers_and_body() -> None:
    with serve(reply_with(200, b'{"ok":true}')) as (base, recorded):
        transport = RestTransport(base + "/psb/v1/", timeout_seconds=5)
        try:
            reply = transport.send(ENVELOPE)
        finally:
            transport.close()
    assert reply == Reply(status=200, body=b'{"ok":true}', media_type="application/json; charset=utf-8")
    [request] = recorded.requests
    assert request["path"] == "/psb/v1/inquiries"
    assert request["headers"]["X-Message-Id"] == ENVELOPE.message_id
    assert request["headers"]["Content-Type"] == "application/json; charset=utf-8"
    assert request["body"] == ENVELOPE.body


def test_envelope_headers_are_sent() -> None:
    envelope = Envelope("m-1", "batch", b"<x/>", "application/xml", headers={"X-Agency-Key": "k1"})
    with serve(reply_with(202, b"")) as (base, recorded):
        transport = RestTransport(base, timeout_seconds=5)
        reply = transport.send(envelope)
        transport.close()
    assert reply.status == 202
    assert reply.body == b""
    assert recorded.requests[0]["path"] == "/batch"
    assert recorded.requests[0]["headers"]["X-Agency-Key"] == "k1"
    assert recorded.requests[0]["headers"]["X-Message-Id"] == "m-1"
    assert recorded.requests[0]["headers"]["Content-Type"] == "application/xml"


@pytest.mark.parametrize("status", [400, 403, 404, 429, 500, 503])
def test_non_2xx_replies_are_returned_not_raised(status: int) -> None:
    body = f'{{"Head":{{"RESPONSECODE":"{status}"}}}}'.encode()
    with serve(reply_with(status, body, "application/json")) as (base, _):
        transport = RestTransport(base, timeout_seconds=5)
        reply = transport.send(ENVELOPE)
        transport.close()
    assert reply == Reply(status=status, body=body, media_type="application/json")


def test_one_session_is_reused_for_several_sends() -> None:
    with serve(reply_with(200, b"{}")) as (base, recorded):
        transport = RestTransport(base, timeout_seconds=5)
        for _ in range(3):
            assert transport.send(ENVELOPE).status == 200
        assert len(transport._sessions) == 1
        transport.close()
        assert transport._sessions == []
    assert len(recorded.requests) == 3


def test_each_thread_gets_its_own_session() -> None:
    with serve(reply_with(200, b"{}")) as (base, recorded):
        transport = RestTransport(base, timeout_seconds=5)
        statuses: list[int] = []
        threads = [threading.Thread(target=lambda: statuses.append(transport.send(ENVELOPE).status)) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=10)
        assert statuses == [200, 200, 200]
        assert len(transport._sessions) == 3
        transport.close()
    assert len(recorded.requests) == 3


def test_server_slower_than_the_timeout_is_a_timeout() -> None:
    release = threading.Event()

    def slow(handler: BaseHTTPRequestHandler, _body: bytes) -> None:
        release.wait(5)
        reply_with(200, b"{}")(handler, _body)

    with serve(slow) as (base, recorded):
        transport = RestTransport(base, timeout_seconds=0.3)
        started = time.monotonic()
        try:
            with pytest.raises(TransportTimeout) as info:
                transport.send(ENVELOPE)
        finally:
            release.set()
            transport.close()
        elapsed = time.monotonic() - started
    assert elapsed < 3
    assert info.value.retryable is True
    assert info.value.code == "timeout"
    assert f"{base}/inquiries" in info.value.message
    assert info.value.__cause__ is None and info.value.__suppress_context__ is True
    assert len(recorded.requests) == 1


def test_server_that_stalls_mid_body_is_a_timeout() -> None:
    release = threading.Event()

    def stall(handler: BaseHTTPRequestHandler, _body: bytes) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "100")
        handler.end_headers()
        handler.wfile.write(b'{"Head":')
        handler.wfile.flush()
        release.wait(5)

    with serve(stall) as (base, _):
        transport = RestTransport(base, timeout_seconds=0.3)
        try:
            with pytest.raises(TransportError) as info:
                transport.send(ENVELOPE)
        finally:
            release.set()
            transport.close()
    assert isinstance(info.value, TransportTimeout), type(info.value).__name__


def test_closed_port_is_connect_failed() -> None:
    port = free_port()
    transport = RestTransport(f"http://127.0.0.1:{port}/psb", timeout_seconds=2)
    with pytest.raises(ConnectFailed) as info:
        transport.send(ENVELOPE)
    transport.close()
    assert info.value.retryable is True
    assert info.value.code == "connect_failed"
    assert f"http://127.0.0.1:{port}/psb/inquiries" in info.value.message
    assert not isinstance(info.value, requests.exceptions.RequestException)
    assert info.value.__cause__ is None and info.value.__suppress_context__ is True


def test_server_that_hangs_up_without_answering_is_a_transport_error() -> None:
    def hang_up(handler: BaseHTTPRequestHandler, _body: bytes) -> None:
        handler.close_connection = True
        handler.connection.shutdown(socket.SHUT_RDWR)

    with serve(hang_up) as (base, _):
        transport = RestTransport(base, timeout_seconds=5)
        with pytest.raises(TransportError) as info:
            transport.send(ENVELOPE)
        transport.close()
    assert info.value.retryable is True
    assert not isinstance(info.value, requests.exceptions.RequestException)


def test_truncated_body_is_a_transport_error() -> None:
    def short(handler: BaseHTTPRequestHandler, _body: bytes) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "100")
        handler.end_headers()
        handler.wfile.write(b"{}")
        handler.wfile.flush()
        handler.close_connection = True
        handler.connection.shutdown(socket.SHUT_RDWR)

    with serve(short) as (base, _):
        transport = RestTransport(base, timeout_seconds=5)
        with pytest.raises(TransportError) as info:
            transport.send(ENVELOPE)
        transport.close()
    assert info.value.retryable is True


@pytest.mark.parametrize("endpoint", ["http://", "not a url", "ftp://127.0.0.1/x", "http://127.0.0.1:99999/x"])
def test_bad_endpoints_raise_adapter_errors_only(endpoint: str) -> None:
    transport = RestTransport(endpoint, timeout_seconds=1, connect_timeout_seconds=1)
    with pytest.raises(AdapterError) as info:
        transport.send(ENVELOPE)
    transport.close()
    assert isinstance(info.value, TransportError)
    assert type(info.value).__module__ == "adapters.errors"


def test_proxy_environment_is_ignored(monkeypatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with serve(reply_with(200, b"direct")) as (base, recorded):
        transport = RestTransport(base, timeout_seconds=5)
        reply = transport.send(ENVELOPE)
        transport.close()
    assert reply.body == b"direct"
    assert len(recorded.requests) == 1
