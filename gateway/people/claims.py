"""Who a verified ID token says a person is, in the console's terms: pure logic,
no HTTP (the login views in gateway/people/views.py call it once the token's
signature, issuer, audience, expiry and nonce have been checked).

The court's identity provider names roles its own way (``role_values`` maps its
values to console roles) and may send one value or a list of them (groups); the
claims that carry role and court are settings too. Every refusal names its rule:

    subject_missing  the token names no person (``sub``)
    role_missing     no role claim at all
    role_unknown     no value of the role claim maps to a console role
    role_ambiguous   values map to several console roles: a person logs in as one
    court_missing    a court officer or judge whose token names no court
    court_invalid    a court claim that is not a court code
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from gateway.auth.tokens import COURT_ROLES, Principal
from gateway.errors import LoginRefused
from gateway.settings import CONSOLE_ROLES, ConsoleSection
from schemas.canonical import COURT_CODE

_MAX_SUB_LENGTH = 200


@dataclass(frozen=True)
class ClaimRules:
    """Which claims carry the role and the court, and what the provider's role values mean."""

    role_claim: str
    court_claim: str
    role_values: Mapping[str, str]

    @classmethod
    def from_settings(cls, section: ConsoleSection) -> "ClaimRules":
        return cls(section.role_claim, section.court_claim, dict(section.role_values))


def person_from_claims(claims: Mapping[str, Any], rules: ClaimRules) -> Principal:
    """The console user the claims describe; raises LoginRefused naming the rule broken."""
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub.strip() or len(sub) > _MAX_SUB_LENGTH:
        raise LoginRefused("subject_missing", "the ID token names no person: claim sub must be a non-empty string "
                                              f"of at most {_MAX_SUB_LENGTH} characters")
    role = _console_role(claims, rules)
    court = claims.get(rules.court_claim)
    if court is None or court == "":
        if role in COURT_ROLES:
            raise LoginRefused("court_missing", f"a {role} must name a court: claim {rules.court_claim!r} is missing "
                                                "(setting console.court_claim)")
        court = None
    elif not isinstance(court, str) or not COURT_CODE.match(court):
        raise LoginRefused("court_invalid", f"claim {rules.court_claim!r} must be a court code "
                                            "(2 to 32 letters or digits)")
    return Principal(sub=sub.strip(), role=role, court=court)


def _console_role(claims: Mapping[str, Any], rules: ClaimRules) -> str:
    if rules.role_claim not in claims:
        raise LoginRefused("role_missing", f"claim {rules.role_claim!r} is missing: the identity provider must say "
                                           "the person's role (setting console.role_claim)")
    value = claims[rules.role_claim]
    values = value if isinstance(value, list) else [value]
    roles = sorted({rules.role_values[v] for v in values if isinstance(v, str) and v in rules.role_values})
    if not roles:
        shown = ", ".join(repr(v)[:40] for v in values[:5]) or "none"
        raise LoginRefused("role_unknown", f"claim {rules.role_claim!r} ({shown}) names no console role: "
                                           f"setting console.role_values maps {', '.join(sorted(rules.role_values))} "
                                           f"to {', '.join(CONSOLE_ROLES)}")
    if len(roles) > 1:
        raise LoginRefused("role_ambiguous", f"claim {rules.role_claim!r} maps to several console roles "
                                             f"({', '.join(roles)}): a person logs in with one role")
    return roles[0]
