"""The console as an OpenID Connect relying party (authlib): the authorization code
flow with PKCE (S256), ``state`` and ``nonce``, against the court's identity provider.

``begin`` makes the authorization URL and the secrets the browser must bring back
(kept by the views in a short-lived signed cookie, never server-side, so any
gunicorn worker can finish a login another began). ``finish`` checks ``state``,
trades the code for tokens at the provider's token endpoint (with the PKCE
verifier, and the client secret if the client has one) and verifies the ID
token: signature against the provider's JWKS (refetched once when a token names
an unknown key: providers rotate), algorithm pinned to the asymmetric ones the
settings list (never taken from the token alone), ``iss``, ``aud``/``azp``, ``exp``,
``iat``, ``nonce`` and, when present, ``at_hash``. Each refusal is a
``LoginRefused`` whose ``rule`` names what failed (``state_mismatch``,
``signature_invalid``, ``nonce_mismatch``...).

The provider's discovery document and keys are fetched over HTTPS (plain HTTP
only to loopback, for tests and the demo), verified against ``oidc_ca_file`` when
set, never through a proxy from the environment, and cached per process.
"""

from __future__ import annotations

import hmac
import re
import secrets
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Mapping

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.integrations.base_client.errors import OAuthError
from authlib.jose import JsonWebKey, JsonWebToken, KeySet
from authlib.jose.errors import (BadSignatureError, DecodeError, ExpiredTokenError, InvalidClaimError,
                                 InvalidTokenError, JoseError, MissingClaimError, UnsupportedAlgorithmError)
from authlib.oidc.core import CodeIDToken
from authlib.oidc.discovery import OpenIDProviderMetadata

from gateway.auth.tokens import ASYMMETRIC_ALGORITHMS
from gateway.errors import ConfigError, LoginRefused
from gateway.settings import ConsoleSection

DISCOVERY_PATH = "/.well-known/openid-configuration"
METADATA_TTL_SECONDS = 300.0
# A token naming an unknown key refetches the JWKS, but not more often than this:
# forged tokens with random kids must not turn into a stream of fetches.
JWKS_REFETCH_SECONDS = 10.0
LEEWAY_SECONDS = 30
_OAUTH_ERROR = re.compile(r"^[a-z_]{1,40}$")
_CLAIM_RULES = {"iss": "issuer_mismatch", "aud": "audience_mismatch", "azp": "audience_mismatch",
                "nonce": "nonce_mismatch", "at_hash": "at_hash_mismatch"}


@dataclass(frozen=True)
class PendingLogin:
    """What one browser must bring back to finish its login (kept in a signed cookie)."""

    state: str
    nonce: str
    code_verifier: str
    redirect_uri: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PendingLogin":
        try:
            return cls(**{k: str(data[k]) for k in ("state", "nonce", "code_verifier", "redirect_uri")})
        except (KeyError, TypeError):
            raise LoginRefused("state_missing", "no login is in progress in this browser: start again") from None


class OidcClient:
    """One provider, one client registration; safe to share between threads."""

    def __init__(self, section: ConsoleSection, client_secret: str | None = None):
        if not section.oidc_issuer:
            raise ConfigError("setting console.oidc_issuer is empty: no identity provider to log in with")
        self.issuer = section.oidc_issuer
        self.client_id = section.oidc_client_id
        self._client_secret = client_secret or None
        self._scope = " ".join(section.oidc_scopes)
        self._algorithms = [a for a in section.oidc_algorithms if a in ASYMMETRIC_ALGORITHMS]
        if not self._algorithms:
            raise ConfigError(f"setting console.oidc_algorithms must name at least one of "
                              f"{', '.join(ASYMMETRIC_ALGORITHMS)}")
        self._jwt = JsonWebToken(self._algorithms)
        self._verify: bool | str = section.oidc_ca_file or True
        self._timeout = section.oidc_timeout_seconds
        self._lock = threading.Lock()
        self._metadata: tuple[OpenIDProviderMetadata, float] | None = None
        self._keys: tuple[KeySet, float] | None = None

    # --- the two steps of a login ---------------------------------------------------

    def begin(self, redirect_uri: str) -> tuple[str, PendingLogin]:
        """The provider's authorization URL to send the browser to, and what it must bring back."""
        pending = PendingLogin(state=secrets.token_urlsafe(32), nonce=secrets.token_urlsafe(32),
                               code_verifier=secrets.token_urlsafe(64), redirect_uri=redirect_uri)
        with self._oauth_session(redirect_uri) as client:  # type: ignore[attr-defined]  # types-authlib drops OAuth2Session's requests.Session base
            url, _ = client.create_authorization_url(self.metadata()["authorization_endpoint"], state=pending.state,
                                                     code_verifier=pending.code_verifier, nonce=pending.nonce)
        return url, pending

    def finish(self, pending: PendingLogin, callback: Mapping[str, str]) -> dict[str, Any]:
        """The verified ID token claims of the login ``callback`` (the redirect's query) ends."""
        state = callback.get("state") or ""
        if not hmac.compare_digest(state.encode(), pending.state.encode()):
            raise LoginRefused("state_mismatch", "the login's state does not match the one this browser started "
                                                 "with (a forged or stale callback): start again")
        if callback.get("error"):
            # Only the error code, and only if it is one: the rest of the query is anyone's to write.
            error = callback["error"] if _OAUTH_ERROR.match(callback["error"]) else "(not an OAuth error code)"
            raise LoginRefused("provider_refused", f"the identity provider refused the login: {error}")
        code = callback.get("code")
        if not code:
            raise LoginRefused("code_missing", "the identity provider's answer carries no authorization code")
        token_endpoint = self.metadata()["token_endpoint"]
        try:
            with self._oauth_session(pending.redirect_uri) as client:  # type: ignore[attr-defined]  # types-authlib drops OAuth2Session's requests.Session base
                tokens = client.fetch_token(token_endpoint, grant_type="authorization_code", code=code,
                                            code_verifier=pending.code_verifier)
        except OAuthError as exc:
            raise LoginRefused("code_refused", f"the identity provider's token endpoint refused the code: "
                                               f"{exc.error} {(exc.description or '')[:200]}".strip()) from None
        except (requests.RequestException, ValueError) as exc:
            raise LoginRefused("provider_unreachable", f"the identity provider's token endpoint did not answer "
                                                       f"usably: {type(exc).__name__}") from None
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise LoginRefused("id_token_missing", "the token endpoint's answer carries no ID token "
                                                   "(is the openid scope granted?)")
        return self.verify_id_token(id_token, nonce=pending.nonce, access_token=tokens.get("access_token"))

    def verify_id_token(self, id_token: str, *, nonce: str, access_token: str | None = None) -> dict[str, Any]:
        if id_token.count(".") != 2:
            raise LoginRefused("id_token_invalid", "the ID token is not a signed JWT (JWS compact form)")
        options = {"iss": {"essential": True, "value": self.issuer},
                   "aud": {"essential": True, "value": self.client_id},
                   "nonce": {"essential": True, "value": nonce}}
        params = {"nonce": nonce, "client_id": self.client_id}
        if access_token:
            params["access_token"] = access_token
        try:
            claims = self._jwt.decode(id_token, self._key_for, claims_cls=CodeIDToken, claims_options=options,
                                      claims_params=params)
            claims.validate(leeway=LEEWAY_SECONDS)
        except BadSignatureError:
            raise LoginRefused("signature_invalid", "the ID token's signature does not verify against the "
                                                    "identity provider's keys") from None
        except UnsupportedAlgorithmError:
            raise LoginRefused("algorithm_refused", f"the ID token is not signed with an accepted algorithm "
                                                    f"({', '.join(self._algorithms)})") from None
        except ExpiredTokenError:
            raise LoginRefused("expired", "the ID token has expired") from None
        except (MissingClaimError, InvalidClaimError) as exc:
            claim = getattr(exc, "claim_name", None) or _quoted(exc.description)
            rule = _CLAIM_RULES.get(claim, "claim_missing" if isinstance(exc, MissingClaimError) else "claim_invalid")
            raise LoginRefused(rule, f"the ID token's {claim or 'claims'} claim is "
                                     f"{'missing' if isinstance(exc, MissingClaimError) else 'not accepted'}") from None
        except InvalidTokenError:
            raise LoginRefused("not_yet_valid", "the ID token is not valid yet (iat or nbf in the future)") from None
        except (JoseError, DecodeError, ValueError) as exc:
            raise LoginRefused("id_token_invalid", f"the ID token cannot be read: {type(exc).__name__}") from None
        return dict(claims)

    # --- provider metadata and keys -----------------------------------------------------

    def metadata(self) -> OpenIDProviderMetadata:
        """The provider's discovery document, checked: its issuer must be the one configured."""
        cached = self._metadata
        if cached and time.monotonic() - cached[1] < METADATA_TTL_SECONDS:
            return cached[0]
        document = self._get_json(self.issuer.rstrip("/") + DISCOVERY_PATH, "discovery document")
        metadata = OpenIDProviderMetadata(document)
        try:
            metadata.validate_issuer()
            metadata.validate_authorization_endpoint()
            metadata.validate_token_endpoint()
            metadata.validate_jwks_uri()
        except ValueError as exc:
            raise LoginRefused("provider_misconfigured", f"the identity provider's discovery document: {exc}") from None
        if metadata.get("issuer") != self.issuer:
            raise LoginRefused("provider_misconfigured", f"the discovery document names issuer "
                                                         f"{str(metadata.get('issuer'))[:100]!r}, not {self.issuer!r}")
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not metadata.get(name):
                raise LoginRefused("provider_misconfigured", f"the discovery document names no {name}")
        self._metadata = (metadata, time.monotonic())
        return metadata

    def _key_for(self, header: Mapping[str, Any], payload: Any) -> Any:
        kid = header.get("kid")
        keys = self._key_set(refresh=False)
        try:
            key = keys.find_by_kid(kid)
        except ValueError:
            keys = self._key_set(refresh=True)
            try:
                key = keys.find_by_kid(kid)
            except ValueError:
                raise LoginRefused("key_unknown",
                                   "the ID token names a key the identity provider does not publish") from None
        published_alg = key.tokens.get("alg")
        if published_alg and published_alg != header.get("alg"):
            raise LoginRefused("algorithm_refused", "the ID token's algorithm is not the one its key is published for")
        return key

    def _key_set(self, *, refresh: bool) -> KeySet:
        with self._lock:
            cached = self._keys
            if cached:
                age = time.monotonic() - cached[1]
                if (not refresh or age < JWKS_REFETCH_SECONDS) and age < METADATA_TTL_SECONDS:
                    return cached[0]
            document = self._get_json(str(self.metadata()["jwks_uri"]), "JWKS")
            try:
                keys = JsonWebKey.import_key_set(document)
            except (ValueError, TypeError, KeyError, JoseError) as exc:
                raise LoginRefused("provider_misconfigured", f"the identity provider's JWKS is not usable: "
                                                             f"{type(exc).__name__}") from None
            self._keys = (keys, time.monotonic())
            return keys

    def _get_json(self, url: str, what: str) -> dict[str, Any]:
        with requests.Session() as http:
            http.trust_env = False  # never through a proxy, nor a CA bundle, from the environment
            try:
                reply = http.get(url, timeout=self._timeout, verify=self._verify)
                reply.raise_for_status()
                document = reply.json()
            except (requests.RequestException, ValueError) as exc:
                raise LoginRefused("provider_unreachable", f"the identity provider's {what} could not be read "
                                                           f"({type(exc).__name__})") from None
        if not isinstance(document, dict):
            raise LoginRefused("provider_misconfigured", f"the identity provider's {what} is not a JSON object")
        return document

    def _oauth_session(self, redirect_uri: str) -> OAuth2Session:
        session = OAuth2Session(client_id=self.client_id, client_secret=self._client_secret, scope=self._scope,
                                redirect_uri=redirect_uri, code_challenge_method="S256",
                                default_timeout=self._timeout)
        # types-authlib drops OAuth2Session's requests.Session base, and these with it.
        session.trust_env = False  # type: ignore[attr-defined]
        session.verify = self._verify  # type: ignore[attr-defined]
        return session


def _quoted(description: str | None) -> str:
    """The claim an authlib message names between quotes (``Missing 'nonce' claim``)."""
    parts = (description or "").split("'")
    return parts[1] if len(parts) >= 3 else ""
