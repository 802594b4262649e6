"""Who may call a view: each view names its roles with ``require_roles``."""

from __future__ import annotations

from flask import current_app, g, request

from gateway.auth.tokens import Principal, TokenVerifier
from gateway.errors import Forbidden, Unauthenticated


def current_principal() -> Principal:
    """The verified caller of this HTTP request (verified once, kept on ``g``)."""
    if "principal" not in g:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("send Authorization: Bearer <token>")
        verifier: TokenVerifier = current_app.extensions["tokens"]
        g.principal = verifier.verify(token.strip())
    return g.principal


def require_roles(*roles: str) -> Principal:
    principal = current_principal()
    if principal.role not in roles:
        raise Forbidden(f"role {principal.role} may not do this (needs {' or '.join(roles)})")
    return principal


def peek_principal() -> Principal | None:
    """The caller if already verified, for auditing a refused call."""
    return g.get("principal")
