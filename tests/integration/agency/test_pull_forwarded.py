"""Forwarded headers and the pull service's "UsernameToken over TLS only" rule
(gateway/forwarded.py, gateway/server.py): a client on plain HTTP that says
``X-Forwarded-Proto: https`` (or ``X-Forwarded-Ssl: on``) is not believed unless
its address is a proxy named in ``[server] forwarded_allow_ips`` (none by default,
where gunicorn's own default trusts loopback)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from pull_support import PASSWORD, SOAP_PATH, envelope, pull_registry, read

from conftest import write_registry
from sandboxes.polling_bank import DEMO_PASSWORD

GATEWAY = str(Path(sys.executable).parent / "gateway")
SOAP_HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"urn:enforcement-gateway:pull:v1:getXzcxList"'}
CLAIMS_OF_TLS = [{"X-Forwarded-Proto": "https"}, {"X-Forwarded-Ssl": "on"}, {"X-Forwarded-Protocol": "ssl"}]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(database_url, keys_dir, tmp_path):
    """`gateway serve` (gunicorn) on plain HTTP with the default [server] settings and
    the default registry's polling bank, bank-c (its published demo password)."""
    registry = write_registry(tmp_path / "agencies.toml", {"bank-c": ""})
    config = tmp_path / "settings.toml"
    config.write_text(
        f'[gateway]\ninstance_dir = "{tmp_path / "instance"}"\nagencies_file = "{registry}"\nlog_level = "WARNING"\n'
        f'[auth]\njwks_file = "{keys_dir / "jwks.json"}"\nsigning_key_file = "{keys_dir / "signing-key.pem"}"\n'
        f'[audit]\nsubject_key_file = "{keys_dir / "subject-hash.key"}"\n')
    port = _free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_") and k != "FORWARDED_ALLOW_IPS"},
           "GATEWAY_CONFIG": str(config), "GATEWAY_DATABASE_URL": database_url}
    server = subprocess.Popen([GATEWAY, "serve", "--port", str(port), "--workers", "1", "--threads", "2",
                               "--no-delivery-workers", "--no-access-log"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):
                pass
            assert server.poll() is None and time.monotonic() < deadline, "gateway serve did not start"
            time.sleep(0.1)
        yield base
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=60)
    assert server.returncode == 0, output


def test_gunicorn_believes_no_forwarded_scheme_from_loopback_by_default(served):
    raw = envelope("getXzcxList", username="bank-c", password=DEMO_PASSWORD)
    for claim in CLAIMS_OF_TLS:
        reply = requests.post(served + SOAP_PATH, data=raw, headers={**SOAP_HEADERS, **claim}, timeout=10)
        answer = read(reply.status_code, reply.content)
        assert answer.status == 401 and answer.code == "2000", (claim, answer.info)
        assert "accepted over TLS only" in answer.info


def _app(overrides, proxies):
    from gateway.app import create_app

    return create_app({**overrides, "server": {"forwarded_allow_ips": proxies}}, registry=pull_registry())


def _poll(app, peer, headers):
    reply = app.test_client().post(SOAP_PATH, data=envelope("getXzcxList", username="bank-pull-user", password=PASSWORD),
                                   headers={**SOAP_HEADERS, **headers}, base_url="http://localhost",
                                   environ_base={"REMOTE_ADDR": peer})
    return read(reply.status_code, reply.data)


def test_a_configured_proxy_is_believed_and_every_other_peer_is_not(overrides):
    app = _app(overrides, ["10.0.0.5", "192.168.10.0/24"])
    try:
        for proxy in ("10.0.0.5", "192.168.10.77"):
            assert _poll(app, proxy, {"X-Forwarded-Proto": "https"}).code == "0000"
        for peer in ("127.0.0.1", "10.0.0.6"):
            refused = _poll(app, peer, {"X-Forwarded-Proto": "https", "X-Forwarded-For": "10.0.0.5"})
            assert refused.status == 401 and "accepted over TLS only" in refused.info
        # The proxy's view of the address is the WSDL's (scheme and host), nobody else's.
        wsdl = app.test_client().get(SOAP_PATH + "?wsdl", base_url="http://10.0.0.5:8080",
                                     headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "gateway.example"},
                                     environ_base={"REMOTE_ADDR": "10.0.0.5"})
        assert b'location="https://gateway.example/api/v1/agency/soap"' in wsdl.data
        spoofed = app.test_client().get(SOAP_PATH + "?wsdl", base_url="http://10.0.0.5:8080",
                                        headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"},
                                        environ_base={"REMOTE_ADDR": "203.0.113.9"})
        assert b'location="http://10.0.0.5:8080/api/v1/agency/soap"' in spoofed.data
    finally:
        app.extensions["db"].dispose()


def test_without_configured_proxies_no_forwarded_header_is_believed(overrides):
    app = _app(overrides, [])
    try:
        refused = _poll(app, "127.0.0.1", {"X-Forwarded-Proto": "https"})
        assert refused.status == 401 and "accepted over TLS only" in refused.info
    finally:
        app.extensions["db"].dispose()
