"""Passwords of agencies that poll (WS-Security UsernameToken), kept as scrypt hashes.

The registry holds ``options.password_hash`` as ``scrypt$n$r$p$salt_b64$hash_b64``
(``gateway agency hash-password`` prints one), never the password. scrypt costs
tens of milliseconds by design, and a polling agency sends its password with
every call: a successful check is remembered per process, keyed by a SHA-256 of
the stored hash and the password (never the password itself), so a poll costs
one hash lookup after the first. A changed hash in the registry starts afresh.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass

SCHEME = "scrypt"
DEFAULT_N, DEFAULT_R, DEFAULT_P = 2**14, 8, 1
_KEY_BYTES = 32
_CACHE_SIZE = 1024


class PasswordHashInvalid(ValueError):
    """The stored hash is not ``scrypt$n$r$p$salt_b64$hash_b64`` with sane parameters."""


@dataclass(frozen=True)
class PasswordHash:
    n: int
    r: int
    p: int
    salt: bytes
    key: bytes


def parse_password_hash(text: str) -> PasswordHash:
    parts = text.split("$") if isinstance(text, str) else []
    if len(parts) != 6 or parts[0] != SCHEME:
        raise PasswordHashInvalid("must be scrypt$n$r$p$salt_b64$hash_b64 (`gateway agency hash-password` prints one)")
    try:
        n, r, p = (int(v) for v in parts[1:4])
        salt, key = base64.b64decode(parts[4], validate=True), base64.b64decode(parts[5], validate=True)
    except (ValueError, binascii.Error):
        raise PasswordHashInvalid("n, r and p must be whole numbers and salt and hash base64") from None
    if n < 2**10 or n > 2**20 or n & (n - 1) or not 1 <= r <= 32 or not 1 <= p <= 16:
        raise PasswordHashInvalid("n must be a power of two from 1024 to 1048576, r 1..32, p 1..16")
    if len(salt) < 16 or len(key) < 16:
        raise PasswordHashInvalid("salt and hash must be at least 16 bytes each")
    return PasswordHash(n, r, p, salt, key)


def _derive(password: str, n: int, r: int, p: int, salt: bytes, length: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=length,
                          maxmem=256 * n * r + 1024 * 1024)


def hash_password(password: str, *, n: int = DEFAULT_N, r: int = DEFAULT_R, p: int = DEFAULT_P) -> str:
    """A new hash of ``password`` with a fresh random salt."""
    if not password:
        raise ValueError("the password must not be empty")
    salt = secrets.token_bytes(16)
    key = _derive(password, n, r, p, salt, _KEY_BYTES)
    return "$".join((SCHEME, str(n), str(r), str(p), base64.b64encode(salt).decode(), base64.b64encode(key).decode()))


class PasswordChecker:
    """Checks passwords against stored hashes, remembering successes (per process)."""

    def __init__(self) -> None:
        self._verified: set[bytes] = set()
        self._lock = threading.Lock()
        self._dummies: dict[tuple[int, int, int, int, int], PasswordHash] = {}

    def check_unknown(self, password: str, like: str | None = None) -> bool:
        """Spend on a user name with no hash what checking a wrong password costs: the
        same derivation, with the parameters of ``like`` (a real stored hash) or the
        defaults, against a random key. Always False. Without it an unknown user name
        answered in a fraction of the time of a known one (user enumeration)."""
        try:
            shape = parse_password_hash(like) if like else None
        except PasswordHashInvalid:
            shape = None
        n, r, p = (shape.n, shape.r, shape.p) if shape else (DEFAULT_N, DEFAULT_R, DEFAULT_P)
        salt_bytes, key_bytes = (len(shape.salt), len(shape.key)) if shape else (16, _KEY_BYTES)
        params = (n, r, p, salt_bytes, key_bytes)
        dummy = self._dummies.get(params)
        if dummy is None:
            dummy = PasswordHash(n, r, p, secrets.token_bytes(salt_bytes), secrets.token_bytes(key_bytes))
            with self._lock:
                self._dummies[params] = dummy
        derived = _derive(password, dummy.n, dummy.r, dummy.p, dummy.salt, len(dummy.key))
        hmac.compare_digest(derived, dummy.key)
        return False

    def check(self, password: str, stored: str) -> bool:
        """True if ``password`` matches ``stored``; a malformed ``stored`` never matches."""
        memo = hashlib.sha256(stored.encode("utf-8") + b"\0" + password.encode("utf-8")).digest()
        if memo in self._verified:
            return True
        try:
            parsed = parse_password_hash(stored)
        except PasswordHashInvalid:
            return False
        derived = _derive(password, parsed.n, parsed.r, parsed.p, parsed.salt, len(parsed.key))
        if not hmac.compare_digest(derived, parsed.key):
            return False
        with self._lock:
            if len(self._verified) >= _CACHE_SIZE:
                self._verified.clear()  # bounded; a refill costs one scrypt per agency
            self._verified.add(memo)
        return True
