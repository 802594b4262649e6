"""The control rules in force, from settings ``[controls]`` (built once per app)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from gateway.controls.terms import LEGAL_MAX_MONTHS, Terms
from gateway.errors import ConfigError
from schemas.vocabulary import CASH_CATEGORIES


@dataclass(frozen=True)
class ControlRules:
    terms: Terms
    warning_days: int
    exempt_account_kinds: frozenset[str]
    protected_monthly_sum: Decimal
    uncontrolled_after_days: int
    repeat_freeze_days: int

    def exempt_kind(self, category: str, details: dict | None) -> str | None:
        """The account kind if the debtor must keep the account (social security, minimum
        living allowance, other exempt funds: never frozen or deducted), else None."""
        if category not in CASH_CATEGORIES:
            return None
        kind = (details or {}).get("account_kind")
        return kind if kind in self.exempt_account_kinds else None

    @classmethod
    def from_settings(cls, section: object | None) -> "ControlRules":
        if section is None:
            return DEFAULT_RULES
        try:
            protected = Decimal(section.protected_monthly_sum)  # type: ignore[attr-defined]
        except InvalidOperation:
            raise ConfigError(f"controls.protected_monthly_sum must be a sum of money such as \"1500.00\", "
                              f"got {section.protected_monthly_sum!r}") from None  # type: ignore[attr-defined]
        for name in ("warning_days", "uncontrolled_after_days", "repeat_freeze_days"):
            if getattr(section, name) < 0:
                raise ConfigError(f"controls.{name} must not be negative")
        if protected < 0:
            raise ConfigError("controls.protected_monthly_sum must not be negative")
        return cls(
            terms=Terms.from_settings(section.term_months),  # type: ignore[attr-defined]
            warning_days=section.warning_days,  # type: ignore[attr-defined]
            exempt_account_kinds=frozenset(section.exempt_account_kinds),  # type: ignore[attr-defined]
            protected_monthly_sum=protected,
            uncontrolled_after_days=section.uncontrolled_after_days,  # type: ignore[attr-defined]
            repeat_freeze_days=section.repeat_freeze_days,  # type: ignore[attr-defined]
        )


DEFAULT_RULES = ControlRules(
    terms=Terms(dict(LEGAL_MAX_MONTHS)), warning_days=30, exempt_account_kinds=frozenset({"11", "12", "13"}),
    protected_monthly_sum=Decimal("0"), uncontrolled_after_days=15, repeat_freeze_days=30,
)
