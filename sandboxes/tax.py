"""A sandbox tax bureau: the AGENCY side of the tax format (docs/agencies/tax.md).

``TaxAgency.handle(message) -> answer``, transport-neutral like the bank's. It
reads ``schemas/xsd/tax-v1.xsd`` on its own (through ``schemas.xml``) and never
imports the gateway's codec. Records are derived from the subject's id number
(and the bureau's name and seed), reference prices from the unit number, never
from the ``random`` module:

* one subject in four is unknown to the bureau (answer ``0000`` with no records);
* a person is registered under the id number, an organisation under its credit
  code, at the bureau of the region in the number; three tax years each, with
  now and then arrears or a refund due;
* one unit in six has no reference price; the others are priced by area and
  region, priced on a day in 2026 and valid for a year.

A key (``BDHM``) seen before gets the stored answer again.
"""

from __future__ import annotations

import hashlib
import threading
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from lxml import etree

from schemas import xml

NAMESPACE = "urn:enforcement-gateway:tax:v1"
SCHEMA = "tax-v1"
YEARS = (2023, 2024, 2025)
_EMPLOYERS = ("杭州某某科技有限公司", "某某建设集团有限公司", "某某商贸有限公司")


def _tag(name: str) -> str:
    return f"{{{NAMESPACE}}}{name}"


def _add(parent: etree._Element, name: str, value: str | None = None) -> etree._Element:
    element = etree.SubElement(parent, _tag(name))
    if value is not None:
        element.text = value
    return element


def _text(parent: etree._Element | None, name: str) -> str | None:
    element = parent.find(_tag(name)) if parent is not None else None
    return element.text if element is not None else None

def _child(parent: etree._Element, name: str) -> etree._Element:
    element = parent.find(_tag(name))
    if element is None:  # the schema requires it, so a validated request has it
        raise ValueError(f"request has no {name}")
    return element


def _money(amount: Decimal) -> str:
    return f"{amount.quantize(Decimal('0.01')):f}"


def _draws(*parts: str) -> list[int]:
    """Deterministic numbers 0..65535 from the parts."""
    digest = hashlib.sha256("|".join(parts).encode("utf-8")).digest()
    return [int.from_bytes(digest[i:i + 2], "big") for i in range(0, 32, 2)]


def _cents(draw_a: int, draw_b: int, low: int, high: int) -> Decimal:
    span = (high - low) * 100
    return Decimal(low * 100 + (draw_a * 65536 + draw_b) % span) / 100


def reference_price(unit: str) -> tuple[Decimal, date, date] | None:
    """The reference price of a unit, its date and validity; None when it has none."""
    d = _draws("price", unit)
    if d[0] % 6 == 0:
        return None
    area = Decimal(60 + d[1] % 140)
    per_square_metre = Decimal(8_000 + (d[2] * 7 + int(unit[:2])) % 60_000)
    priced_on = date(2026, 1, 1) + timedelta(days=d[3] % 300)
    return (area * per_square_metre).quantize(Decimal("0.01")), priced_on, priced_on + timedelta(days=365)


class TaxAgency:
    def __init__(self, name: str, seed: int = 0):
        self.name = name
        self.seed = seed
        self._lock = threading.Lock()
        self._answers: dict[str, bytes] = {}
        self.duplicates = 0
        self.answered = 0
        self.refused = 0
        self.received: list[str] = []

    def handle(self, message: bytes) -> bytes:
        try:
            request = xml.parse_valid(message, SCHEMA)
        except (xml.XmlRefused, xml.XmlInvalid) as exc:
            with self._lock:
                self.refused += 1
            return self._answer(b"Valuation" in message[:200], None, None, "3000", f"request refused: {exc}"[:500])
        valuation = etree.QName(request).localname == "ValuationRequest"
        head, data = _child(request, "Head"), _child(request, "Data")
        key, digest = _text(head, "BDHM") or "", xml.digest(request)
        with self._lock:
            self.received.append(digest)
            stored = self._answers.get(key)
            if stored is not None:
                self.duplicates += 1
                return stored
            if _text(head, "XZ") != ("3" if valuation else "1"):
                self.refused += 1
                return self._answer(valuation, key, digest, "3000", f"Head.XZ {_text(head, 'XZ')} does not fit the request")
            if valuation:
                answer = self._answer(valuation, key, digest, "0000", "成功", lambda out: self._prices(out, data))
            else:
                known = self._records(None, data)
                answer = self._answer(valuation, key, digest, "0000", "成功" if known else "查无纳税信息",
                                      lambda out: self._records(out, data))
            self._answers[key] = answer
            self.answered += 1
            return answer

    def _answer(self, valuation: bool, key: str | None, digest: str | None, code: str, info: str, fill=None) -> bytes:
        root = etree.Element(_tag("ValuationAnswer" if valuation else "InquiryAnswer"), nsmap={None: NAMESPACE})
        head = _add(root, "Head")
        for name, value in (("BDHM", key), ("XZ", "3" if valuation else "1"), ("QQSHA256", digest),
                            ("RESPONSECODE", code), ("RESPONSEINFO", info),
                            ("FKSJ", datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))):
            if value is not None:
                _add(head, name, value)
        if fill is not None:
            fill(_add(root, "Data"))
        xml.validate(root, SCHEMA)
        return xml.serialize(root)

    def _records(self, out: etree._Element | None, data: etree._Element) -> bool:
        """Write the subject's records under ``out`` (when given); return whether there are any."""
        id_number = _text(data, "DSRZJHM") or ""
        d = _draws(self.name, str(self.seed), id_number)
        if d[0] % 4 == 0:
            return False
        if out is None:
            return True
        region = id_number[:6] if _text(data, "ZJLX") == "1" else id_number[2:8]
        registration = _add(out, "SWDJ")
        for name, value in (("NSRSBH", id_number), ("SWJGDM", f"1{region}00"),
                            ("SWJGMC", f"国家税务总局{region}税务局"), ("DJZT", "2" if d[1] % 10 == 0 else "1"),
                            ("DJRQ", (date(2008, 1, 1) + timedelta(days=d[2] % 5000)).isoformat())):
            _add(registration, name, value)
        for index, year in enumerate(YEARS):
            y = _draws(self.name, str(self.seed), id_number, str(year))
            income = _cents(y[0], y[1], 20_000, 2_000_000)
            due = (income * Decimal(3 + y[2] % 18) / 100).quantize(Decimal("0.01"))
            arrears = (due * Decimal(y[3] % 5) / 10).quantize(Decimal("0.01")) if y[4] % 5 == 0 else Decimal("0.00")
            refund = _cents(y[5], y[6], 100, 20_000) if y[7] % 4 == 0 else Decimal("0.00")
            record = _add(out, "NSJL")
            for name, value in (("NSRSBH", id_number), ("ND", str(year)), ("SBSR", _money(income)),
                                ("YNSE", _money(due)), ("YJSE", _money(due - arrears)), ("QSJE", _money(arrears)),
                                ("TSJE", _money(refund))):
                _add(record, name, value)
            if y[8] % 2 == 0:
                _add(record, "ZYZFDW", _EMPLOYERS[(y[9] + index) % len(_EMPLOYERS)])
        return True

    def _prices(self, out: etree._Element, data: etree._Element) -> None:
        for unit_element in data.findall(_tag("BDCDY")):
            unit = _text(unit_element, "BDCDYH") or ""
            row = _add(out, "CKJGXX")
            _add(row, "BDCDYH", unit)
            price = reference_price(unit)
            if price is None:
                _add(row, "WJGYY", "该不动产单元无计税参考价格: no reference price for this unit")
                continue
            value, priced_on, valid_until = price
            _add(row, "CKJG", _money(value))
            _add(row, "JGRQ", priced_on.isoformat())
            _add(row, "YXQZ", valid_until.isoformat())
