"""The court code table (config/courts.toml): which court part of a case number
(the 浙0102 of (2024)浙0102执1234号) belongs to which court. A court registers
cases only under numbers of its own court part.

``load_court_codes`` reads and checks the file once, at start (ConfigError naming
the entry at fault); ``CourtCodes.check`` is pure and runs at every registration.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from gateway.config_files import read_toml
from gateway.errors import ConfigError, RuleViolation
from schemas.canonical import COURT_CODE
from schemas.identifiers import IdentifierError, case_number_court_part, check_court_part


@dataclass(frozen=True)
class CourtCodes:
    parts: Mapping[str, frozenset[str]]  # court id -> the court parts of its case numbers
    source: str = "config/courts.toml"

    @classmethod
    def from_table(cls, table: Mapping[str, Any], source: str) -> CourtCodes:
        parts: dict[str, frozenset[str]] = {}
        for court, value in table.items():
            if not COURT_CODE.match(court):
                raise ConfigError(f"{source}: court {court!r} must be 2 to 32 letters or digits")
            values = value if isinstance(value, list) else [value]
            if not values or not all(isinstance(v, str) for v in values):
                raise ConfigError(f"{source}: court {court} must name a court part (\"浙0102\") or a list of them")
            try:
                parts[court] = frozenset(check_court_part(v) for v in values)
            except IdentifierError as exc:
                raise ConfigError(f"{source}: court {court}: {exc}") from None
        owners: dict[str, str] = {}
        for court, court_parts in parts.items():
            for part in court_parts:
                if part in owners:
                    raise ConfigError(f"{source}: court part {part} is listed for both court {owners[part]} and "
                                      f"court {court}; a case number names one court")
                owners[part] = court
        return cls(parts, source)

    def check(self, court: str, case_number: str) -> None:
        """Refuse (422 naming the field and the rule) a case number whose court part
        is not the court's, and any case of a court the table does not know."""
        known = self.parts.get(court)
        if known is None:
            raise RuleViolation(
                f"court {court} is not in the court code table ({self.source}); its case numbers cannot be checked",
                fields={"court_code": [f"court {court} has no entry in the court code table ({self.source}): "
                                       "ask the operator to add its case-number court part"]})
        part = case_number_court_part(case_number)
        if part not in known:
            rule = (f"the court part of a case number must be the registering court's: {case_number} names "
                    f"{part}, court {court} numbers its cases {' or '.join(sorted(known))} ({self.source})")
            raise RuleViolation(f"case number {case_number} is not a case of court {court}",
                                fields={"case_number": [rule]})


def load_court_codes(path: Path) -> CourtCodes:
    source = str(path)
    document = read_toml(path, "court code table")
    # [superiors], the courts' hierarchy, is read by gateway/transfers/courts.py.
    unknown = set(document) - {"courts", "superiors"}
    if unknown or not isinstance(document.get("courts"), dict):
        raise ConfigError(f"{source}: must hold one table [courts] (court id = \"court part\") and may hold "
                          f"[superiors], found {', '.join(sorted(document)) or 'nothing'}")
    return CourtCodes.from_table(document["courts"], source)
