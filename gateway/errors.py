"""The gateway's one error tree.

Every error a face of the gateway can show a caller is a ``GatewayError`` with a
stable ``code`` and an ``http_status``; one handler (gateway/api.py) renders it as
``{"error": {"code", "message", "fields"}}``. Adapter errors (adapters/errors.py)
never reach a caller: the worker turns them into delivery outcomes.

    GatewayError
    ├── ConfigError            bad settings or registry, raised at start
    ├── InvalidInput      400  a field breaks its rule (fields names each one)
    ├── Unauthenticated   401  no token, or a token that fails verification
    ├── Forbidden         403  the token's role or court may not do this
    │   ├── PurposeDenied 403  the subject is not a debtor of the caller's case
    │   └── LoginRefused  403  a console login broke a rule (``rule`` names it)
    ├── NotFound          404
    ├── Conflict          409
    │   ├── IdempotencyConflict  same Idempotency-Key, other body
    │   └── IllegalTransition    a state move its machine's table refuses (gateway/transitions.py)
    ├── TooLarge          413  a body or file above its size limit
    ├── RuleViolation     422  well-formed, but a rule of the domain forbids it
    └── TooManyRequests   429
"""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    code = "internal_error"
    http_status = 500

    def __init__(self, message: str, *, fields: dict[str, Any] | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        if code is not None:
            self.code = code

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "fields": self.fields}}


class ConfigError(GatewayError):
    code = "config_error"


class InvalidInput(GatewayError):
    code = "invalid_input"
    http_status = 400


class Unauthenticated(GatewayError):
    code = "unauthenticated"
    http_status = 401


class Forbidden(GatewayError):
    code = "forbidden"
    http_status = 403


class PurposeDenied(Forbidden):
    code = "purpose_denied"


class LoginRefused(Forbidden):
    """A console login refused: ``rule`` is the stable name of the rule it broke
    (``role_unknown``, ``state_mismatch``, ``signature_invalid``...), also in ``fields``."""

    code = "login_refused"

    def __init__(self, rule: str, message: str):
        super().__init__(message, fields={"rule": rule})
        self.rule = rule


class NotFound(GatewayError):
    code = "not_found"
    http_status = 404


class Conflict(GatewayError):
    code = "conflict"
    http_status = 409


class IdempotencyConflict(Conflict):
    code = "idempotency_conflict"


class IllegalTransition(Conflict):
    """A delivery or request asked to move to a state its table does not allow from
    the one it is in (gateway/deliveries/states.py, gateway/requests/states.py)."""

    code = "illegal_transition"


class TooLarge(GatewayError):
    code = "too_large"
    http_status = 413


class RuleViolation(GatewayError):
    code = "rule_violation"
    http_status = 422


class TooManyRequests(GatewayError):
    code = "too_many_requests"
    http_status = 429

    def __init__(self, message: str, *, retry_after_seconds: int, fields: dict[str, Any] | None = None):
        super().__init__(message, fields=fields)
        self.retry_after_seconds = max(1, retry_after_seconds)  # sent as Retry-After


class NotAcceptable(GatewayError):
    code = "not_acceptable"
    http_status = 406


class ServiceUnavailable(GatewayError):
    """The gateway lacks something it needs to answer (a font, a key); the message says what."""

    code = "service_unavailable"
    http_status = 503
