"""A sandbox bank: the AGENCY side of the bank format (docs/agencies/bank.md).

``BankAgency.handle(message) -> answer`` takes one request element's bytes and
returns one answer element's bytes, whatever carried them (a SOAP body, a line
of an SFTP batch file). It reads the format from ``schemas/xsd/bank-v1.xsd`` on
its own (through ``schemas.xml``) and never imports the gateway's codec, so a
codec mistake shows up as a failed exchange instead of being mirrored.

The bank keeps a ledger in memory: freezes lower the available balance, renew
extends a freeze, unfreeze releases it, deduct moves frozen money to the
court's account. A key (``BDHM``) seen before gets the stored answer again and
never a second effect. Thread-safe: one lock around each message.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Callable

from lxml import etree

from sandboxes.bank_data import EXEMPT_KINDS, Account, Freeze, Holdings, bank_code, opening_accounts
from schemas import xml
from sandboxes.clock import beijing_today

NAMESPACE = "urn:enforcement-gateway:bank:v1"
SCHEMA = "bank-v1"
MAX_FREEZE_DAYS = 366  # deposits: at most one year per freeze or renewal
_ZERO = Decimal("0.00")


def _tag(name: str) -> str:
    return f"{{{NAMESPACE}}}{name}"


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


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _today() -> date:
    return beijing_today()


@dataclass
class Transfer:
    reference: str
    account: str
    to_account: str
    amount: Decimal
    key: str


class AnswerWriter:
    def __init__(self, root_name: str, kind: str):
        self.root = etree.Element(_tag(root_name), nsmap={None: NAMESPACE})
        self.head = etree.SubElement(self.root, _tag("Head"))
        self.kind = kind

    @staticmethod
    def add(parent: etree._Element, name: str, value: str | None) -> etree._Element:
        element = etree.SubElement(parent, _tag(name))
        if value is not None:
            element.text = value
        return element

    def finish(self, key: str | None, digest: str | None, code: str, info: str) -> bytes:
        for name, value in (("BDHM", key), ("XZ", self.kind), ("QQSHA256", digest), ("RESPONSECODE", code),
                            ("RESPONSEINFO", info), ("FKSJ", _now())):
            if value is not None:
                self.add(self.head, name, value)
        xml.validate(self.root, SCHEMA)  # the bank never sends what its own format forbids
        return xml.serialize(self.root)


class BankAgency:
    """One bank: its accounts (derived from the subject and ``seed``), its ledger and its duplicate memory."""

    def __init__(self, name: str, seed: int = 0):
        self.name = name
        self.seed = seed
        self._code = bank_code(name)
        self._lock = threading.RLock()
        self._holdings: dict[str, Holdings] = {}
        self._accounts: dict[str, Account] = {}
        self._answers: dict[str, bytes] = {}
        self._serial = 0
        self.transfers: list[Transfer] = []
        self.effects_applied = 0
        self.duplicates = 0
        self.effects_by_key: Counter[str] = Counter()
        self.received: list[str] = []  # digest of each message handled, in order
        self.refused = 0

    # --- for tests -------------------------------------------------------------------

    def holdings(self, id_number: str) -> Holdings:
        with self._lock:
            holdings = self._holdings.get(id_number)
            if holdings is None:
                holdings = self._holdings[id_number] = opening_accounts(self.name, self.seed, id_number)
                for account in holdings.accounts:
                    self._accounts[account.number] = account
            return holdings

    def account(self, number: str) -> Account:
        with self._lock:
            return self._accounts[number]

    def set_balance(self, number: str, balance: Decimal) -> None:
        with self._lock:
            self._accounts[number].balance = balance

    def open_account(self, id_number: str, number: str, balance: Decimal, opened: date) -> Account:
        """The debtor opens an account (after a case against them was terminated, say)."""
        with self._lock:
            holdings = self.holdings(id_number)
            account = Account(number=number, kind="01", status="1", branch="杭州西湖支行", opened=opened,
                              currency="CNY", balance=balance)
            holdings.accounts.append(account)
            self._accounts[number] = account
            return account

    # --- the agency ------------------------------------------------------------------

    def handle(self, message: bytes) -> bytes:
        """One request element in, one answer element out; never raises on bad input."""
        try:
            request = xml.parse_valid(message, SCHEMA)
        except (xml.XmlRefused, xml.XmlInvalid) as exc:
            return self._refusal(message, "3000", f"request refused: {exc}")
        is_control = etree.QName(request).localname == "ControlRequest"
        head = request.find(_tag("Head"))
        key, kind = _text(head, "BDHM") or "", _text(head, "XZ")
        digest = xml.digest(request)
        writer = AnswerWriter("ControlAnswer" if is_control else "InquiryAnswer", "2" if is_control else "1")
        with self._lock:
            self.received.append(digest)
            stored = self._answers.get(key)
            if stored is not None:
                self.duplicates += 1
                return stored
            if kind != ("2" if is_control else "1"):
                self.refused += 1
                return writer.finish(key, digest, "3000", f"Head.XZ {kind} does not fit a {etree.QName(request).localname}")
            if is_control and not _text(head, "WSH"):
                self.refused += 1
                return writer.finish(key, digest, "3010", "业务审核未通过: a control needs its legal basis (WSLX, WSH)")
            data = _child(request, "Data")
            holdings = self.holdings(_text(data, "DSRZJHM") or "")
            if is_control:
                self._control(writer, data, holdings, key, _text(head, "FYDM") or "")
            else:
                self._inquiry(writer, data, holdings)
            info = "成功" if holdings.accounts or holdings.products or is_control else "查无开户信息"
            answer = self._answers[key] = writer.finish(key, digest, "0000", info)
            return answer

    def _refusal(self, message: bytes, code: str, info: str) -> bytes:
        """An error answer to bytes that are not a valid request: echo what can be read."""
        self.refused += 1
        key, is_control = None, b"ControlRequest" in message[:200]
        try:
            root = xml.parse(message)
            head = root.find(_tag("Head"))
            candidate = _text(head, "BDHM")
            if candidate and 0 < len(candidate) <= 64:
                key = candidate
            is_control = etree.QName(root).localname == "ControlRequest"
        except xml.XmlRefused:
            pass
        writer = AnswerWriter("ControlAnswer" if is_control else "InquiryAnswer", "2" if is_control else "1")
        return writer.finish(key, None, code, info[:500])

    def _inquiry(self, writer: AnswerWriter, data: etree._Element, holdings: Holdings) -> None:
        asked = {e.text for e in data.findall(_tag("CXNR"))}
        out = writer.add(writer.root, "Data", None)
        add = writer.add
        if "CK" in asked:
            for account in holdings.accounts:
                row = add(out, "CKZH", None)
                for name, value in (("ZH", account.number), ("ZHZT", account.status), ("ZHLX", account.kind),
                                    ("KHWD", account.branch), ("KHRQ", account.opened.isoformat()),
                                    ("BZ", account.currency), ("YE", _money(account.balance)),
                                    ("KYYE", _money(account.available))):
                    add(row, name, value)
                for freeze in account.freezes:
                    self._freeze_row(add(row, "DJ", None), freeze)
        if "LC" in asked:
            for product in holdings.products:
                row = add(out, "LCCP", None)
                for name, value in (("CPBH", product.code), ("CPMC", product.name), ("BZ", product.currency),
                                    ("JE", _money(product.value)), ("DQRQ", product.matures.isoformat())):
                    add(row, name, value)

    @staticmethod
    def _freeze_row(row: etree._Element, freeze: Freeze) -> None:
        for name, value in (("DJJG", freeze.by), ("DJWH", freeze.ruling), ("DJJE", _money(freeze.amount)),
                            ("DJJZRQ", freeze.until.isoformat())):
            AnswerWriter.add(row, name, value)

    def _next_reference(self, prefix: str) -> str:
        self._serial += 1
        return f"{prefix}{self._code}{self._serial:08d}"

    def _control(self, writer: AnswerWriter, data: etree._Element, holdings: Holdings, key: str, court: str) -> None:
        out = writer.add(writer.root, "Data", None)
        owned = {account.number: account for account in holdings.accounts}
        measures: dict[str, Callable[[etree._Element, etree._Element, Account, str, str], None]] = {
            "01": self._freeze, "02": self._renew, "04": self._release, "06": self._deduct,
        }
        for line in data.findall(_tag("KZ")):
            result = writer.add(out, "KZJG", None)
            measure, number = _text(line, "KZCS") or "", _text(line, "ZH") or ""
            writer.add(result, "KZCS", measure)
            writer.add(result, "ZH", number)
            account = owned.get(number)
            if account is None:
                _not_controlled(result, "账户不存在: no such account of this debtor at this bank")
            elif account.kind in EXEMPT_KINDS and measure in ("01", "06"):
                _not_controlled(result, "依法不得冻结扣划的账户: account exempt from enforcement")
            else:
                measures[measure](result, line, account, key, court)

    def _effect(self, key: str) -> None:
        self.effects_applied += 1
        self.effects_by_key[key] += 1

    def _freeze(self, result: etree._Element, line: etree._Element, account: Account, key: str, court: str) -> None:
        start, end = _term(line)
        if end is None or (end - start).days > MAX_FREEZE_DAYS or end < start:
            _not_controlled(result, "冻结期限超过一年或不合法: term must end within one year of its start")
            return
        amount = _text(line, "JE")
        asked = Decimal(amount) if amount else None
        ahead = list(account.freezes)
        available = account.available
        if available == _ZERO and not ahead:
            _not_controlled(result, "账户余额不足: nothing to freeze", asked=asked)
            return
        frozen = available if asked is None else min(asked, available)
        reference = self._next_reference("DJ")
        account.freezes.append(Freeze(reference, f"court {court}", _text(line, "CDH") or "", frozen, end, key))
        self._effect(key)
        add = AnswerWriter.add
        add(result, "KZZT", "1")
        add(result, "KSRQ", start.isoformat())
        add(result, "JSRQ", end.isoformat())
        if asked is not None:
            add(result, "DJXE", _money(asked))
        add(result, "SKJE", _money(frozen))
        if asked is not None and frozen < asked:
            add(result, "CESKJE", _money(asked - frozen))
        for freeze in ahead:
            row = add(result, "ZQDJ", None)
            for name, value in (("DJJG", freeze.by), ("DJWH", freeze.ruling), ("DJJE", _money(freeze.amount))):
                add(row, name, value)
        add(result, "DJBH", reference)

    def _own_freeze(self, result: etree._Element, line: etree._Element, account: Account) -> Freeze | None:
        reference = _text(line, "YDJBH")
        freeze = next((f for f in account.freezes if f.reference == reference), None)
        if freeze is None:
            _not_controlled(result, f"原冻结不存在: no freeze {reference} on this account")
        return freeze

    def _renew(self, result: etree._Element, line: etree._Element, account: Account, key: str, court: str) -> None:
        freeze = self._own_freeze(result, line, account)
        if freeze is None:
            return
        start, end = _term(line)
        if end is None or (end - start).days > MAX_FREEZE_DAYS or end < start:
            _not_controlled(result, "续冻期限超过一年或不合法: term must end within one year of its start")
            return
        freeze.until = end
        self._effect(key)
        add = AnswerWriter.add
        for name, value in (("KZZT", "1"), ("KSRQ", start.isoformat()), ("JSRQ", end.isoformat()),
                            ("SKJE", _money(freeze.amount)), ("DJBH", freeze.reference)):
            add(result, name, value)

    def _release(self, result: etree._Element, line: etree._Element, account: Account, key: str, court: str) -> None:
        freeze = self._own_freeze(result, line, account)
        if freeze is None:
            return
        amount = _text(line, "JE")
        asked = Decimal(amount) if amount else freeze.amount
        released = min(asked, freeze.amount)
        freeze.amount -= released
        if freeze.amount == _ZERO:
            account.freezes.remove(freeze)
        self._effect(key)
        add = AnswerWriter.add
        add(result, "KZZT", "1")
        add(result, "KSRQ", _today().isoformat())
        add(result, "SKJE", _money(released))
        add(result, "DJBH", freeze.reference)

    def _deduct(self, result: etree._Element, line: etree._Element, account: Account, key: str, court: str) -> None:
        freeze = self._own_freeze(result, line, account)
        if freeze is None:
            return
        amount = _text(line, "JE")
        asked = Decimal(amount) if amount else freeze.amount
        moved = min(asked, freeze.amount, account.balance)
        if moved == _ZERO:
            _not_controlled(result, "冻结金额为零: nothing frozen to deduct", asked=asked)
            return
        freeze.amount -= moved
        account.balance -= moved
        if freeze.amount == _ZERO:
            account.freezes.remove(freeze)
        reference = self._next_reference("KH")
        self.transfers.append(Transfer(reference, account.number, _text(line, "FYSKZH") or "", moved, key))
        self._effect(key)
        add = AnswerWriter.add
        add(result, "KZZT", "1")
        add(result, "KSRQ", _today().isoformat())
        add(result, "DJXE", _money(asked))
        add(result, "SKJE", _money(moved))
        if moved < asked:
            add(result, "CESKJE", _money(asked - moved))
        add(result, "DJBH", reference)


def _term(line: etree._Element) -> tuple[date, date | None]:
    start_text, end_text = _text(line, "KSRQ"), _text(line, "JSRQ")
    start = date.fromisoformat(start_text) if start_text else _today()
    return start, date.fromisoformat(end_text) if end_text else None


def _not_controlled(result: etree._Element, reason: str, *, asked: Decimal | None = None) -> None:
    AnswerWriter.add(result, "KZZT", "2")
    if asked is not None:
        AnswerWriter.add(result, "DJXE", _money(asked))
        AnswerWriter.add(result, "SKJE", _money(_ZERO))
    AnswerWriter.add(result, "WNKZYY", reason)
