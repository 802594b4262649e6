"""Cross-site request forgery: every console form that changes something carries a
token kept in the signed session, checked before the view runs.

The session cookie is SameSite=Strict already, which stops most forged posts; the
token also covers what SameSite does not (a same-site page of another application on
the court's domain, older browsers). It is made on first use, kept for the session,
and replaced on login (``sign_in`` clears the session), so a token seen before a
login is worth nothing after it.
"""

from __future__ import annotations

import hmac
import secrets

from flask import request, session

SESSION_KEY = "csrf"
FORM_FIELD = "csrf_token"


def csrf_token() -> str:
    """This session's token (made now if it has none), for a hidden form field."""
    token = session.get(SESSION_KEY)
    if not token:
        token = session[SESSION_KEY] = secrets.token_urlsafe(32)
    return token


def csrf_passes() -> bool:
    """Whether this POST carries the session's token (compared in constant time)."""
    kept = session.get(SESSION_KEY)
    sent = request.form.get(FORM_FIELD) or request.headers.get("X-CSRF-Token") or ""
    return isinstance(kept, str) and bool(kept) and hmac.compare_digest(kept.encode(), sent.encode())
