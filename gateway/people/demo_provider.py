"""The built-in DEMO identity provider: real OpenID Connect endpoints under
``/console/demo-idp`` (discovery, authorize, token, JWKS), served only when
``[console] demo_provider = true`` (``gateway demo --serve`` turns it on).

It stands in for the court's identity provider so the console's login can be
run end to end with no other server: the authorize page lets anyone pick one of
the demo people (an officer, a judge, an auditor, and a clerk whose role no
console role matches, to show a refusal). There is no password: never serve it
in production. It still does what a provider must, so the relying party is
proved against the real protocol: the client and its redirect URI are checked
before anything is redirected, PKCE (S256) and a nonce are required, a code is
bound to its client, redirect URI and challenge, lives 60 s and is taken once
(per process: codes are signed, not stored, so any worker can redeem one), and
the ID token is signed RS256 with a key marked as a demo key
(``<instance>/keys/demo-idp-rs256.pem``, made at first start, kid ``demo-…``).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from authlib.jose import JsonWebKey, JsonWebToken
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core.util import create_half_hash
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Blueprint, Flask, current_app, jsonify, redirect, render_template, request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from gateway.errors import ConfigError
from gateway.settings import Settings, read_secret

bp = Blueprint("demo_idp", __name__, url_prefix="/console/demo-idp")
ALGORITHM = "RS256"
CODE_LIFETIME_SECONDS = 60
ID_TOKEN_LIFETIME_SECONDS = 300
CALLBACK_PATH = "/console/login/callback"


@dataclass(frozen=True)
class DemoPerson:
    sub: str
    name: str
    role: str  # a console role, or a role no console role matches (the clerk)
    court: str | None
    about: str


DEMO_PEOPLE = (
    DemoPerson("officer.wang", "王某", "court_officer", "330102", "enforcement officer (执行员) of court 330102"),
    DemoPerson("judge.zhao", "赵某", "approver", "330102", "judge (审批法官) of court 330102: approves controls"),
    DemoPerson("auditor.sun", "孙某", "auditor", None, "auditor (审计员): reads the audit log"),
    DemoPerson("clerk.qian", "钱某", "clerk", "330102", "court clerk (书记员): no console role, refused"),
)


class DemoAuthorizationError(Exception):
    """An authorization request the provider answers by redirecting back with ``error``."""

    def __init__(self, error: str, description: str):
        super().__init__(description)
        self.error, self.description = error, description


class DemoProvider:
    """The provider's state: its demo key, its code signer, the codes already taken."""

    def __init__(self, settings: Settings):
        console = settings.console
        self.issuer = console.oidc_issuer
        self.client_id = console.oidc_client_id
        self.client_secret = read_secret(console.oidc_client_secret_env) if console.oidc_client_secret_env else None
        self.redirect_uri = console.oidc_redirect_uri or _origin(self.issuer) + CALLBACK_PATH
        self.role_claim, self.court_claim = console.role_claim, console.court_claim
        # The provider names roles the way the console's mapping expects them back; where
        # several values mean one role, the last one (an operator's, after the defaults).
        self.role_values = {role: value for value, role in console.role_values.items()}
        pem = ensure_demo_key(settings.keys_dir / "demo-idp-rs256.pem")
        self.key = JsonWebKey.import_key(pem, {"kty": "RSA"})
        self.kid = "demo-" + self.key.thumbprint()
        self.jwt = JsonWebToken([ALGORITHM])
        code_secret = hmac.new(pem, b"gateway demo identity provider codes v1", hashlib.sha256).digest()
        self.codes = URLSafeTimedSerializer(code_secret, salt="demo-idp authorization code")
        self._taken: dict[str, float] = {}
        self._lock = threading.Lock()

    def endpoint(self, name: str) -> str:
        return f"{self.issuer.rstrip('/')}/{name}"

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": self.endpoint("authorize"),
            "token_endpoint": self.endpoint("token"),
            "jwks_uri": self.endpoint("jwks"),
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [ALGORITHM],
            "scopes_supported": ["openid", "profile"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"]
            if self.client_secret else ["none"],
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": ["sub", "name", "nonce", "auth_time", self.role_claim, self.court_claim],
        }

    def jwks(self) -> dict[str, Any]:
        public = self.key.as_dict(is_private=False)
        public.update({"kid": self.kid, "alg": ALGORITHM, "use": "sig"})
        return {"keys": [public]}

    def check_client(self, args: dict[str, str]) -> None:
        """Client and redirect URI: wrong ones are shown, never redirected to."""
        if args.get("client_id") != self.client_id:
            raise ValueError(f"unknown client_id {args.get('client_id', '')[:80]!r} (this provider knows "
                             f"{self.client_id!r}: setting console.oidc_client_id)")
        if args.get("redirect_uri") != self.redirect_uri:
            raise ValueError(f"redirect_uri {args.get('redirect_uri', '')[:200]!r} is not registered "
                             f"(this provider sends logins back to {self.redirect_uri} only)")

    @staticmethod
    def check_request(args: dict[str, str]) -> None:
        if args.get("response_type") != "code":
            raise DemoAuthorizationError("unsupported_response_type", "only response_type=code")
        if "openid" not in (args.get("scope") or "").split():
            raise DemoAuthorizationError("invalid_scope", "the openid scope is required")
        if not args.get("code_challenge") or args.get("code_challenge_method") != "S256":
            raise DemoAuthorizationError("invalid_request", "PKCE is required: code_challenge with method S256")
        if not args.get("nonce"):
            raise DemoAuthorizationError("invalid_request", "a nonce is required")

    def issue_code(self, person: DemoPerson, args: dict[str, str]) -> str:
        return self.codes.dumps({"sub": person.sub, "client_id": args["client_id"],
                                 "redirect_uri": args["redirect_uri"], "nonce": args["nonce"],
                                 "code_challenge": args["code_challenge"], "auth_time": int(time.time()),
                                 "jti": secrets.token_urlsafe(12)})

    def redeem(self, code: str, form: dict[str, str], client_id: str | None) -> dict[str, Any]:
        """The token response for ``code``; raises TokenError."""
        try:
            grant = self.codes.loads(code, max_age=CODE_LIFETIME_SECONDS)
        except SignatureExpired:
            raise TokenError("invalid_grant", "the code has expired") from None
        except BadSignature:
            raise TokenError("invalid_grant", "the code is not one this provider issued") from None
        if grant["client_id"] != client_id:
            raise TokenError("invalid_grant", "the code was issued to another client")
        if form.get("redirect_uri") != grant["redirect_uri"]:
            raise TokenError("invalid_grant", "redirect_uri is not the one the code was issued for")
        verifier = form.get("code_verifier") or ""
        if not hmac.compare_digest(create_s256_code_challenge(verifier), grant["code_challenge"]):
            raise TokenError("invalid_grant", "code_verifier does not match the code_challenge (PKCE)")
        self._take(grant["jti"])
        person = next(p for p in DEMO_PEOPLE if p.sub == grant["sub"])
        access_token = secrets.token_urlsafe(32)
        now = int(time.time())
        at_hash = create_half_hash(access_token, ALGORITHM)
        if at_hash is None:  # authlib knows no such algorithm
            raise RuntimeError(f"cannot make an at_hash with {ALGORITHM}")
        claims: dict[str, Any] = {
            "iss": self.issuer, "sub": person.sub, "aud": self.client_id, "iat": now,
            "exp": now + ID_TOKEN_LIFETIME_SECONDS, "auth_time": grant["auth_time"], "nonce": grant["nonce"],
            "at_hash": at_hash.decode(), "name": person.name,
            self.role_claim: self.role_values.get(person.role, person.role),
        }
        if person.court:
            claims[self.court_claim] = person.court
        header = {"alg": ALGORITHM, "kid": self.kid, "typ": "JWT"}
        id_token = self.jwt.encode(header, claims, self.key).decode()
        # The access token opens nothing (no userinfo endpoint: the ID token carries every claim).
        return {"access_token": access_token, "token_type": "Bearer", "expires_in": ID_TOKEN_LIFETIME_SECONDS,
                "scope": "openid profile", "id_token": id_token}

    def _take(self, jti: str) -> None:
        now = time.monotonic()
        with self._lock:
            for old in [k for k, t in self._taken.items() if now - t > 2 * CODE_LIFETIME_SECONDS]:
                del self._taken[old]
            if jti in self._taken:
                raise TokenError("invalid_grant", "the code has been used already")
            self._taken[jti] = now


class TokenError(Exception):
    def __init__(self, error: str, description: str, status: int = 400):
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


def ensure_demo_key(path: Path) -> bytes:
    """The demo signing key, made once: linked into place so that two workers starting at
    once keep the same key (the loser of the race reads the winner's)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: the demo identity provider's key cannot be read: {exc}") from None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _provider() -> DemoProvider:
    return current_app.extensions["demo_idp"]


def _no_store(answer: Any) -> Any:
    response = current_app.make_response(answer)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


@bp.get("/.well-known/openid-configuration")
def discovery() -> Any:
    return jsonify(_provider().discovery())


@bp.get("/jwks")
def jwks() -> Any:
    return jsonify(_provider().jwks())


@bp.route("/authorize", methods=["GET", "POST"])
def authorize() -> Any:
    provider = _provider()
    source = request.args if request.method == "GET" else request.form
    args = {k: source.get(k, "") for k in ("response_type", "client_id", "redirect_uri", "scope", "state", "nonce",
                                            "code_challenge", "code_challenge_method")}
    try:
        provider.check_client(args)
    except ValueError as exc:
        return render_template("console/demo_idp.html", error=str(exc), people=(), args={}), 400
    try:
        provider.check_request(args)
    except DemoAuthorizationError as exc:
        return _back(args, error=exc.error, error_description=exc.description)
    if request.method == "GET":
        return _no_store(render_template("console/demo_idp.html", error=None, people=DEMO_PEOPLE, args=args))
    if request.form.get("decision") == "deny":
        return _back(args, error="access_denied", error_description="the person declined to log in")
    person = next((p for p in DEMO_PEOPLE if p.sub == request.form.get("person")), None)
    if person is None:
        return render_template("console/demo_idp.html", error="pick one of the demo people", people=DEMO_PEOPLE,
                               args=args), 400
    return _back(args, code=provider.issue_code(person, args))


def _back(args: dict[str, str], **answer: str) -> Any:
    if args.get("state"):
        answer["state"] = args["state"]
    return redirect(f"{args['redirect_uri']}?{urlencode(answer)}", code=302)


@bp.post("/token")
def token() -> Any:
    provider = _provider()
    form = request.form.to_dict()
    try:
        client_id = _authenticate_client(provider, form)
        if form.get("grant_type") != "authorization_code":
            raise TokenError("unsupported_grant_type", "only grant_type=authorization_code")
        if not form.get("code"):
            raise TokenError("invalid_request", "code is required")
        answer = provider.redeem(form["code"], form, client_id)
    except TokenError as exc:
        reply = jsonify({"error": exc.error, "error_description": exc.description})
        reply.status_code = exc.status
        if exc.status == 401:
            reply.headers["WWW-Authenticate"] = 'Basic realm="demo-idp"'
        return _no_store(reply)
    return _no_store(jsonify(answer))


def _authenticate_client(provider: DemoProvider, form: dict[str, str]) -> str:
    auth = request.authorization
    client_id = auth.username if auth and auth.type == "basic" else form.get("client_id")
    secret = auth.password if auth and auth.type == "basic" else form.get("client_secret")
    if client_id != provider.client_id:
        raise TokenError("invalid_client", "unknown client", status=401)
    if provider.client_secret is not None and not hmac.compare_digest((secret or "").encode(),
                                                                      provider.client_secret.encode()):
        raise TokenError("invalid_client", "client authentication failed", status=401)
    return client_id


def init_app(app: Flask) -> None:
    app.extensions["demo_idp"] = DemoProvider(app.config["SETTINGS"])
    app.register_blueprint(bp)
