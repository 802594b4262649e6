"""Tax codec: tax registrations and yearly records; reference prices of real estate.

Format: docs/agencies/tax.md and schemas/xsd/tax-v1.xsd (operations ``Inquire``
and ``Valuation``). Head, binding and error codes as the bank format
(``adapters.codecs.agency_xml``).
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from adapters.codecs.agency_xml import MessageReader, MessageWriter
from adapters.codecs.xml_codec import XML_MEDIA_TYPE, dump_checked
from adapters.errors import IncomingInvalid, OutgoingInvalid
from adapters.interfaces import AgencyAnswer, DeliveryOrder, Envelope, Reply
from schemas.identifiers import mask_id_number

NAMESPACE = "urn:enforcement-gateway:tax:v1"
SCHEMA = "tax-v1"
REGISTRATION_STATES = {"1": "active", "2": "suspended", "3": "deregistered"}

_ANSWER_FOR = {"InquiryRequest": "InquiryAnswer", "ValuationRequest": "ValuationAnswer"}


class TaxCodec:
    kind = "tax"
    action_categories: dict[str, tuple[str, ...]] = {"inquiry": ("tax",), "valuation": ("real_estate",)}
    categories: tuple[str, ...] = ("tax", "real_estate")
    actions: tuple[str, ...] = tuple(action_categories)
    transports: tuple[str, ...] = ("soap",)

    def __init__(self) -> None:
        self._writer = MessageWriter(NAMESPACE)
        self._reader = MessageReader(NAMESPACE)

    def encode(self, order: DeliveryOrder) -> Envelope:
        w = self._writer
        if order.action == "inquiry":
            root, operation = w.root("InquiryRequest"), "Inquire"
            w.request_head(root, order, "1")
            w.debtor(w.child(root, "Data"), order)
        elif order.action == "valuation":
            if not order.lines:
                raise OutgoingInvalid("a valuation order needs lines (one 28-character unit number each)")
            root, operation = w.root("ValuationRequest"), "Valuation"
            w.request_head(root, order, "3")
            data = w.child(root, "Data")
            w.debtor(data, order)
            for line in order.lines:
                w.child(w.child(data, "BDCDY"), "BDCDYH", line.identifier)
        else:
            raise OutgoingInvalid(f"action {order.action!r} is not one the tax bureau takes (one of: inquiry, valuation)")
        body = dump_checked(root, SCHEMA, f"tax {order.action} message")
        return Envelope(message_id=order.message_id, operation=operation, body=body, media_type=XML_MEDIA_TYPE)

    def decode(self, reply: Reply, envelope: Envelope) -> AgencyAnswer:
        r = self._reader
        root, request, head = r.read_answer(reply, envelope, SCHEMA, _ANSWER_FOR)
        data = root.find(r.tag("Data"))
        if etree.QName(root).localname == "InquiryAnswer":
            assets = [self._registration(e) for e in r.all(data, "SWDJ")] + [self._year(e) for e in r.all(data, "NSJL")]
        else:
            assets = self._prices(data, request, reply.body)
        return AgencyAnswer(
            message_id=head.message_id, request_sha256=head.request_sha256, answered_at=head.answered_at,
            assets=assets, raw=reply.body,
        )

    def _registration(self, record: etree._Element) -> dict[str, Any]:
        r = self._reader
        # A person's taxpayer number is their resident ID: kept masked like every identity number.
        taxpayer = mask_id_number(r.text(record, "NSRSBH") or "")
        office, state = r.text(record, "SWJGMC"), r.text(record, "DJZT") or ""
        return {
            "category": "tax",
            "identifier": taxpayer,
            "description": f"tax registration {taxpayer} at {office} ({REGISTRATION_STATES[state]}) since {r.text(record, 'DJRQ')}",
            "details": {
                "record": "registration", "taxpayer_id": taxpayer, "tax_office": office,
                "tax_office_code": r.text(record, "SWJGDM"), "state": REGISTRATION_STATES[state],
                "registered": r.text(record, "DJRQ"),
            },
        }

    def _year(self, record: etree._Element) -> dict[str, Any]:
        r = self._reader
        taxpayer, year = mask_id_number(r.text(record, "NSRSBH") or ""), r.text(record, "ND")
        income, due, paid = r.text(record, "SBSR"), r.text(record, "YNSE"), r.text(record, "YJSE")
        arrears, refund = r.text(record, "QSJE"), r.text(record, "TSJE")
        details: dict[str, Any] = {
            "record": "tax_year", "taxpayer_id": taxpayer, "year": year, "income_declared": income,
            "tax_due": due, "tax_paid": paid, "arrears": arrears, "refund_due": refund,
        }
        payer = r.text(record, "ZYZFDW")
        if payer:
            details["main_payer"] = payer
        return {
            "category": "tax",
            "identifier": f"{taxpayer}/{year}",
            "description": (
                f"tax year {year} of {taxpayer}: income declared {income}, tax due {due}, paid {paid}, "
                f"arrears {arrears}, refund due {refund}" + (f", paid mainly by {payer}" if payer else "")
            ),
            # A refund the bureau owes the debtor is money a court can take.
            "balance": refund,
            "details": details,
        }

    def _prices(self, data: etree._Element | None, request: etree._Element, raw: bytes) -> list[dict[str, Any]]:
        r = self._reader
        asked = [r.text(unit, "BDCDYH") for unit in r.all(request.find(r.tag("Data")), "BDCDY")]
        prices = r.all(data, "CKJGXX")
        answered = [r.text(price, "BDCDYH") for price in prices]
        if sorted(answered) != sorted(asked):  # type: ignore[type-var]
            raise IncomingInvalid(f"answer prices units {answered} but the request asked for {asked}", raw=raw)
        assets = []
        for price in prices:
            unit, value = r.text(price, "BDCDYH"), r.text(price, "CKJG")
            if value is None:
                reason = r.text(price, "WJGYY")
                assets.append({
                    "category": "real_estate", "identifier": unit,
                    "description": f"real estate unit {unit}: no tax reference price ({reason})",
                    "details": {"valuation": "none", "reason": reason},
                })
                continue
            priced_on, valid_until = r.text(price, "JGRQ"), r.text(price, "YXQZ")
            assets.append({
                "category": "real_estate", "identifier": unit,
                "description": f"real estate unit {unit}: tax reference price {value} as of {priced_on}, valid until {valid_until}",
                "value": value,
                "details": {"valuation": "tax_reference_price", "priced_on": priced_on, "valid_until": valid_until},
            })
        return assets
