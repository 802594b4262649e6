"""Validation of Chinese identifiers: resident ID numbers, unified social
credit codes (USCC) and court case numbers.

Pure functions on strings, standard library only, so they can be used at any
trust boundary (API schemas, importers, audit tooling) without side effects.
Every rejection raises IdentifierError whose message names the broken rule,
because these messages are shown to the people who typed the value.
"""

from __future__ import annotations

import datetime as _dt
import re
import unicodedata
from zoneinfo import ZoneInfo

__all__ = [
    "IdentifierError",
    "resident_id_check_digit",
    "check_resident_id",
    "uscc_check_char",
    "check_uscc",
    "check_case_number",
    "normalise_case_number",
    "case_number_court_part",
    "check_court_part",
    "mask_id_number",
]


class IdentifierError(ValueError):
    """str(err) is a sentence for people naming the rule broken, e.g.
    'resident ID number check digit is wrong: expected 5, got 4'."""


_DIGITS = "0123456789"

# GB 11643-1999, ISO 7064 MOD 11-2.
_RID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_RID_CHECK = "10X98765432"
_RID_MIN_BIRTH = _dt.date(1900, 1, 1)
# "In the future" means after today on the court's wall clock, not the machine's: between
# 00:00 and 08:00 Beijing time the UTC date is still yesterday's, and a child born that
# morning would be refused. gateway.timeutil.set_court_timezone keeps this in step with
# the one court clock setting.
_court_zone = ZoneInfo("Asia/Shanghai")


def use_court_timezone(zone: ZoneInfo) -> None:
    global _court_zone
    _court_zone = zone


def _utc_now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def _court_today() -> _dt.date:
    return _utc_now().astimezone(_court_zone).date()

# GB 32100-2015: I, O, Z, S and V are excluded to avoid confusion with 1/0/2/5/U.
_USCC_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUE = {c: i for i, c in enumerate(_USCC_CHARSET)}
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)

_CASE_EXAMPLE = "(2024)浙0102执1234号"
# [0-9] rather than \d: \d also matches non-ASCII digits such as '０' or '٣'.
_CASE_RE = re.compile(
    r"\(([0-9]{4})\)"  # year
    r"([\u4e00-\u9fff])"  # province abbreviation
    r"([0-9]{2,6})"  # court code
    r"(执[恢保异复监协他]?)"  # case type
    r"([1-9][0-9]{0,5})"  # serial, no leading zero
    r"号"
)
_CASE_MIN_YEAR, _CASE_MAX_YEAR = 1990, 2100


def _require_str(value: object, what: str) -> str:
    """Reject non-strings up front so later rules can assume str methods."""
    if not isinstance(value, str):
        raise IdentifierError(f"{what} must be a str, got {type(value).__name__}")
    return value


def _is_ascii_digits(s: str) -> bool:
    """str.isdigit() accepts '²' and full-width digits; identifiers do not."""
    return all(c in _DIGITS for c in s)


def resident_id_check_digit(first17: str) -> str:
    """Compute the 18th character of a resident ID from the first 17 digits,
    so callers can both verify and construct IDs (e.g. in tests)."""
    _require_str(first17, "resident ID number body")
    if len(first17) != 17 or not _is_ascii_digits(first17):
        raise IdentifierError("resident ID number body must be exactly 17 digits")
    total = sum(int(c) * w for c, w in zip(first17, _RID_WEIGHTS, strict=False))
    return _RID_CHECK[total % 11]


def check_resident_id(value: str, *, today: _dt.date | None = None) -> str:
    """Validate an 18-character resident ID number and return it with a
    lower-case 'x' check digit normalised to 'X'. Whitespace is an error, not
    stripped, so that stored values always equal what was validated."""
    _require_str(value, "resident ID number")
    if len(value) != 18:
        raise IdentifierError(
            f"resident ID number must be 18 characters, got {len(value)}"
        )
    body, last = value[:17], value[17]
    if not _is_ascii_digits(body) or not (last in _DIGITS or last in "Xx"):
        raise IdentifierError(
            "resident ID number must be 17 digits followed by a digit or X"
        )
    if body[0] == "0":
        raise IdentifierError("resident ID number region code must not start with 0")
    raw_date = body[6:14]
    try:
        birth = _dt.date(int(raw_date[:4]), int(raw_date[4:6]), int(raw_date[6:]))
    except ValueError:
        raise IdentifierError(
            f"resident ID number birth date {raw_date} is not a real calendar date"
        ) from None
    if birth > (today or _court_today()):
        raise IdentifierError(
            f"resident ID number birth date {raw_date} is in the future"
        )
    if birth < _RID_MIN_BIRTH:
        raise IdentifierError(
            f"resident ID number birth date {raw_date} is before 1900-01-01"
        )
    last = last.upper()
    expected = resident_id_check_digit(body)
    if last != expected:
        raise IdentifierError(
            f"resident ID number check digit is wrong: expected {expected}, got {last}"
        )
    return body + last


def uscc_check_char(first17: str) -> str:
    """Compute the 18th character of a USCC from its first 17 (upper-case
    charset) characters, so callers can both verify and construct codes."""
    _require_str(first17, "unified social credit code body")
    if len(first17) != 17 or any(c not in _USCC_VALUE for c in first17):
        raise IdentifierError(
            "unified social credit code body must be 17 characters from "
            f"{_USCC_CHARSET}"
        )
    total = sum(_USCC_VALUE[c] * w for c, w in zip(first17, _USCC_WEIGHTS, strict=False))
    return _USCC_CHARSET[(31 - total % 31) % 31]


def check_uscc(value: str) -> str:
    """Validate a unified social credit code (GB 32100-2015) and return it
    upper-cased; lower-case input is accepted because people type it."""
    _require_str(value, "unified social credit code")
    if len(value) != 18:
        raise IdentifierError(
            f"unified social credit code must be 18 characters, got {len(value)}"
        )
    # Check per character before upper-casing the whole string: non-ASCII
    # letters such as 'ß' or 'ſ' change length or map onto ASCII when upper-cased.
    bad = sorted({c for c in value if not (c.isascii() and c.upper() in _USCC_VALUE)})
    if bad:
        raise IdentifierError(
            "unified social credit code may only use digits and letters other "
            f"than I, O, Z, S, V; found {''.join(bad)!r}"
        )
    code = value.upper()
    if not _is_ascii_digits(code[2:8]):
        raise IdentifierError(
            "unified social credit code region code (characters 3-8) must be digits"
        )
    expected = uscc_check_char(code[:17])
    if code[17] != expected:
        raise IdentifierError(
            "unified social credit code check character is wrong: "
            f"expected {expected}, got {code[17]}"
        )
    return code


def normalise_case_number(value: str) -> str:
    """A case number as the gateway stores it: full-width forms (（２０２４）, ａ) in their
    ASCII form (Unicode NFKC), tortoise-shell brackets 〔〕 as parentheses. Spaces stay
    (and fail the format): a number is not guessed at. Every place that takes a case number (bodies, paths, queries) uses it, so
    the same case always compares equal however it was typed."""
    text = unicodedata.normalize("NFKC", value)
    return text.replace("〔", "(").replace("〕", ")")


def check_case_number(value: str) -> str:
    """Validate a court enforcement case number such as (2024)浙0102执1234号
    and return it normalised (``normalise_case_number``)."""
    _require_str(value, "case number")
    normalised = normalise_case_number(value)
    match = _CASE_RE.fullmatch(normalised)
    if match is None:
        raise IdentifierError(f"case number must look like {_CASE_EXAMPLE}")
    year = int(match.group(1))
    if not _CASE_MIN_YEAR <= year <= _CASE_MAX_YEAR:
        raise IdentifierError(
            f"case number year must be between {_CASE_MIN_YEAR} and "
            f"{_CASE_MAX_YEAR}, got {year}"
        )
    return normalised


def case_number_court_part(value: str) -> str:
    """The court part of a valid case number: its province abbreviation and court
    code, e.g. '浙0102' of (2024)浙0102执1234号. Raises IdentifierError as
    ``check_case_number`` does for a number that is not one."""
    match = _CASE_RE.fullmatch(check_case_number(value))
    assert match is not None  # check_case_number accepted it
    return match.group(2) + match.group(3)


_COURT_PART_RE = re.compile(r"[\u4e00-\u9fff][0-9]{2,6}")


def check_court_part(value: str) -> str:
    """A court part as a court code table gives it ('浙0102'): one province
    abbreviation and 2 to 6 digits, NFKC-normalised like the case numbers it is
    compared with."""
    _require_str(value, "court part")
    normalised = unicodedata.normalize("NFKC", value)
    if _COURT_PART_RE.fullmatch(normalised) is None:
        raise IdentifierError(
            f"court part must be a province abbreviation and 2 to 6 digits such as 浙0102, got {value!r}"
        )
    return normalised


def mask_id_number(value: str) -> str:
    """Mask an identifier for logs and display: keep the first 4 and last 4
    characters (e.g. '1101**********1234'), or only the last 2 when the value
    has 8 characters or fewer. Values of 2 characters or fewer are masked
    entirely, since 'all but the last 2' would reveal everything."""
    _require_str(value, "identifier")
    n = len(value)
    if n > 8:
        return value[:4] + "*" * (n - 8) + value[-4:]
    if n > 2:
        return "*" * (n - 2) + value[-2:]
    return "*" * n
