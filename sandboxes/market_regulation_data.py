"""Deterministic records the market regulation sandbox holds for a subject.

Everything is derived from ``sha256(CerNo)`` (the *seed*), never from the
``random`` module, so the same subject gets the same records in every process
and tests can state what they expect through ``describe_subject``.

Rules:

* ``seed[0] % 8 == 0``: the register knows nothing -> QYDJ null, GQ [].
* Persons (CerType ``10``): QYDJ null; equity in 0-3 companies. A number that
  cannot be a resident ID (17 digits then a digit or ``X``) has nothing.
* Organisations (CerType ``20``): QYDJ (the company itself: name as asked,
  its code, a 15-digit registration number, legal representative, state,
  founding date, registered capital); equity in 0-2 other companies.
* A holding may already carry a freeze by another court (about one in four):
  ``initial_freeze``. Freezes placed through the sandbox live in its register
  (``market_regulation.EquityRegister``), not here.

Each kind of record draws from its own labelled byte stream, so asking for one
list never changes the other.
"""

from __future__ import annotations

import hashlib
import re
from datetime import date, timedelta
from typing import Any, Iterable

from sandboxes.subject_bytes import SubjectBytes, subject_seed

__all__ = ["CATEGORIES", "ID_TYPES", "describe_subject", "initial_freeze", "uscc"]

CATEGORIES: tuple[str, ...] = ("QYDJ", "GQ")  # canonical order of Data keys
ID_TYPE_PERSON = "10"
ID_TYPE_ORGANISATION = "20"
ID_TYPES: tuple[str, ...] = (ID_TYPE_PERSON, ID_TYPE_ORGANISATION)

_RESIDENT_ID = re.compile(r"[0-9]{17}[0-9X]")
_DEFAULT_REGION = "330100"

# GB 32100-2015 (the unified social credit code): its alphabet and weights.
_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)

_CITY = {"11": "北京", "31": "上海", "33": "杭州", "44": "广州", "32": "南京"}
_TRADE_NAMES = ("恒远", "华泰", "启明", "中盛", "鑫达", "天合", "博源", "新峰", "瑞丰", "长青")
_LINES = ("科技", "建材", "贸易", "物流", "餐饮管理", "投资咨询", "电子", "置业")
_PEOPLE = ("王建国", "李秀英", "张伟", "刘洋", "陈静", "杨帆", "赵磊", "黄敏")
_OTHER_COURTS = ("110105", "310115", "440106", "330106", "320102")


def uscc(first_17: str) -> str:
    """A code with its GB 32100 check character appended."""
    total = sum(_USCC_CHARS.index(c) * w for c, w in zip(first_17, _USCC_WEIGHTS, strict=False))
    return first_17 + _USCC_CHARS[(31 - total % 31) % 31]


def _money(fen_hundreds: int) -> str:
    return f"{fen_hundreds}.00"


def _region(id_number: str, id_type: str) -> str:
    region = id_number[:6] if id_type == ID_TYPE_PERSON else id_number[2:8]
    return region if region.isdigit() else _DEFAULT_REGION


def _company_name(stream: SubjectBytes, region: str) -> str:
    city = _CITY.get(region[:2], "某市")
    return f"{city}{stream.pick(_TRADE_NAMES)}{stream.pick(_LINES)}有限公司"


def _enterprise(id_number: str, name: str, seed: bytes) -> dict[str, Any]:
    stream = SubjectBytes(seed, "QYDJ")
    region = _region(id_number, ID_TYPE_ORGANISATION)
    founded = date(2000, 1, 1) + timedelta(days=stream.below(9000))
    return {
        "EntName": name,
        "UniSCID": id_number,
        "RegNo": region + "".join(str(stream.below(10)) for _ in range(9)),
        "LeRep": stream.pick(_PEOPLE),
        "EntStatus": "1" if stream.below(8) else "2",
        "EstDate": founded.isoformat(),
        "RegCap": _money(100_000 * (1 + stream.below(200))),
    }


def _holdings(id_number: str, seed: bytes, id_type: str, max_count: int) -> list[dict[str, Any]]:
    stream = SubjectBytes(seed, "GQ")
    region = _region(id_number, id_type)
    holdings = []
    for _ in range(stream.below(max_count + 1)):
        code = uscc("91" + region + "".join(stream.pick(_USCC_CHARS) for _ in range(9)))
        capital = 100_000 * (10 + stream.below(490))  # registered capital of that company, yuan
        percent = 5 + stream.below(91)
        holdings.append({
            "EntName": _company_name(stream, region),
            "UniSCID": code,
            "SubConAm": _money(capital * percent // 100),
            "ConProp": f"{percent}.00",
            "FrozList": [],
        })
    return holdings


def initial_freeze(id_number: str, company: str) -> dict[str, Any] | None:
    """The freeze another court already holds on this subject's equity in ``company``, if any."""
    seed = hashlib.sha256(f"freeze|{id_number}|{company}".encode("utf-8")).digest()
    if seed[0] % 4:
        return None
    return {
        "FrozNo": f"DJ{seed[1:5].hex().upper()}",
        "ExeCourt": _OTHER_COURTS[seed[5] % len(_OTHER_COURTS)],
        "RulingNo": f"(2025)执保{100 + seed[6]}号",
        "FroFrom": (date(2025, 3, 1) + timedelta(days=seed[7])).isoformat(),
        "FroTo": (date(2028, 3, 1) + timedelta(days=seed[8])).isoformat(),
    }


def _all_records(id_number: str, name: str, id_type: str) -> dict[str, Any]:
    seed = subject_seed(id_number)
    nothing: dict[str, Any] = {"QYDJ": None, "GQ": []}
    if seed[0] % 8 == 0:
        return nothing
    if id_type == ID_TYPE_ORGANISATION:
        return {"QYDJ": _enterprise(id_number, name, seed), "GQ": _holdings(id_number, seed, id_type, 2)}
    if not _RESIDENT_ID.fullmatch(id_number):
        return nothing
    return {"QYDJ": None, "GQ": _holdings(id_number, seed, id_type, 3)}


def describe_subject(id_number: str, name: str, id_type: str = ID_TYPE_PERSON,
                     categories: Iterable[str] = CATEGORIES) -> dict[str, Any]:
    """The ``Data`` the register holds for this subject before any freeze placed
    through the sandbox: ``FrozList`` is empty here (see ``initial_freeze``).

    Returns fresh objects on every call, so callers may mutate the result.
    """
    if id_type not in ID_TYPES:
        raise ValueError(f"id_type must be one of {', '.join(ID_TYPES)}, got {id_type!r}")
    if isinstance(categories, str):
        categories = (categories,)
    wanted = set(categories)
    unknown = wanted.difference(CATEGORIES)
    if unknown:
        raise ValueError(f"categories must be among {', '.join(CATEGORIES)}, got {sorted(unknown)!r}")
    records = _all_records(id_number, name, id_type)
    return {category: records[category] for category in CATEGORIES if category in wanted}
