"""Bank codec: deposits and wealth products; freeze, renew, unfreeze, deduct.

Format: docs/agencies/bank.md and schemas/xsd/bank-v1.xsd. The same one-line
message element travels in a SOAP body (operation ``Inquire`` or ``Control``)
or as one line of an SFTP batch file.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from lxml import etree

from adapters.codecs.agency_xml import (
    MessageReader,
    MessageWriter,
    check_only_asked,
    date_text,
    money_text,
)
from adapters.codecs.xml_codec import XML_MEDIA_TYPE, dump_checked
from adapters.errors import IncomingInvalid, OutgoingInvalid
from adapters.interfaces import (
    AgencyAnswer,
    ControlLine,
    DeliveryOrder,
    Envelope,
    Reply,
)

NAMESPACE = "urn:enforcement-gateway:bank:v1"
SCHEMA = "bank-v1"
CURRENCY = "CNY"

SEARCH_ITEMS = {"deposit": "CK", "wealth_product": "LC"}
MEASURES = {"freeze": "01", "renew": "02", "unfreeze": "04", "deduct": "06"}
ACCOUNT_STATUS = {"1": "normal", "2": "dormant", "3": "closed"}
ACCOUNT_KINDS = {
    "01": "current account",
    "02": "savings account",
    "03": "time deposit",
    "11": "social-security account",
    "12": "minimum-living-allowance account",
    "13": "pension account",
}
# Accounts the law protects from enforcement (the gateway will refuse to freeze them).
EXEMPT_ACCOUNT_KINDS = frozenset({"11", "12", "13"})

_ANSWER_FOR = {"InquiryRequest": "InquiryAnswer", "ControlRequest": "ControlAnswer"}


class BankCodec:
    kind = "bank"
    action_categories: dict[str, tuple[str, ...]] = {
        "inquiry": ("deposit", "wealth_product"),
        "freeze": ("deposit",),
        "renew": ("deposit",),
        "unfreeze": ("deposit",),
        "deduct": ("deposit",),
    }
    categories: tuple[str, ...] = ("deposit", "wealth_product")
    actions: tuple[str, ...] = tuple(action_categories)
    transports: tuple[str, ...] = ("soap", "sftp")

    def __init__(self) -> None:
        self._writer = MessageWriter(NAMESPACE)
        self._reader = MessageReader(NAMESPACE)

    # --- encode -----------------------------------------------------------------------

    def encode(self, order: DeliveryOrder) -> Envelope:
        if order.action == "inquiry":
            root, operation = self._inquiry(order), "Inquire"
        elif order.action in MEASURES:
            root, operation = self._control(order), "Control"
        else:
            raise OutgoingInvalid(f"action {order.action!r} is not one a bank takes (one of: {', '.join(self.actions)})")
        body = dump_checked(root, SCHEMA, f"bank {order.action} message")
        return Envelope(message_id=order.message_id, operation=operation, body=body, media_type=XML_MEDIA_TYPE)

    def _inquiry(self, order: DeliveryOrder) -> etree._Element:
        w = self._writer
        unknown = [c for c in order.categories if c not in SEARCH_ITEMS]
        if unknown:
            raise OutgoingInvalid(f"categories {unknown} are not held by banks (inquiry: deposit, wealth_product)")
        root = w.root("InquiryRequest")
        w.request_head(root, order, "1")
        data = w.child(root, "Data")
        w.debtor(data, order)
        for category in order.categories or self.action_categories["inquiry"]:
            w.child(data, "CXNR", SEARCH_ITEMS[category])
        return root

    def _control(self, order: DeliveryOrder) -> etree._Element:
        w = self._writer
        if not order.lines:
            raise OutgoingInvalid(f"a {order.action} order needs lines (one per account)")
        if not order.legal_basis_number:
            raise OutgoingInvalid(f"legal_basis.number: required for {order.action}")
        root = w.root("ControlRequest")
        w.request_head(root, order, "2")
        data = w.child(root, "Data")
        w.debtor(data, order)
        for index, line in enumerate(order.lines):
            self._control_line(w.child(data, "KZ"), order, line, f"lines[{index}]")
        return root

    def _control_line(self, kz: etree._Element, order: DeliveryOrder, line: ControlLine, where: str) -> None:
        w, action = self._writer, order.action
        if action in ("freeze", "renew") and line.until is None:
            raise OutgoingInvalid(f"{where}.until: required for {action} (the end of the term)")
        if action in ("freeze", "renew") and order.court_date is None:
            raise OutgoingInvalid(f"court_date: required for {action} (KSRQ, the court's date the term starts)")
        if action in ("renew", "unfreeze", "deduct") and not line.original_reference:
            raise OutgoingInvalid(f"{where}.original_reference: required for {action} (the bank's freeze number)")
        if action == "deduct" and not order.court_account:
            raise OutgoingInvalid("court_account: required for deduct (the court's receiving account)")
        w.child(kz, "KZCS", MEASURES[action])
        w.child(kz, "ZH", line.identifier)
        w.child(kz, "BZ", CURRENCY)
        if line.amount is not None:
            w.child(kz, "JE", money_text(line.amount))
        if action in ("freeze", "renew"):
            w.child(kz, "KSRQ", date_text(order.court_date))  # type: ignore[arg-type]  # checked above
            w.child(kz, "JSRQ", date_text(line.until))  # type: ignore[arg-type]  # checked above
        w.child(kz, "CDH", order.legal_basis_number)
        w.optional(kz, "YDJBH", line.original_reference)
        if action == "deduct":
            w.child(kz, "FYSKZH", order.court_account)

    # --- decode -----------------------------------------------------------------------

    def decode(self, reply: Reply, envelope: Envelope) -> AgencyAnswer:
        r = self._reader
        root, request, head = r.read_answer(reply, envelope, SCHEMA, _ANSWER_FOR)
        data = root.find(r.tag("Data"))
        assets: list[dict[str, Any]] = []
        controls: list[dict[str, Any]] = []
        if etree.QName(root).localname == "InquiryAnswer":
            asked = [e.text for e in r.all(request.find(r.tag("Data")), "CXNR")]
            deposits, products = r.all(data, "CKZH"), r.all(data, "LCCP")
            check_only_asked((["CK"] if deposits else []) + (["LC"] if products else []), asked, "lists", reply.body)
            assets = [self._deposit(e) for e in deposits] + [self._product(e) for e in products]
        else:
            controls = self._control_outcomes(data, request, reply.body)
        return AgencyAnswer(
            message_id=head.message_id, request_sha256=head.request_sha256, answered_at=head.answered_at,
            assets=assets, raw=reply.body, controls=controls,
        )

    def _freezes(self, parent: etree._Element) -> list[dict[str, str | None]]:
        freezes = []
        for d in self._reader.all(parent, "DJ"):
            t = self._reader.texts(d)
            freezes.append({"by": t.get("DJJG"), "ruling": t.get("DJWH"), "amount": t.get("DJJE"),
                            "until": t.get("DJJZRQ")})
        return freezes

    def _deposit(self, account: etree._Element) -> dict[str, Any]:
        t = self._reader.texts(account)
        number, kind, status = t.get("ZH"), t.get("ZHLX") or "", t.get("ZHZT") or ""
        currency, balance, available = t.get("BZ"), t.get("YE"), t.get("KYYE")
        freezes = self._freezes(account)
        exempt = kind in EXEMPT_ACCOUNT_KINDS
        details: dict[str, Any] = {
            "account_kind": kind, "account_kind_name": ACCOUNT_KINDS[kind], "exempt": exempt,
            "status": ACCOUNT_STATUS[status], "currency": currency, "branch": t.get("KHWD"),
            "opened": t.get("KHRQ"), "balance": balance, "available_balance": available, "freezes": freezes,
        }
        closed = t.get("XHRQ")
        if closed:
            details["closed"] = closed
        return {
            "category": "deposit",
            "identifier": number,
            "description": (
                f"{ACCOUNT_KINDS[kind]} {number} at {t.get('KHWD')} ({ACCOUNT_STATUS[status]}"
                f"{', exempt from enforcement' if exempt else ''}): balance {balance} {currency}, available {available}"
            ),
            "balance": available,
            "encumbrances": [f"frozen by {f['by']} under {f['ruling']}: {f['amount']} until {f['until']}" for f in freezes],
            "details": details,
        }

    def _product(self, product: etree._Element) -> dict[str, Any]:
        t = self._reader.texts(product)
        code, name, value, currency = t.get("CPBH"), t.get("CPMC"), t.get("JE"), t.get("BZ")
        freezes = self._freezes(product)
        details: dict[str, Any] = {"name": name, "currency": currency, "freezes": freezes}
        maturity = t.get("DQRQ")
        if maturity:
            details["maturity"] = maturity
        return {
            "category": "wealth_product",
            "identifier": code,
            "description": f"wealth product {name} ({code}): {value} {currency}" + (f", matures {maturity}" if maturity else ""),
            "value": value,
            "encumbrances": [f"frozen by {f['by']} under {f['ruling']}: {f['amount']} until {f['until']}" for f in freezes],
            "details": details,
        }

    def _control_outcomes(self, data: etree._Element | None, request: etree._Element, raw: bytes) -> list[dict[str, Any]]:
        r = self._reader
        asked = [(r.text(kz, "KZCS"), r.text(kz, "ZH")) for kz in r.all(request.find(r.tag("Data")), "KZ")]
        results = r.all(data, "KZJG")
        answered = [(r.text(kz, "KZCS"), r.text(kz, "ZH")) for kz in results]
        if sorted(answered) != sorted(asked):
            raise IncomingInvalid(f"answer lines {answered} do not match the lines asked {asked}", raw=raw)
        return [self._control_outcome(result) for result in results]

    def _control_outcome(self, result: etree._Element) -> dict[str, Any]:
        r = self._reader
        measure, state = r.text(result, "KZCS"), r.text(result, "KZZT")
        asked, done = r.text(result, "DJXE"), r.text(result, "SKJE")
        ahead = [f"{r.text(a, 'DJJG')} {r.text(a, 'DJWH')}: {r.text(a, 'DJJE')}" for a in r.all(result, "ZQDJ")]
        if state == "2":
            outcome = "not_controlled"
        elif measure == "04":
            outcome = "released"
        elif measure == "06":
            outcome = "deducted"
        elif measure == "01" and done is not None and Decimal(done) == 0 and ahead:
            outcome = "queued"  # 轮候冻结: nothing free now, waits behind the freezes ahead
        elif measure == "01" and asked is not None and done is not None and Decimal(done) < Decimal(asked):
            outcome = "partly_controlled"
        else:
            outcome = "controlled"
        return {
            "category": "deposit",
            "identifier": r.text(result, "ZH"),
            "outcome": outcome,
            "amount_requested": asked,
            "amount_controlled": done,
            "effective_from": r.text(result, "KSRQ"),
            "until": r.text(result, "JSRQ"),
            "queue_position": len(ahead) + 1 if outcome == "queued" else None,
            "ahead": ahead,
            "reason": r.text(result, "WNKZYY"),
            "agency_reference": r.text(result, "DJBH"),
        }
