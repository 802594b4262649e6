"""Deterministic holdings the real-estate registry sandbox keeps for a subject.

Everything comes from ``sha256("<seed>:<id number>")``, never from ``random``: the
same subject has the same units in every run and process, so tests can ask
``holdings_of`` what to expect.

* ``digest[0] % 4 == 0``: the subject owns nothing.
* Otherwise 1 to 3 building titles (28-character unit numbers in the subject's
  region), sole or shared ownership; a land use right for some.
* A title is mortgaged when ``digest[20 + i]`` is even, and already sealed by
  another court when ``digest[24 + i] % 3 == 0`` (then a new seal there is
  queued); a second court waits in the queue behind that seal when also
  ``digest[28 + i] % 2 == 0``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

__all__ = ["Holdings", "LandRight", "Mortgage", "Seal", "Title", "holdings_of"]

_CITY = {"11": "北京市朝阳区", "31": "上海市浦东新区", "33": "浙江省杭州市西湖区", "44": "广东省广州市天河区"}
_PROVINCE = {"11": "京", "31": "沪", "33": "浙", "44": "粤"}
_STREETS = ("文三路", "人民路", "解放路", "中山路", "延安路", "长江路", "和平街", "建国路")
_USES = ("住宅", "住宅", "商业", "办公")
_BANKS = ("中国工商银行杭州分行", "中国建设银行上海分行", "招商银行北京分行", "杭州银行城西支行")
_OTHER_COURTS = (
    ("北京市朝阳区人民法院", "京0105"), ("上海市浦东新区人民法院", "沪0115"),
    ("广州市天河区人民法院", "粤0106"), ("杭州市上城区人民法院", "浙0102"),
)
_CO_OWNER = "共有人王某"


@dataclass(frozen=True)
class Title:
    unit: str
    address: str
    floor_area: Decimal
    use: str
    certificate: str
    co_ownership: str  # 单独所有 | 按份共有
    holders: tuple[tuple[str, Decimal], ...]


@dataclass(frozen=True)
class LandRight:
    unit: str
    address: str
    area: Decimal
    use: str
    nature: str
    until: date


@dataclass(frozen=True)
class Mortgage:
    unit: str
    mortgagee: str
    amount: Decimal
    start: date
    end: date
    certificate: str


@dataclass
class Seal:
    """A seal or a queued seal on a unit; mutable: renewals, releases and promotions change it."""

    unit: str
    court: str  # a court's name, or the requesting court's code for seals placed through the gateway
    kind: str  # CFLX: 1 seal, 2 queued seal, 5 renewed seal
    ruling: str
    start: date | None  # None while queued
    end: date
    place: int  # CFSX: 1 is in force, 2.. wait in line
    reference: str  # DJBH, the registration case number


@dataclass(frozen=True)
class Holdings:
    titles: tuple[Title, ...]
    land: tuple[LandRight, ...]
    mortgages: tuple[Mortgage, ...]
    seals: tuple[Seal, ...]  # seals by other courts already on the subject's units

    @property
    def units(self) -> tuple[str, ...]:
        return tuple(t.unit for t in self.titles) + tuple(l.unit for l in self.land)


def _region(id_number: str) -> str:
    # A resident ID starts with its 6-digit region; a USCC holds it at characters 3-8.
    candidate = id_number[:6] if id_number[:6].isdigit() else id_number[2:8]
    return candidate if candidate.isdigit() and len(candidate) == 6 else "330106"


def _unit(region: str, digest: bytes, index: int, feature: str) -> str:
    zone = f"{digest[2 + index] % 900 + 100:03d}{digest[5 + index] % 900 + 100:03d}"
    parcel = f"{int.from_bytes(digest[8 + 2 * index:10 + 2 * index], 'big') % 100000:05d}"
    building = f"{digest[14 + index] % 99 + 1:04d}{digest[17 + index] % 30 + 1:04d}" if feature == "F" else "00000000"
    return f"{region}{zone}GB{parcel}{feature}{building}"


def holdings_of(id_number: str, name: str, seed: int = 0) -> Holdings:
    digest = hashlib.sha256(f"{seed}:{id_number}".encode()).digest()
    if digest[0] % 4 == 0:
        return Holdings((), (), (), ())
    region = _region(id_number)
    city = _CITY.get(region[:2], "某省某市某区")
    province = _PROVINCE.get(region[:2], "某")
    titles, mortgages, seals = [], [], []
    for i in range(1 + digest[1] % 3):
        unit = _unit(region, digest, i, "F")
        address = f"{city}{_STREETS[digest[3 + i] % len(_STREETS)]}{digest[6 + i] % 300 + 1}号{digest[14 + i] % 99 + 1}幢{digest[17 + i] % 30 + 1}01室"
        shared = digest[11 + i] % 3 == 0
        holders = ((name, Decimal("0.5")), (_CO_OWNER, Decimal("0.5"))) if shared else ((name, Decimal("1")),)
        titles.append(Title(
            unit=unit, address=address, floor_area=Decimal(40 + digest[12 + i] % 160) + Decimal(digest[13 + i] % 100) / 100,
            use=_USES[digest[15 + i] % len(_USES)],
            certificate=f"{province}({2010 + digest[16 + i] % 15})不动产权第{int.from_bytes(digest[i:i + 3], 'big') % 10**7:07d}号",
            co_ownership="按份共有" if shared else "单独所有", holders=holders,
        ))
        start = date(2020 + digest[22 + i] % 5, 1 + digest[23 + i] % 12, 1 + digest[21 + i] % 28)
        if digest[20 + i] % 2 == 0:
            mortgages.append(Mortgage(
                unit=unit, mortgagee=_BANKS[digest[25 + i] % len(_BANKS)],
                amount=Decimal(200000 + 10000 * (digest[26 + i] % 150)), start=start,
                end=start.replace(year=start.year + 20), certificate=f"{province}({start.year})不动产证明第{digest[27 + i] * 997:07d}号",
            ))
        if digest[24 + i] % 3 == 0:
            court, code = _OTHER_COURTS[digest[29 + i] % len(_OTHER_COURTS)]
            sealed_on = date(2025, 1 + digest[(30 + i) % 32] % 12, 1 + digest[31 - i] % 28)
            end = sealed_on + timedelta(days=3 * 365 - 1)
            seals.append(Seal(unit, court, "1", f"(2025){code}执保{digest[28 + i] * 7 + 1}号", sealed_on, end, 1,
                              f"CF{unit[-10:]}A"))
            if digest[28 + i] % 2 == 0:
                court2, code2 = _OTHER_COURTS[(digest[29 + i] + 1) % len(_OTHER_COURTS)]
                seals.append(Seal(unit, court2, "2", f"(2025){code2}执{digest[27 + i] * 3 + 1}号", None,
                                  end + timedelta(days=365), 2, f"CF{unit[-10:]}B"))
    land = []
    if digest[19] % 3 == 0:
        unit = _unit(region, digest, 3, "W")
        land.append(LandRight(unit=unit, address=f"{city}{_STREETS[digest[18] % len(_STREETS)]}地块",
                              area=Decimal(100 + digest[18] * 3), use="城镇住宅用地" if digest[18] % 2 else "商服用地",
                              nature="出让", until=date(2060 + digest[18] % 20, 12, 31)))
    return Holdings(tuple(titles), tuple(land), tuple(mortgages), tuple(seals))
