"""Deterministic accounts a sandbox bank holds for a subject.

Everything comes from ``sha256(bank name | seed | id number)``, never from the
``random`` module: the same subject has the same accounts at the same bank in
every run, and different banks (or seeds) hold different ones. Rules:

* one subject in five has no account at this bank;
* otherwise 1-3 deposit accounts: mostly current or savings accounts, now and
  then a time deposit or an exempt social-security / minimum-living-allowance
  account; balances are small (under 1,000), medium (under 100,000) or large
  (up to 5,000,000), now and then zero; one in ten accounts is dormant;
* one account in four carries a freeze placed by another court;
* one subject in three holds a wealth product.

``opening_accounts`` gives fresh objects: the sandbox's ledger then changes
them as freezes and deducts arrive.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

EXEMPT_KINDS = frozenset({"11", "12", "13"})
_BRANCHES = ("杭州西湖支行", "杭州滨江支行", "北京朝阳支行", "上海浦东支行", "广州天河支行", "南京鼓楼支行")
_OTHER_COURTS = ("北京市朝阳区人民法院", "上海市浦东新区人民法院", "广州市天河区人民法院", "南京市鼓楼区人民法院")
_PRODUCTS = ("稳健添利90天", "季季盈", "安心理财一年期", "天天宝")
_FIRST_OPENED = date(2005, 1, 1)


@dataclass
class Freeze:
    """A freeze in force on an account or product (another court's, or one this sandbox placed)."""

    reference: str
    by: str
    ruling: str
    amount: Decimal
    until: date
    key: str | None = None  # BDHM of the request that placed it (None: there before the sandbox started)


@dataclass
class Account:
    number: str
    kind: str  # ZHLX
    status: str  # ZHZT: 1 normal, 2 dormant
    branch: str
    opened: date
    currency: str
    balance: Decimal
    freezes: list[Freeze] = field(default_factory=list)

    @property
    def frozen(self) -> Decimal:
        return sum((f.amount for f in self.freezes), Decimal("0.00"))

    @property
    def available(self) -> Decimal:
        return max(self.balance - self.frozen, Decimal("0.00"))


@dataclass
class Product:
    code: str
    name: str
    currency: str
    value: Decimal
    matures: date


@dataclass
class Holdings:
    accounts: list[Account]
    products: list[Product]


class _Stream:
    """Endless deterministic bytes for one subject at one bank and one purpose."""

    def __init__(self, root: bytes, purpose: str):
        self._prefix = root + b"|" + purpose.encode("ascii") + b"|"
        self._counter = 0

    def below(self, bound: int) -> int:
        block = hashlib.sha256(self._prefix + self._counter.to_bytes(4, "big")).digest()
        self._counter += 1
        return int.from_bytes(block[:8], "big") % bound

    def digits(self, count: int) -> str:
        return "".join(str(self.below(10)) for _ in range(count))


def subject_root(bank: str, seed: int, id_number: str) -> bytes:
    return hashlib.sha256(f"{bank}|{seed}|{id_number}".encode("utf-8")).digest()


def bank_code(bank: str) -> str:
    """Four digits naming the bank in its account numbers."""
    return f"{int.from_bytes(hashlib.sha256(bank.encode('utf-8')).digest()[:4], 'big') % 10000:04d}"


def _cents(stream: _Stream, low: int, high: int) -> Decimal:
    return Decimal(low * 100 + stream.below((high - low) * 100)) / 100


def _balance(stream: _Stream) -> Decimal:
    size = stream.below(8)
    if size == 0:
        return Decimal("0.00")
    if size <= 2:
        return _cents(stream, 0, 1_000)
    if size <= 5:
        return _cents(stream, 1_000, 100_000)
    return _cents(stream, 100_000, 5_000_000)


def _kind(stream: _Stream) -> str:
    draw = stream.below(20)
    if draw < 9:
        return "01"
    if draw < 15:
        return "02"
    if draw < 17:
        return "03"
    return ("11", "12", "13")[draw - 17]


def opening_accounts(bank: str, seed: int, id_number: str) -> Holdings:
    """What this bank holds for the subject before any court acted on it."""
    root = subject_root(bank, seed, id_number)
    head = _Stream(root, "head")
    if head.below(5) == 0:
        return Holdings([], [])
    code = bank_code(bank)
    accounts = []
    for index in range(1 + head.below(3)):
        stream = _Stream(root, f"account-{index}")
        balance = _balance(stream)
        account = Account(
            number=f"6222{code}{stream.digits(11)}",
            kind=_kind(stream),
            status="2" if stream.below(10) == 0 else "1",
            branch=_BRANCHES[stream.below(len(_BRANCHES))],
            opened=_FIRST_OPENED + timedelta(days=stream.below(7000)),
            currency="CNY",
            balance=balance,
        )
        if stream.below(4) == 0 and balance > 0:
            court = _OTHER_COURTS[stream.below(len(_OTHER_COURTS))]
            account.freezes.append(Freeze(
                reference=f"DJ{code}{stream.digits(10)}",
                by=court,
                ruling=f"(2025)执{stream.below(9000) + 1000}号",
                amount=(balance * (1 + stream.below(10)) / 10).quantize(Decimal("0.01")),
                until=date(2027, 1, 1) + timedelta(days=stream.below(330)),
            ))
        accounts.append(account)
    products = []
    if head.below(3) == 0:
        stream = _Stream(root, "product")
        products.append(Product(
            code=f"LC{code}{stream.digits(8)}",
            name=_PRODUCTS[stream.below(len(_PRODUCTS))],
            currency="CNY",
            value=_cents(stream, 10_000, 1_000_000),
            matures=date(2027, 1, 1) + timedelta(days=stream.below(720)),
        ))
    return Holdings(accounts, products)
