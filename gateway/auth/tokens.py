"""JWT verification and (for local use) issuing.

Verification pins the algorithm to the one the verification key is for, never
the token's own ``alg``; requires ``exp``, ``nbf``, ``iat``, ``iss``, ``aud`` and
``sub``; and accepts asymmetric algorithms only. Key objects are parsed once.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.errors import ConfigError, Unauthenticated
from gateway.settings import Settings
from schemas.vocabulary import ROLES

log = logging.getLogger(__name__)

ASYMMETRIC_ALGORITHMS = ("ES256", "ES384", "EdDSA", "RS256", "PS256")
# A JWK member of ours (gateway keys rotate --token): after this time (unix seconds)
# tokens the key signed are refused; until then they verify beside the new key's.
RETIRE_AT = "retire_at"
COURT_ROLES = ("court_officer", "approver")
_VERIFIED_CACHE_SIZE = 10_000


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's verified claims."""

    sub: str
    role: str
    court: str | None = None
    agency: str | None = None


def same_person(sub_a: str, sub_b: str) -> bool:
    """Whether two token subjects name one person: identity providers differ in letter
    case, full-width forms and stray spaces (``Officer-A`` is ``officer-a``)."""
    return _person_key(sub_a) == _person_key(sub_b)


def _person_key(sub: str) -> str:
    return unicodedata.normalize("NFKC", sub).strip().casefold()


class TokenVerifier:
    def __init__(self, settings: Settings):
        auth = settings.auth
        self._issuer, self._audience, self._leeway = auth.issuer, auth.audience, auth.leeway_seconds
        self._allowed = tuple(a for a in auth.algorithms if a in ASYMMETRIC_ALGORITHMS)
        if not self._allowed:
            raise ConfigError(f"auth.algorithms must name at least one of {', '.join(ASYMMETRIC_ALGORITHMS)}")
        self._client = jwt.PyJWKClient(auth.jwks_url, cache_keys=True) if auth.jwks_url else None
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._retire_at: dict[str, float] = {}
        self._jwks_path = settings.jwks_path
        self._jwks_stamp: tuple[int, int] | None = None  # (mtime_ns, size) of the JWKS file as loaded
        self._next_look = 0.0
        self._reload_lock = threading.Lock()
        if not self._client:
            self._reload_if_changed(force=True)
        # A court system sends the same token with many requests: remember what a
        # token string verified to until it expires, instead of re-checking the
        # signature each time (ES256 verification is the costliest step of a call).
        self._verified: dict[str, tuple[Principal, float, str | None]] = {}
        self._verified_lock = threading.Lock()

    @staticmethod
    def _load_jwks_file(path: Path) -> tuple[dict[str | None, jwt.PyJWK], dict[str, float]]:
        try:
            document = json.loads(path.read_text())
            key_set = jwt.PyJWKSet.from_dict(document)
        except FileNotFoundError:
            raise ConfigError(f"{path}: JWKS file not found; run `gateway keys init` or set auth.jwks_url") from None
        except (ValueError, jwt.PyJWKSetError) as exc:
            raise ConfigError(f"{path}: not a usable JWKS: {exc}") from None
        keys: dict[str | None, jwt.PyJWK] = {k.key_id: k for k in key_set.keys}
        if len(key_set.keys) == 1:
            keys[None] = key_set.keys[0]  # a token without kid may use the only key
        retire_at = {k["kid"]: float(k[RETIRE_AT]) for k in document.get("keys", [])
                     if k.get("kid") and k.get(RETIRE_AT) is not None}
        return keys, retire_at

    def _reload_if_changed(self, *, force: bool = False, look_now: bool = False) -> None:
        """Read the JWKS file again if it changed (a key rotation), looking at most once a
        second (``look_now``: at once, for a token naming a key not loaded; a stat costs
        little, the file is read only if it changed): a running gateway takes new keys
        without a restart."""
        if not (force or look_now) and time.monotonic() < self._next_look:
            return
        with self._reload_lock:
            self._next_look = time.monotonic() + 1.0
            try:
                info = self._jwks_path.stat()
            except FileNotFoundError:
                if force:
                    self._load_jwks_file(self._jwks_path)  # raises the ConfigError naming the file
                return  # mid-rotation or removed: keep what was loaded
            stamp = (info.st_mtime_ns, info.st_size)
            if stamp == self._jwks_stamp:
                return
            try:
                self._keys, self._retire_at = self._load_jwks_file(self._jwks_path)
            except ConfigError:
                if force:
                    raise
                log.warning("JWKS file %s could not be read again; keeping the keys loaded before", self._jwks_path)
                return
            self._jwks_stamp = stamp

    def _key_for(self, token: str) -> jwt.PyJWK:
        if self._client:
            try:
                return self._client.get_signing_key_from_jwt(token)
            except jwt.PyJWKClientError as exc:
                raise Unauthenticated(f"no verification key for this token: {exc}") from None
        self._reload_if_changed()
        kid = jwt.get_unverified_header(token).get("kid")
        key = self._keys.get(kid)
        if key is None:
            self._reload_if_changed(look_now=True)  # signed with a key rotated in just now?
            key = self._keys.get(kid)
        if key is None:
            raise Unauthenticated("token is signed with an unknown key (kid)")
        if kid in self._retire_at and time.time() >= self._retire_at[kid]:
            raise Unauthenticated("token is signed with a retired key (its grace period after rotation is over)")
        return key

    def verify(self, token: str) -> Principal:
        now = time.time()
        cached = self._verified.get(token)
        if cached is not None and now < cached[1] and not self._retired(cached[2], now):
            return cached[0]
        principal, expires = self._verify(token)  # a retired key's token is refused here
        kid = jwt.get_unverified_header(token).get("kid")
        with self._verified_lock:
            if len(self._verified) >= _VERIFIED_CACHE_SIZE:
                self._verified.clear()  # simple and bounded; a refill costs one verification per token
            self._verified[token] = (principal, expires, kid)
        return principal

    def _retired(self, kid: str | None, now: float) -> bool:
        """Whether a remembered token's key has retired since: a rotation with a short grace
        must end a token already in use too, not only the ones first seen after it."""
        if self._client is None:
            self._reload_if_changed()  # at most a stat a second
        retire_at = self._retire_at.get(kid) if kid else None
        return retire_at is not None and now >= retire_at

    def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            key = self._key_for(token)
            if key.algorithm_name not in self._allowed:
                raise Unauthenticated(f"verification key algorithm {key.algorithm_name} is not accepted")
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm_name],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "nbf", "iat", "iss", "aud", "sub"]},
            )
        except jwt.InvalidAlgorithmError:
            raise Unauthenticated("token algorithm is not accepted") from None
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("token has expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated("token is not valid yet (nbf/iat in the future)") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated("token issuer is not accepted") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated("token audience is not this gateway") from None
        except jwt.InvalidSignatureError:
            raise Unauthenticated("token signature does not verify") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"token lacks the {exc.claim} claim") from None
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"token is not valid: {exc}") from None
        return _principal(claims), float(claims["exp"]) + self._leeway


def _principal(claims: dict) -> Principal:
    role = claims.get("role")
    if role not in ROLES:
        raise Unauthenticated(f"token role must be one of {', '.join(ROLES)}")
    court, agency = claims.get("court"), claims.get("agency")
    if role in COURT_ROLES and not isinstance(court, str):
        raise Unauthenticated(f"a {role} token must name its court")
    if role == "agency" and not isinstance(agency, str):
        raise Unauthenticated("an agency token must name its agency")
    return Principal(sub=str(claims["sub"]), role=role, court=court, agency=agency)


def issue_token(
    settings: Settings,
    *,
    role: str,
    sub: str,
    court: str | None = None,
    agency: str | None = None,
    lifetime_seconds: int | None = None,
) -> str:
    """Sign a token with the local key (`gateway token`, the demo and tests)."""
    from gateway.auth.keys import key_id

    if role not in ROLES:
        raise ConfigError(f"role must be one of {', '.join(ROLES)}")
    private = serialization.load_pem_private_key(settings.signing_key_path.read_bytes(), password=None)
    if not isinstance(private, ec.EllipticCurvePrivateKey):  # ES256 needs a P-256 key
        raise ConfigError(f"{settings.signing_key_path} is not an elliptic-curve private key")
    now = int(time.time())
    claims = {
        "iss": settings.auth.issuer,
        "aud": settings.auth.audience,
        "sub": sub,
        "role": role,
        "iat": now,
        "nbf": now,
        "exp": now + (lifetime_seconds or settings.auth.token_lifetime_seconds),
    }
    if court:
        claims["court"] = court
    if agency:
        claims["agency"] = agency
    return jwt.encode(claims, private, algorithm="ES256", headers={"kid": key_id(private.public_key())})
