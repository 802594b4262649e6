"""Market regulation equity freezes, agency side.

Contract: ``docs/agencies/market-regulation.md`` ("Controls"). ``POST
{prefix}/controls`` with ``Execute.ExecuteItem``:

* ``1`` freeze the debtor's equity in each company listed (``UniSCID``,
  amount ``FroAm``, term ``FroFrom``-``FroTo``): ``FrozState`` 1 for the term.
  Equity that already carries a freeze (by any court) gets a queued freeze
  (轮候冻结) with its place ``QueuePos`` and the freezes ``Ahead``; it takes
  effect when those end.
* ``2`` renew: extend a freeze in force (``OrigFrozNo``) to a new ``FroTo``.
* ``3`` release: ``FrozState`` 2 from ``UnfroDate``; the first queued freeze
  takes effect.

Only the court that placed a freeze may renew or release it. A freeze whose
``FroTo`` has passed lapses (``FrozState`` 3, with ``LapseReason``) the next
time its holding is looked at, against ``today()``, which tests may replace.
The register is only touched from a render called under the sandbox lock
(``SandboxState.answer_once``), so every effect and every read is serialised.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Callable

from sandboxes.json_contract import ContractViolation, add_years, check_fields, iso_date, money, one_of, text
from sandboxes.market_regulation_data import ID_TYPES, describe_subject, initial_freeze
from sandboxes.clock import beijing_today

EXECUTE_ITEMS = {"1": "freeze", "2": "renew", "3": "release"}
DONE, QUEUED, NOT_DONE = "1", "2", "3"
FROZEN, RELEASED, LAPSED = "1", "2", "3"
MAX_FREEZE_YEARS = 3  # equity is "other property rights": at most three years
LAPSE_REASON = "冻结期限届满未续行 (the term ended without renewal)"


@dataclass
class Freeze:
    reference: str
    court: str
    ruling: str
    amount: Decimal
    until: date
    start: date | None  # None while queued
    state: str = "in_force"  # in_force | queued | released | lapsed
    released_on: date | None = None

    @property
    def frozen_state(self) -> str:
        return {"in_force": FROZEN, "released": RELEASED, "lapsed": LAPSED}.get(self.state, "")

    def listed(self, queue_position: int | None) -> dict[str, Any]:
        """As the inquiry answer lists it (in force, or queued at a place)."""
        entry: dict[str, Any] = {"FrozNo": self.reference, "ExeCourt": self.court, "RulingNo": self.ruling,
                                 "FroAm": f"{self.amount:.2f}", "FroTo": self.until.isoformat()}
        if queue_position is None:
            entry.update(FroFrom=(self.start or self.until).isoformat(), FrozState=FROZEN)
        else:
            entry["QueuePos"] = queue_position
        return entry


@dataclass
class Holding:
    subscribed: Decimal
    freezes: list[Freeze] = field(default_factory=list)

    def in_force(self) -> list[Freeze]:
        return [f for f in self.freezes if f.state == "in_force"]

    def queued(self) -> list[Freeze]:
        return [f for f in self.freezes if f.state == "queued"]

    def listed(self) -> list[dict[str, Any]]:
        return ([f.listed(None) for f in self.in_force()]
                + [f.listed(place) for place, f in enumerate(self.queued(), start=1)])


@dataclass(frozen=True)
class ExecuteOrder:
    xxid: str
    court: str
    ruling: str
    item: str
    name: str
    id_type: str
    id_number: str
    lines: tuple[dict[str, Any], ...]


class EquityRegister:
    """Freezes placed at this register, over the deterministic holdings."""

    def __init__(self, today: Callable[[], date] = beijing_today):
        self.today = today
        self._holdings: dict[tuple[str, str], Holding] = {}
        self._sequence = 0

    def holding(self, id_number: str, record: dict[str, Any]) -> Holding:
        """The live register entry for a holding record, created on first sight."""
        key = (id_number, record["UniSCID"])
        holding = self._holdings.get(key)
        if holding is None:
            holding = Holding(subscribed=Decimal(record["SubConAm"]))
            existing = initial_freeze(id_number, record["UniSCID"])
            if existing is not None:
                holding.freezes.append(Freeze(
                    reference=existing["FrozNo"], court=existing["ExeCourt"], ruling=existing["RulingNo"],
                    amount=holding.subscribed, until=date.fromisoformat(existing["FroTo"]),
                    start=date.fromisoformat(existing["FroFrom"])))
            self._holdings[key] = holding
        self._settle(holding)
        return holding

    def _settle(self, holding: Holding) -> None:
        today = self.today()
        for freeze in holding.in_force():
            if freeze.until < today:
                freeze.state = "lapsed"
        self._promote(holding)

    def _promote(self, holding: Holding) -> None:
        if holding.in_force():
            return
        for freeze in holding.queued():
            freeze.state, freeze.start = "in_force", self.today()
            return

    def _next_reference(self) -> str:
        self._sequence += 1
        return f"DJ{self._sequence:08d}"

    # --- effects ------------------------------------------------------------

    def freeze(self, order: ExecuteOrder, line: dict[str, Any], holding: Holding) -> dict[str, Any]:
        start, until = line["FroFrom"], line["FroTo"]
        if until < self.today():
            return {"ExeResult": NOT_DONE, "Reason": f"冻结期限已过 (FroTo {until} has passed)"}
        if until > add_years(start, MAX_FREEZE_YEARS):
            return {"ExeResult": NOT_DONE, "Reason": f"冻结期限不得超过{MAX_FREEZE_YEARS}年 (term over {MAX_FREEZE_YEARS} years)"}
        amount = min(Decimal(line["FroAm"]), holding.subscribed) if "FroAm" in line else holding.subscribed
        ahead = holding.in_force() + holding.queued()
        freeze = Freeze(reference=self._next_reference(), court=order.court, ruling=order.ruling, amount=amount,
                        until=until, start=None if ahead else start, state="queued" if ahead else "in_force")
        holding.freezes.append(freeze)
        answer: dict[str, Any] = {"FrozNo": freeze.reference, "FroAm": f"{amount:.2f}", "FroTo": until.isoformat()}
        if ahead:
            answer.update(ExeResult=QUEUED, QueuePos=len(ahead), Ahead=[
                {"ExeCourt": f.court, "RulingNo": f.ruling, "FroTo": f.until.isoformat()} for f in ahead])
        else:
            answer.update(ExeResult=DONE, FrozState=FROZEN, FroFrom=start.isoformat())
        return answer

    def _own_freeze(self, order: ExecuteOrder, line: dict[str, Any], holding: Holding) -> Freeze | dict[str, Any]:
        freeze = next((f for f in holding.freezes if f.reference == line["OrigFrozNo"]), None)
        if freeze is None:
            return {"ExeResult": NOT_DONE, "Reason": f"无此冻结 (no freeze {line['OrigFrozNo']} on this equity)"}
        if freeze.court != order.court:
            return {"ExeResult": NOT_DONE, "FrozNo": freeze.reference, "Reason": "非本院冻结 (placed by another court)"}
        if freeze.state in ("released", "lapsed"):
            answer = {"ExeResult": NOT_DONE, "FrozNo": freeze.reference, "FrozState": freeze.frozen_state,
                      "Reason": f"冻结已{'解除' if freeze.state == 'released' else '失效'} (the freeze is {freeze.state})"}
            if freeze.state == "lapsed":
                answer["LapseReason"] = LAPSE_REASON
            return answer
        return freeze

    def renew(self, order: ExecuteOrder, line: dict[str, Any], holding: Holding) -> dict[str, Any]:
        freeze = self._own_freeze(order, line, holding)
        if isinstance(freeze, dict):
            return freeze
        if freeze.state != "in_force":
            return {"ExeResult": NOT_DONE, "FrozNo": freeze.reference, "Reason": "轮候冻结不能续行 (a queued freeze cannot be renewed)"}
        until = line["FroTo"]
        if until <= freeze.until:
            return {"ExeResult": NOT_DONE, "FrozNo": freeze.reference, "FrozState": FROZEN,
                    "Reason": f"续行期限须晚于原期限 (FroTo must be after {freeze.until})"}
        if until > add_years(self.today(), MAX_FREEZE_YEARS):
            return {"ExeResult": NOT_DONE, "FrozNo": freeze.reference, "FrozState": FROZEN,
                    "Reason": f"续行期限不得超过{MAX_FREEZE_YEARS}年 (term over {MAX_FREEZE_YEARS} years)"}
        freeze.until = until
        return {"ExeResult": DONE, "FrozNo": freeze.reference, "FrozState": FROZEN, "FroAm": f"{freeze.amount:.2f}",
                "FroFrom": (freeze.start or self.today()).isoformat(), "FroTo": until.isoformat()}

    def release(self, order: ExecuteOrder, line: dict[str, Any], holding: Holding) -> dict[str, Any]:
        freeze = self._own_freeze(order, line, holding)
        if isinstance(freeze, dict):
            return freeze
        freeze.state, freeze.released_on = "released", line["UnfroDate"]
        self._promote(holding)
        return {"ExeResult": DONE, "FrozNo": freeze.reference, "FrozState": RELEASED, "FroAm": f"{freeze.amount:.2f}",
                "UnfroDate": line["UnfroDate"].isoformat()}

    def carry_out(self, order: ExecuteOrder) -> dict[str, Any]:
        """The ``Data`` of the answer to an execute order, with its effects applied."""
        records = {r["UniSCID"]: r for r in describe_subject(order.id_number, order.name, order.id_type, ("GQ",))["GQ"]}
        act = {"1": self.freeze, "2": self.renew, "3": self.release}[order.item]
        results = []
        for line in order.lines:
            record = records.get(line["UniSCID"])
            if record is None:
                result = {"ExeResult": NOT_DONE, "Reason": "被执行人未持有该企业股权 (the debtor holds no equity in this company)"}
            else:
                result = {"EntName": record["EntName"], **act(order, line, self.holding(order.id_number, record))}
            results.append({"UniSCID": line["UniSCID"], **result})
        return {"Items": results}


# --------------------------------------------------------------------------
# Request validation
# --------------------------------------------------------------------------

_EXECUTE_REQUIRED = ("ExecuteItem", "Inv", "CerType", "CerNo", "Items")
_LINE_FIELDS = {
    "1": (("UniSCID", "FroFrom", "FroTo"), ("FroAm",)),
    "2": (("UniSCID", "OrigFrozNo", "FroTo"), ()),
    "3": (("UniSCID", "OrigFrozNo", "UnfroDate"), ()),
}


def read_execute(document: dict[str, Any], head: dict[str, Any]) -> ExecuteOrder:
    execute = check_fields(document["Execute"], "Execute", _EXECUTE_REQUIRED)
    item = one_of(execute, "Execute", "ExecuteItem", EXECUTE_ITEMS)
    name = text(execute, "Execute", "Inv", 100)
    id_type = text(execute, "Execute", "CerType")
    if id_type not in ID_TYPES:
        raise ContractViolation("Execute.CerType", f"must be '10' (resident ID card) or '20' (unified social credit code), got {id_type!r}")
    id_number = text(execute, "Execute", "CerNo")
    if len(id_number) != 18:
        raise ContractViolation("Execute.CerNo", f"must be 18 characters, got {len(id_number)}")
    value = execute["Items"]
    if not isinstance(value, list) or not value:
        raise ContractViolation("Execute.Items", "must be a non-empty list")
    if len(value) > 50:
        raise ContractViolation("Execute.Items", "at most 50 companies per order")
    required, optional = _LINE_FIELDS[item]
    lines, companies = [], set()
    for index, entry in enumerate(value):
        path = f"Execute.Items[{index}]"
        line = dict(check_fields(entry, path, required, optional))
        company = text(line, path, "UniSCID", 18)
        if len(company) != 18:
            raise ContractViolation(f"{path}.UniSCID", f"must be 18 characters, got {len(company)}")
        if company in companies:
            raise ContractViolation(f"{path}.UniSCID", f"repeats {company!r} (one line per company)")
        companies.add(company)
        for key in ("FroFrom", "FroTo", "UnfroDate"):
            if key in line:
                line[key] = iso_date(line, path, key)
        if "FroAm" in line:
            money(line, path, "FroAm")
        if "OrigFrozNo" in line:
            text(line, path, "OrigFrozNo", 64)
        if item == "1" and line["FroTo"] < line["FroFrom"]:
            raise ContractViolation(f"{path}.FroTo", "must not be before FroFrom")
        lines.append(line)
    return ExecuteOrder(xxid=head["XXID"], court=head["FYDM"], ruling=head["WSH"], item=item, name=name,
                        id_type=id_type, id_number=id_number, lines=tuple(lines))
