"""The pull service through a real TLS server, with zeep as the polling bank's client
(WS-Security UsernameToken, PasswordText): list, fetch documents, feed back, send back."""

from __future__ import annotations

import base64

import pytest
import requests
import zeep
from pull_support import OTHER_PASSWORD, PASSWORD, SOAP_PATH, pull_registry
from zeep.exceptions import Fault
from zeep.transports import Transport
from zeep.wsse.username import UsernameToken

from conftest import Api
from gateway.tls import self_signed_certificate, server_ssl_context
from sandboxes.bank import BankAgency
from sandboxes.server import SandboxServer


@pytest.fixture
def tls_gateway(overrides, settings, tmp_path):
    from gateway.app import create_app

    files = self_signed_certificate(tmp_path / "tls")
    app = create_app(overrides, registry=pull_registry())
    server = SandboxServer(app, ssl_context=server_ssl_context(files)).start()
    yield app, server, files
    server.stop()
    app.extensions["db"].dispose()


def _client(server, files, username="bank-pull-user", password=PASSWORD) -> zeep.Client:
    session = requests.Session()
    # requests lets REQUESTS_CA_BUNDLE in the environment win over session.verify: trust only this certificate.
    session.trust_env, session.verify = False, str(files.certfile)
    transport = Transport(session=session, timeout=10, operation_timeout=10)
    return zeep.Client(f"{server.url}{SOAP_PATH}?wsdl", transport=transport, wsse=UsernameToken(username, password))


def test_a_zeep_client_polls_over_tls_with_a_username_token(tls_gateway, settings):
    app, server, files = tls_gateway
    assert server.url.startswith("https://")
    api = Api(server.url, settings)
    api.http.trust_env, api.http.verify = False, str(files.certfile)
    assert api.register_case().status_code == 201
    first, second = (api.inquire().json()["id"] for _ in range(2))
    app.extensions["worker"].drain()

    client = _client(server, files)
    listed = client.service.getXzcxList(MAX=10)
    assert listed.Head.RESPONSECODE == "0000"
    rows = listed.Data.QQ
    assert len(rows) == 2 and all(r.XZ == "1" for r in rows)
    again = client.service.getXzcxList()
    assert again.Head.RESPONSEINFO == "0 request(s)"  # listed already: not again within the refetch window
    assert client.service.cxwsInfo(BDHM=rows[0].BDHM).Head.RESPONSEINFO == "0 document(s)"

    message = rows[0].QQNR if isinstance(rows[0].QQNR, bytes) else base64.b64decode(rows[0].QQNR)
    answer = BankAgency("bank").handle(message)
    acks = client.service.shfeedXzcxInfo(Data={"FK": [{"BDHM": rows[0].BDHM, "FKNR": answer}]})
    assert [(a.BDHM, a.CLJG) for a in acks.Data.HZ] == [(rows[0].BDHM, "1")]
    back = client.service.htInfo(BDHM=rows[1].BDHM, HTYY="账户信息不全")
    assert back.Data.HZ[0].CLJG == "1"
    states = {i: api.get(f"/api/v1/requests/{i}").json() for i in (first, second)}
    by_key = {d["id"]: d for s in states.values() for d in s["deliveries"] if d["agency"] == "bank-pull"}
    assert by_key[rows[0].BDHM]["state"] == "answered" and by_key[rows[0].BDHM]["result"]["asset_count"] >= 1
    assert by_key[rows[1].BDHM]["state"] == "rejected"
    assert by_key[rows[1].BDHM]["error"] == "sent back by bank-pull: 账户信息不全"

    with pytest.raises(Fault) as refused:
        _client(server, files, password=OTHER_PASSWORD).service.getXzcxList()
    assert refused.value.message == "bad credentials (code 2000): unknown user name or wrong password"
    assert refused.value.detail is not None
