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
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from audit.checkpoints import load_private_key, load_public_key

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
    """Create whichever local keys are missing (all of them with ``force``); return the paths written."""
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
    if force or not settings.subject_key_path.exists():
        _write_private(settings.subject_key_path, secrets.token_hex(32).encode())
        written.append(settings.subject_key_path)
    if force or not settings.checkpoint_key_path.exists():
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
