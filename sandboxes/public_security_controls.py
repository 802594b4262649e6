"""Public security controls, agency side: vehicle seals and watches.

Contract: ``docs/agencies/public-security.md`` ("Controls"). ``POST
{prefix}/controls`` with ``Control.KZLX``:

* ``CF`` seal the vehicles listed (``CL``: plate ``HPHM``, end ``JZRQ``): the
  vehicle's state ``ZT`` becomes ``K`` for the term. A vehicle already sealed
  (by any court) gets a queued seal (轮候) with its place ``LHXH`` and the
  seals ahead ``QX``; it takes effect when those end.
* ``JF`` release the seals named (``CL``: plate and the seal's ``YCFBH``), only
  by the court that placed them; ``ZT`` returns to what it was when no seal
  is left in force, and the first queued seal takes effect.
* ``BK`` watch the subject (alert the court when seen): registers a watch and
  answers its reference ``BKBH``.

The registers live in memory per app and are only touched from a render
called under the sandbox lock (``SandboxState.answer_once``), so every effect
and every read is serialised. A seal whose end has passed lapses the next
time its vehicle is looked at, against ``today()``, which tests may replace.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Callable

from sandboxes.json_contract import ContractViolation, add_years, check_fields, iso_date, one_of, text
from sandboxes.public_security_data import ID_TYPES, describe_subject
from sandboxes.clock import beijing_today

CONTROL_KINDS = {"CF": "seal", "JF": "release", "BK": "watch"}
DONE, QUEUED, NOT_DONE = "1", "2", "3"
SEALED = "K"
MAX_SEAL_YEARS = 2  # movables: a seal term is at most two years
DEFAULT_WATCH_DAYS = 365

_OTHER_COURTS = ("110105", "310115", "440106", "330106", "320102")


@dataclass
class Seal:
    reference: str
    court: str
    ruling: str
    until: date
    start: date | None  # None while queued
    state: str = "in_force"  # in_force | queued | released | lapsed
    released_on: date | None = None

    def ahead_entry(self) -> dict[str, str]:
        return {"CFFY": self.court, "WSH": self.ruling, "JZRQ": self.until.isoformat()}


@dataclass
class Vehicle:
    base_state: str  # the ZT the vehicle has with no seal in force
    seals: list[Seal] = field(default_factory=list)

    def in_force(self) -> list[Seal]:
        return [s for s in self.seals if s.state == "in_force"]

    def queued(self) -> list[Seal]:
        return [s for s in self.seals if s.state == "queued"]

    @property
    def state(self) -> str:
        return SEALED if self.in_force() else self.base_state


@dataclass(frozen=True)
class ControlOrder:
    xxid: str
    court: str
    ruling: str
    kind: str
    name: str
    id_type: str
    id_number: str
    lines: tuple[dict[str, Any], ...]
    watch_until: date | None


def _existing_seal(plate: str) -> Seal:
    """The seal another court holds on a vehicle the register lists as sealed (ZT K)."""
    seed = hashlib.sha256(("seal|" + plate).encode("utf-8")).digest()
    court = _OTHER_COURTS[seed[0] % len(_OTHER_COURTS)]
    until = date(2028, 1, 1) + timedelta(days=seed[1] * 2)
    return Seal(reference=f"CF{seed[2:6].hex().upper()}", court=court, ruling=f"(2025)执保{100 + seed[3]}号",
                until=until, start=date(2025, 6, 1))


class VehicleRegister:
    """Seals and watches placed at this bureau, over the deterministic vehicle records."""

    def __init__(self, today: Callable[[], date] = beijing_today):
        self.today = today
        self._vehicles: dict[str, Vehicle] = {}
        self._watches: dict[tuple[str, str], dict[str, str]] = {}
        self._sequence = 0

    def _next_reference(self, prefix: str) -> str:
        self._sequence += 1
        return f"{prefix}{self._sequence:08d}"

    def vehicle(self, record: dict[str, str]) -> Vehicle:
        """The live register entry for a vehicle record, created on first sight."""
        plate = record["HPHM"]
        vehicle = self._vehicles.get(plate)
        if vehicle is None:
            if record["ZT"] == SEALED:
                vehicle = Vehicle(base_state="A", seals=[_existing_seal(plate)])
            else:
                vehicle = Vehicle(base_state=record["ZT"])
            self._vehicles[plate] = vehicle
        self._settle(vehicle)
        return vehicle

    def current_state(self, record: dict[str, str]) -> str:
        return self.vehicle(record).state

    def _settle(self, vehicle: Vehicle) -> None:
        today = self.today()
        for seal in vehicle.in_force():
            if seal.until < today:
                seal.state = "lapsed"
        self._promote(vehicle)

    def _promote(self, vehicle: Vehicle) -> None:
        if vehicle.in_force():
            return
        for seal in vehicle.queued():
            seal.state, seal.start = "in_force", self.today()
            return

    # --- effects ------------------------------------------------------------

    def seal(self, order: ControlOrder, line: dict[str, Any], record: dict[str, str] | None) -> dict[str, Any]:
        plate = line["HPHM"]
        if record is None:
            return {"HPHM": plate, "ZXJG": NOT_DONE, "YY": "该车辆未登记在被执行人名下 (not registered to this subject)"}
        today, until = self.today(), line["JZRQ"]
        if until <= today:
            return {"HPHM": plate, "ZXJG": NOT_DONE, "YY": f"查封截止日期须晚于今日 (JZRQ must be after {today})"}
        if until > add_years(today, MAX_SEAL_YEARS):
            return {"HPHM": plate, "ZXJG": NOT_DONE, "YY": f"查封期限不得超过{MAX_SEAL_YEARS}年 (term over {MAX_SEAL_YEARS} years)"}
        vehicle = self.vehicle(record)
        ahead = vehicle.in_force() + vehicle.queued()
        seal = Seal(reference=self._next_reference("CF"), court=order.court, ruling=order.ruling, until=until,
                    start=None if ahead else today, state="queued" if ahead else "in_force")
        vehicle.seals.append(seal)
        answer: dict[str, Any] = {"HPHM": plate, "CFBH": seal.reference, "ZT": vehicle.state, "JZRQ": until.isoformat()}
        if ahead:
            answer.update({"ZXJG": QUEUED, "LHXH": len(ahead), "QX": [s.ahead_entry() for s in ahead]})
        else:
            answer.update({"ZXJG": DONE, "QSRQ": today.isoformat()})
        return answer

    def release(self, order: ControlOrder, line: dict[str, Any], record: dict[str, str] | None) -> dict[str, Any]:
        plate, reference = line["HPHM"], line["YCFBH"]
        if record is None:
            return {"HPHM": plate, "ZXJG": NOT_DONE, "YY": "该车辆未登记在被执行人名下 (not registered to this subject)"}
        vehicle = self.vehicle(record)
        seal = next((s for s in vehicle.seals if s.reference == reference), None)
        if seal is None:
            return {"HPHM": plate, "ZXJG": NOT_DONE, "YY": f"无此查封 (no seal {reference} on this vehicle)"}
        if seal.court != order.court:
            return {"HPHM": plate, "ZXJG": NOT_DONE, "YY": "非本院查封，不得解封 (placed by another court)"}
        if seal.state in ("released", "lapsed"):
            return {"HPHM": plate, "ZXJG": NOT_DONE, "CFBH": seal.reference, "ZT": vehicle.state,
                    "YY": f"查封已{'解除' if seal.state == 'released' else '失效'} (seal already {seal.state})"}
        seal.state, seal.released_on = "released", self.today()
        self._promote(vehicle)
        return {"HPHM": plate, "ZXJG": DONE, "CFBH": seal.reference, "ZT": vehicle.state,
                "JFRQ": seal.released_on.isoformat()}

    def watch(self, order: ControlOrder) -> dict[str, str]:
        """One watch per subject and court: asking again answers the watch in force."""
        today = self.today()
        key = (order.id_number, order.court)
        existing = self._watches.get(key)
        if existing is not None and date.fromisoformat(existing["JZRQ"]) >= today:
            return dict(existing)
        until = order.watch_until or today + timedelta(days=DEFAULT_WATCH_DAYS)
        watch = {"BKBH": self._next_reference("BK"), "QSRQ": today.isoformat(), "JZRQ": until.isoformat()}
        self._watches[key] = watch
        return dict(watch)

    def carry_out(self, order: ControlOrder) -> dict[str, Any]:
        """The ``Data`` of the answer to a control order, with its effects applied."""
        if order.kind == "BK":
            return {"BK": self.watch(order)}
        records = {r["HPHM"]: r for r in describe_subject(order.id_number, order.name, order.id_type, ("CL",))["CL"]}
        act = self.seal if order.kind == "CF" else self.release
        return {"CL": [act(order, line, records.get(line["HPHM"])) for line in order.lines]}


# --------------------------------------------------------------------------
# Request validation
# --------------------------------------------------------------------------

_CONTROL_REQUIRED = ("KZLX", "XM", "ZJZL", "ZJHM")
_LINE_FIELDS = {"CF": (("HPHM", "JZRQ"), ()), "JF": (("HPHM", "YCFBH"), ())}


def read_control(document: dict[str, Any], head: dict[str, Any], today: date) -> ControlOrder:
    control = check_fields(document["Control"], "Control", _CONTROL_REQUIRED, ("CL", "BKJZRQ"))
    kind = one_of(control, "Control", "KZLX", CONTROL_KINDS)
    name = text(control, "Control", "XM", 100)
    id_type = text(control, "Control", "ZJZL")
    if id_type not in ID_TYPES:
        raise ContractViolation("Control.ZJZL", f"must be '1' (resident ID) or '8' (social credit code), got {id_type!r}")
    id_number = text(control, "Control", "ZJHM")
    if len(id_number) != 18:
        raise ContractViolation("Control.ZJHM", f"must be 18 characters, got {len(id_number)}")
    watch_until = None
    lines: list[dict[str, Any]] = []
    if kind == "BK":
        if "CL" in control:
            raise ContractViolation("Control.CL", "not allowed for a watch (KZLX BK)")
        if "BKJZRQ" in control:
            watch_until = iso_date(control, "Control", "BKJZRQ")
            if watch_until <= today:
                raise ContractViolation("Control.BKJZRQ", f"must be after today ({today})")
    else:
        if "BKJZRQ" in control:
            raise ContractViolation("Control.BKJZRQ", f"only for a watch (KZLX BK), not {kind}")
        lines = _read_lines(control, kind)
    return ControlOrder(xxid=head["XXID"], court=head["FYDM"], ruling=head["WSH"], kind=kind, name=name,
                        id_type=id_type, id_number=id_number, lines=tuple(lines), watch_until=watch_until)


def _read_lines(control: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    if "CL" not in control:
        raise ContractViolation("Control.CL", f"required for KZLX {kind}")
    value = control["CL"]
    if not isinstance(value, list) or not value:
        raise ContractViolation("Control.CL", "must be a non-empty list")
    if len(value) > 50:
        raise ContractViolation("Control.CL", "at most 50 vehicles per order")
    required, optional = _LINE_FIELDS[kind]
    lines, plates = [], set()
    for index, item in enumerate(value):
        path = f"Control.CL[{index}]"
        line = dict(check_fields(item, path, required, optional))
        text(line, path, "HPHM", 16)
        if line["HPHM"] in plates:
            raise ContractViolation(f"{path}.HPHM", f"repeats {line['HPHM']!r} (one line per vehicle)")
        plates.add(line["HPHM"])
        if kind == "CF":
            line["JZRQ"] = iso_date(line, path, "JZRQ")
        else:
            text(line, path, "YCFBH", 64)
        lines.append(line)
    return lines
