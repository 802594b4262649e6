"""Local keys for `gateway keys init`: a token signing key and its JWKS, and the
key of the audit log's keyed subject hash. Written with owner-only permissions.

These are for local use, the demo and tests; production verification keys come
from the court's identity provider through ``auth.jwks_url`` or ``auth.jwks_file``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import time
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from audit.checkpoints import keyring, load_private_key, load_public_key, public_key_id

from gateway.auth.tokens import RETIRE_AT
from gateway.errors import ConfigError
from gateway.settings import Settings


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """RFC 7638 thumbprint, so the same key always has the same kid."""
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(public_key))
    canonical = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def init_keys(settings: Settings, *, force: bool = False) -> list[Path]:
    """Create whichever local keys are missing (with ``force``, new token and checkpoint keys
    too, the old checkpoint public key kept to verify what it signed); return the paths written."""
    written = []
    if force or not settings.signing_key_path.exists() or not settings.jwks_path.exists():
        private = ec.generate_private_key(ec.SECP256R1())
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _write_private(settings.signing_key_path, pem)
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private.public_key()))
        jwk.update({"kid": key_id(private.public_key()), "alg": "ES256", "use": "sig"})
        settings.jwks_path.parent.mkdir(parents=True, exist_ok=True)
        settings.jwks_path.write_text(json.dumps({"keys": [jwk]}, indent=2))
        written += [settings.signing_key_path, settings.jwks_path]
    # Never replaced, even with ``force``: it keys every subject hash and event MAC in the
    # audit log, which a new key would make unverifiable (there is no re-keying of the log).
    if not settings.subject_key_path.exists():
        _write_private(settings.subject_key_path, secrets.token_hex(32).encode())
        written.append(settings.subject_key_path)
    if force or not settings.checkpoint_key_path.exists():
        if settings.checkpoint_public_key_path.exists():
            # Checkpoints the old key signed must still verify: keep its public key (as a rotation does).
            old = read_checkpoint_public_key(settings)
            retired = retired_checkpoint_keys_dir(settings)
            retired.mkdir(parents=True, exist_ok=True)
            (retired / f"{public_key_id(old)}.pub.pem").write_bytes(settings.checkpoint_public_key_path.read_bytes())
        checkpoint_key = Ed25519PrivateKey.generate()
        _write_private(settings.checkpoint_key_path, checkpoint_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        public = settings.checkpoint_public_key_path
        public.parent.mkdir(parents=True, exist_ok=True)
        public.write_bytes(checkpoint_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        written += [settings.checkpoint_key_path, public]
    return written


def read_subject_key(settings: Settings) -> bytes:
    try:
        return bytes.fromhex(settings.subject_key_path.read_text().strip())
    except FileNotFoundError:
        raise ConfigError(f"{settings.subject_key_path}: audit subject key missing; run `gateway keys init`") from None


def read_checkpoint_key(settings: Settings) -> Ed25519PrivateKey:
    """The private key that signs checkpoints (only the writer needs it)."""
    try:
        return load_private_key(settings.checkpoint_key_path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"{settings.checkpoint_key_path}: audit checkpoint key missing; run `gateway keys init`") from None
    except ValueError as exc:
        raise ConfigError(f"{settings.checkpoint_key_path}: {exc}") from None


def read_checkpoint_public_key(settings: Settings, path: Path | None = None) -> Ed25519PublicKey:
    """The public key that verifies checkpoints: all an auditor needs."""
    path = path or settings.checkpoint_public_key_path
    try:
        return load_public_key(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"{path}: audit checkpoint public key missing; run `gateway keys init`") from None
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def retired_checkpoint_keys_dir(settings: Settings) -> Path:
    return settings.checkpoint_public_key_path.parent / "retired-checkpoint-keys"


def read_checkpoint_public_keys(settings: Settings, paths: list[Path] | None = None) -> dict[str, Ed25519PublicKey]:
    """Every public key the log's checkpoints may name, by key id: the current one and
    those retired by rotation (or exactly the files an auditor names)."""
    if paths:
        return keyring(read_checkpoint_public_key(settings, p) for p in paths)
    retired = sorted(retired_checkpoint_keys_dir(settings).glob("*.pub.pem"))
    return keyring([read_checkpoint_public_key(settings), *(read_checkpoint_public_key(settings, p) for p in retired)])


def _replace(path: Path, data: bytes, *, private: bool) -> None:
    """Write next to ``path`` and rename over it: a reader sees the old file or the new, never half."""
    staged = path.with_name(path.name + ".new")
    if private:
        _write_private(staged, data)
    else:
        staged.write_bytes(data)
    os.replace(staged, path)


def rotate_checkpoint_key(settings: Settings) -> tuple[str, str]:
    """A new checkpoint signing key; the old public key is kept (retired) so checkpoints
    it signed still verify. A running gateway signs with the new key from its next
    checkpoint (it reloads the key file when it changes). Returns (old key id, new key id)."""
    old = read_checkpoint_public_key(settings)
    retired = retired_checkpoint_keys_dir(settings)
    retired.mkdir(parents=True, exist_ok=True)
    (retired / f"{public_key_id(old)}.pub.pem").write_bytes(old.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    new = Ed25519PrivateKey.generate()
    _replace(settings.checkpoint_public_key_path, new.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo), private=False)
    _replace(settings.checkpoint_key_path, new.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()), private=True)
    return public_key_id(old), public_key_id(new.public_key())


def rotate_token_key(settings: Settings, *, grace_seconds: int, now: float | None = None) -> tuple[str, str]:
    """A new token signing key. The JWKS keeps the old public key until ``grace_seconds``
    from now (tokens it signed stay valid until then, or their own expiry), and drops
    keys whose grace has passed. A running gateway reloads the JWKS when it changes.
    Returns (old kid, new kid)."""
    now = time.time() if now is None else now
    document = json.loads(settings.jwks_path.read_text())
    private = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private.public_key()))
    jwk.update({"kid": key_id(private.public_key()), "alg": "ES256", "use": "sig"})
    kept = []
    for old in document.get("keys", []):
        if old.get(RETIRE_AT) is not None and old[RETIRE_AT] <= now:
            continue  # its grace is over
        kept.append({**old, RETIRE_AT: min(old.get(RETIRE_AT) or now + grace_seconds, now + grace_seconds)})
    old_kid = document["keys"][0]["kid"] if document.get("keys") else ""
    # The JWKS first, then the signing key: a token signed with the new key is never
    # checked against a JWKS that lacks it.
    _replace(settings.jwks_path, json.dumps({"keys": [jwk, *kept]}, indent=2).encode(), private=False)
    _replace(settings.signing_key_path, private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()), private=True)
    return old_kid, jwk["kid"]
