"""Who is logged in to the console: the verified person kept in Flask's signed
session cookie (HttpOnly, SameSite=Strict, scoped to ``/console``; its key is set
by gateway/auditing/console.py). The cookie holds the person's claims (sub, role,
court), how they logged in and until when, never a token.
"""

from __future__ import annotations

import time
from typing import Any

from flask import session

from gateway.auth.tokens import Principal

SESSION_KEY = "person"


def sign_in(person: Principal, *, expires_at: float, method: str) -> None:
    session.clear()  # a new login never inherits anything of an older session
    session[SESSION_KEY] = {"sub": person.sub, "role": person.role, "court": person.court, "agency": person.agency,
                            "exp": int(expires_at), "method": method}


def signed_in_person() -> Principal | None:
    """The console user of this request, or None (never logged in, logged out, or expired)."""
    kept = session.get(SESSION_KEY)
    if not kept or kept.get("exp", 0) <= time.time():
        session.pop(SESSION_KEY, None)
        return None
    return Principal(sub=kept["sub"], role=kept["role"], court=kept.get("court"), agency=kept.get("agency"))


def login_details() -> dict[str, Any]:
    """How and until when the console user logged in (for the page that shows who they are)."""
    kept = session.get(SESSION_KEY) or {}
    return {"method": kept.get("method"), "exp": kept.get("exp")}


def sign_out() -> None:
    session.clear()
