"""Deterministic records the public security sandbox holds for a subject.

Everything is derived from ``sha256(ZJHM)`` (the *seed*) and from the id number
itself, never from the ``random`` module: the same subject gets the same
records on every call, in every process, on every machine, so tests can state
what they expect (through ``describe_subject``) without a shared fixture file.

Rules (kept in one place so ``describe_subject`` and the HTTP answer agree):

* ``seed[0] % 8 == 0``: the agency knows nothing -> HJ null, CL [], XZ [].
* Persons (ZJZL ``1``): HJ from the id number (XB from the 17th character's
  parity, CSRQ from characters 7-14, HJDZ from the region in the first two
  digits plus a street and number from the seed); 0-2 vehicles; 0-3
  whereabouts. An id number that cannot be a resident ID (17 digits then a
  digit or ``X``) has no records at all, as at a real bureau.
* Organisations (ZJZL ``8``): HJ null, XZ [], 0-3 company vehicles; the
  region is characters 3-4 of the unified social credit code.

Each kind of record draws from its own labelled byte stream, so asking for a
subset of CXLB never changes the records of the other lists.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterable

from sandboxes.subject_bytes import SubjectBytes, subject_seed

__all__ = ["CATEGORIES", "ID_TYPES", "describe_subject", "subject_seed"]

CATEGORIES: tuple[str, ...] = ("HJ", "CL", "XZ")  # canonical order of Data keys
ID_TYPE_RESIDENT = "1"
ID_TYPE_ORGANISATION = "8"
ID_TYPES: tuple[str, ...] = (ID_TYPE_RESIDENT, ID_TYPE_ORGANISATION)

_RESIDENT_ID = re.compile(r"[0-9]{17}[0-9X]")

# Household addresses only for the regions the design names; the rest get a
# placeholder so nobody mistakes sandbox data for a real address.
_HOUSEHOLD_CITY = {"11": "北京市", "31": "上海市", "33": "浙江省杭州市", "44": "广东省广州市"}
_UNKNOWN_CITY = "某省某市"
_STREETS = ("建国路", "人民路", "解放路", "中山路", "文三路", "延安路", "长江路", "和平街")

# Plate province character by the first two digits of the GB/T 2260 region code.
_PLATE_PROVINCE = {
    "11": "京", "12": "津", "13": "冀", "14": "晋", "15": "蒙", "21": "辽", "22": "吉",
    "23": "黑", "31": "沪", "32": "苏", "33": "浙", "34": "皖", "35": "闽", "36": "赣",
    "37": "鲁", "41": "豫", "42": "鄂", "43": "湘", "44": "粤", "45": "桂", "46": "琼",
    "50": "渝", "51": "川", "52": "贵", "53": "云", "54": "藏", "61": "陕", "62": "甘",
    "63": "青", "64": "宁", "65": "新",
}
_PLATE_PROVINCES_IN_ORDER = tuple(_PLATE_PROVINCE[code] for code in sorted(_PLATE_PROVINCE))
_PLATE_AUTHORITY_LETTERS = "ABCDEFGH"
_PLATE_CHARS = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # plates avoid I and O

# VIN (GB 16735 / ISO 3779): no I, O, Q; position 9 is a check digit.
_VIN_WMIS = ("LSV", "LFV", "LGB", "LVS", "LHG", "LBV")
_VIN_CHARS = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ"
_VIN_VALUES = {**{str(d): d for d in range(10)},
               **dict(zip("ABCDEFGH", range(1, 9), strict=True)), **dict(zip("JKLMN", range(1, 6), strict=True)),
               "P": 7, "R": 9, **dict(zip("STUVWXYZ", range(2, 10), strict=True))}
_VIN_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
_VIN_YEAR_CODES = "ABCDEFGHJKLMNPRS"  # model years 2010 .. 2025
_FIRST_REGISTRATION_YEAR = 2010

_WHEREABOUTS_KINDS = ("hotel", "rail", "flight")
_WHEREABOUTS_PLACES = {
    "hotel": ("杭州市西湖区", "北京市朝阳区", "上海市浦东新区", "广州市天河区", "南京市鼓楼区", "成都市武侯区"),
    "rail": ("杭州东站", "北京南站", "上海虹桥站", "广州南站", "南京南站", "成都东站"),
    "flight": ("杭州萧山国际机场", "北京首都国际机场", "上海浦东国际机场", "广州白云国际机场",
               "南京禄口国际机场", "成都天府国际机场"),
}
_WHEREABOUTS_START = datetime(2026, 1, 1, tzinfo=timezone.utc)
_MINUTES_IN_2026 = 365 * 24 * 60


def _vin_check_digit(vin_without_check: str) -> str:
    total = sum(_VIN_VALUES[ch] * weight for ch, weight in zip(vin_without_check, _VIN_WEIGHTS, strict=False))
    remainder = total % 11
    return "X" if remainder == 10 else str(remainder)


def _household(id_number: str, name: str, seed: bytes) -> dict[str, str]:
    stream = SubjectBytes(seed, "HJ")
    city = _HOUSEHOLD_CITY.get(id_number[:2], _UNKNOWN_CITY)
    street = stream.pick(_STREETS)
    number = 1 + stream.below(300)
    return {
        "GMSFHM": id_number,
        "XM": name,
        "XB": "1" if int(id_number[16]) % 2 == 1 else "2",
        "MZ": "01",
        "CSRQ": id_number[6:14],
        "HJDZ": f"{city}{street}{number}号",
    }


def _vehicles(id_number: str, name: str, seed: bytes, region: str, max_count: int) -> list[dict[str, str]]:
    stream = SubjectBytes(seed, "CL")
    vehicles = []
    for _ in range(stream.below(max_count + 1)):
        # A region without a plate province (bad code, HK/Macau/Taiwan) still
        # gets a plausible, deterministic plate.
        province = _PLATE_PROVINCE.get(region) or stream.pick(_PLATE_PROVINCES_IN_ORDER)
        plate = province + stream.pick(_PLATE_AUTHORITY_LETTERS) + stream.chars(_PLATE_CHARS, 5)

        model_year_index = stream.below(len(_VIN_YEAR_CODES))
        registration_year = _FIRST_REGISTRATION_YEAR + model_year_index
        first_registration = date(registration_year, 1, 1) + timedelta(days=stream.below(365))
        vin_head = (stream.pick(_VIN_WMIS) + stream.chars(_VIN_CHARS, 5))
        vin_tail = (_VIN_YEAR_CODES[model_year_index] + stream.chars(_VIN_CHARS, 1)
                    + stream.chars("0123456789", 6))
        vin = vin_head + _vin_check_digit(vin_head + "0" + vin_tail) + vin_tail

        state_draw = stream.below(16)  # mostly normal, now and then sealed or with a violation
        vehicles.append({
            "HPZL": "02",
            "HPHM": plate,
            "CLSBDH": vin,
            "SYR": name,
            "SFZMHM": id_number,
            "ZT": "K" if state_draw == 0 else "G" if state_draw == 1 else "A",
            "DYBJ": "1" if stream.below(4) == 0 else "0",
            "CCDJRQ": first_registration.isoformat(),
        })
    return vehicles


def _whereabouts(seed: bytes) -> list[dict[str, str]]:
    stream = SubjectBytes(seed, "XZ")
    records = []
    for _ in range(stream.below(4)):
        kind = stream.pick(_WHEREABOUTS_KINDS)
        place = stream.pick(_WHEREABOUTS_PLACES[kind])
        seen_at = _WHEREABOUTS_START + timedelta(minutes=stream.below(_MINUTES_IN_2026))
        records.append({"LX": kind, "DD": place, "SJ": seen_at.strftime("%Y-%m-%dT%H:%M:%SZ")})
    # Chronological, like a movement history would be listed.
    return sorted(records, key=lambda record: (record["SJ"], record["LX"], record["DD"]))


def _all_records(id_number: str, name: str, id_type: str) -> dict[str, Any]:
    seed = subject_seed(id_number)
    nothing: dict[str, Any] = {"HJ": None, "CL": [], "XZ": []}
    if seed[0] % 8 == 0:
        return nothing
    if id_type == ID_TYPE_ORGANISATION:
        return {"HJ": None, "CL": _vehicles(id_number, name, seed, id_number[2:4], 3), "XZ": []}
    if not _RESIDENT_ID.fullmatch(id_number):
        return nothing
    return {
        "HJ": _household(id_number, name, seed),
        "CL": _vehicles(id_number, name, seed, id_number[:2], 2),
        "XZ": _whereabouts(seed),
    }


def describe_subject(id_number: str, name: str, id_type: str = ID_TYPE_RESIDENT,
                     categories: Iterable[str] = CATEGORIES) -> dict[str, Any]:
    """The ``Data`` part the sandbox answers for this subject and these lists.

    Other tests use it to know what to expect; it returns fresh objects on
    every call, so callers may mutate the result.
    """
    if id_type not in ID_TYPES:
        raise ValueError(f"id_type must be one of {', '.join(ID_TYPES)}, got {id_type!r}")
    if isinstance(categories, str):  # "HJ" would otherwise iterate as "H", "J"
        categories = (categories,)
    wanted = set(categories)
    unknown = wanted.difference(CATEGORIES)
    if unknown:
        raise ValueError(f"categories must be among {', '.join(CATEGORIES)}, got {sorted(unknown)!r}")
    records = _all_records(id_number, name, id_type)
    return {category: records[category] for category in CATEGORIES if category in wanted}
