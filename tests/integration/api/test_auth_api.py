"""Tokens: algorithms pinned, issuer, audience, expiry, not-before and signature
checked; every refusal is a 401 and an audit event."""

import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from conftest import COURT, audit_rows


def _claims(settings, **change):
    now = int(time.time())
    claims = {"iss": settings.auth.issuer, "aud": settings.auth.audience, "sub": "officer.wang",
              "role": "court_officer", "court": COURT, "iat": now, "nbf": now, "exp": now + 600}
    claims.update(change)
    return {k: v for k, v in claims.items() if v is not None}


def _signing_key(settings):
    return serialization.load_pem_private_key(settings.signing_key_path.read_bytes(), password=None)


def _kid(settings):
    return jwt.get_unverified_header(__import__("gateway.auth.tokens", fromlist=["x"]).issue_token(
        settings, role="court_officer", sub="x", court=COURT))["kid"]


def _token(settings, key=None, algorithm="ES256", headers=None, **change):
    key = key or _signing_key(settings)
    return jwt.encode(_claims(settings, **change), key, algorithm=algorithm, headers={"kid": _kid(settings), **(headers or {})})


def _hs256_forgery(settings):
    """The classic algorithm-confusion attack: HMAC keyed with the public key's PEM."""
    import hashlib
    import hmac
    import json

    public_pem = _signing_key(settings).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    part = lambda obj: jwt.utils.base64url_encode(json.dumps(obj).encode()).decode()  # noqa: E731
    signing_input = f"{part({'alg': 'HS256', 'typ': 'JWT', 'kid': _kid(settings)})}.{part(_claims(settings))}"
    signature = jwt.utils.base64url_encode(hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()).decode()
    return f"{signing_input}.{signature}"


def test_a_good_token_is_accepted(api, settings):
    assert api.register_case(token=_token(settings)).status_code == 201


@pytest.mark.parametrize(
    "name, make, reason",
    [
        ("wrong issuer", lambda s: _token(s, iss="someone-else"), "issuer"),
        ("wrong audience", lambda s: _token(s, aud="another-service"), "audience"),
        ("expired", lambda s: _token(s, exp=int(time.time()) - 3600, iat=int(time.time()) - 7200,
                                     nbf=int(time.time()) - 7200), "expired"),
        ("not yet valid", lambda s: _token(s, nbf=int(time.time()) + 3600), "not valid yet"),
        ("no expiry", lambda s: _token(s, exp=None), "exp"),
        ("no role", lambda s: _token(s, role=None), "role"),
        ("officer without court", lambda s: _token(s, court=None), "court"),
        ("signed by another key", lambda s: _token(s, key=ec.generate_private_key(ec.SECP256R1())), "signature"),
        ("HS256 with the public key as secret", lambda s: _hs256_forgery(s), "algorithm"),
        ("RS256 by a key we do not hold", lambda s: _token(
            s, key=rsa.generate_private_key(public_exponent=65537, key_size=2048), algorithm="RS256"), "algorithm"),
        ("alg none", lambda s: jwt.encode(_claims(s), None, algorithm="none", headers={"kid": _kid(s)}), "algorithm"),
        ("unknown kid", lambda s: _token(s, headers={"kid": "nobody"}), "unknown key"),
        ("garbage", lambda s: "not.a.token", "not valid"),
    ],
)
def test_bad_tokens_are_refused_with_401(api, app, settings, name, make, reason):
    reply = api.register_case(token=make(settings))
    assert reply.status_code == 401, f"{name}: {reply.status_code} {reply.text}"
    error = reply.json()["error"]
    assert error["code"] == "unauthenticated" and reason in error["message"], error
    (event,) = audit_rows(app)
    assert event.outcome == "refused" and event.details["status"] == 401 and event.actor_sub is None


def test_tampered_payload_breaks_the_signature(api, settings):
    header, payload, signature = _token(settings).split(".")
    forged_payload = jwt.utils.base64url_encode(
        __import__("json").dumps(_claims(settings, court="110105")).encode()).decode()
    reply = api.register_case(token=f"{header}.{forged_payload}.{signature}")
    assert reply.status_code == 401 and "signature" in reply.json()["error"]["message"]


def test_missing_or_malformed_authorization_header(api):
    assert api.register_case(token=None).status_code == 401
    reply = api.post("/api/v1/cases", json={}, token=None, headers={"Authorization": "Basic abc"})
    assert reply.status_code == 401 and "Bearer" in reply.json()["error"]["message"]


def test_keys_from_a_jwks_url(overrides, settings, psb_sandbox):
    """Verification keys fetched from a JWKS URL (an identity provider) instead of a file."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from conftest import Api, make_app
    from sandboxes.server import SandboxServer

    jwks = settings.jwks_path.read_bytes()

    class Jwks(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(jwks)

        def log_message(self, *args):
            pass

    provider = ThreadingHTTPServer(("127.0.0.1", 0), Jwks)
    threading.Thread(target=provider.serve_forever, daemon=True).start()
    overrides["auth"] = {**overrides["auth"], "jwks_url": f"http://127.0.0.1:{provider.server_port}/jwks.json",
                         "jwks_file": "/nonexistent/jwks.json"}
    app = make_app(overrides, {"psb": psb_sandbox.url})
    server = SandboxServer(app).start()
    try:
        api = Api(server.url, settings)
        assert api.register_case().status_code == 201
        assert api.register_case(token=_token(settings, key=ec.generate_private_key(ec.SECP256R1()))).status_code == 401
    finally:
        server.stop()
        provider.shutdown()
        app.extensions["db"].dispose()
