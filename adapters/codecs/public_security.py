"""Public security codec: identity (household register), vehicles, whereabouts;
vehicle seals and releases, and watches on a debtor's whereabouts.

Format: docs/agencies/public-security.md and schemas/agencies/public_security.py.
"""

from __future__ import annotations

import json
from typing import Any

from marshmallow import EXCLUDE

from adapters.codecs.json_codec import (
    JSON_MEDIA_TYPE,
    check_answered,
    check_bound,
    dump_checked,
    load_checked,
    request_head,
)
from adapters.errors import (
    IncomingInvalid,
    OutgoingInvalid,
)
from adapters.interfaces import (
    AgencyAnswer,
    ControlLine,
    DeliveryOrder,
    Envelope,
    Reply,
)
from schemas.agencies import public_security as fmt
from schemas.identifiers import mask_id_number

INQUIRIES, CONTROLS = "inquiries", "controls"  # the operations (URL paths) of the contract

_SEX = {"1": "male", "2": "female"}


class PublicSecurityCodec:
    kind = "public_security"
    action_categories: dict[str, tuple[str, ...]] = {
        "inquiry": tuple(fmt.CATEGORY_CODES),
        "seal": ("vehicle",),
        "release": ("vehicle",),
        "watch": ("whereabouts",),
    }
    categories: tuple[str, ...] = tuple(fmt.CATEGORY_CODES)
    actions: tuple[str, ...] = tuple(action_categories)
    transports: tuple[str, ...] = ("rest",)

    def __init__(self) -> None:
        self._inquiry = fmt.InquirySchema()
        self._answer = fmt.AnswerSchema()
        self._control = fmt.ControlRequestSchema()
        self._control_answer = fmt.ControlAnswerSchema()
        self._error = fmt.ErrorAnswerSchema(unknown=EXCLUDE)  # reads the Head of any answer

    def encode(self, order: DeliveryOrder) -> Envelope:
        if order.action == "inquiry":
            return self._encode_inquiry(order)
        if order.action in fmt.CONTROL_KINDS:
            return self._encode_control(order)
        raise OutgoingInvalid(f"public security does not take action {order.action!r} (it takes: {', '.join(self.actions)})")

    def _encode_inquiry(self, order: DeliveryOrder) -> Envelope:
        message = {
            "Head": request_head(order),
            "Query": {
                "XM": order.subject.name,
                "ZJZL": fmt.ID_TYPES.get(order.subject.kind, ""),
                "ZJHM": order.subject.id_number,
                "CXLB": [fmt.CATEGORY_CODES[c] for c in order.categories if c in fmt.CATEGORY_CODES],
            },
        }
        body = dump_checked(self._inquiry, message, "inquiry")
        return Envelope(message_id=order.message_id, operation=INQUIRIES, body=body, media_type=JSON_MEDIA_TYPE)

    def _encode_control(self, order: DeliveryOrder) -> Envelope:
        kind = fmt.CONTROL_KINDS[order.action]
        control: dict[str, Any] = {
            "KZLX": kind,
            "XM": order.subject.name,
            "ZJZL": fmt.ID_TYPES.get(order.subject.kind, ""),
            "ZJHM": order.subject.id_number,
        }
        if kind == "BK":
            ends = [line.until for line in order.lines if line.until is not None]
            if ends:
                control["BKJZRQ"] = max(ends).isoformat()
        else:
            control["CL"] = [_vehicle_line(kind, line) for line in order.lines]
        message = {"Head": request_head(order), "Control": control}
        body = dump_checked(self._control, message, order.action)
        return Envelope(message_id=order.message_id, operation=CONTROLS, body=body, media_type=JSON_MEDIA_TYPE)

    def decode(self, reply: Reply, envelope: Envelope) -> AgencyAnswer:
        check_answered(reply, self._error)
        if envelope.operation == CONTROLS:
            return self._decode_control(reply, envelope)
        answer = load_checked(self._answer, reply.body)
        head = answer["Head"]
        check_bound(envelope, head["XXID"], head["QQSHA256"], reply.body)
        self._check_lists_asked(answer["Data"], envelope, reply.body)
        data = answer["Data"]
        assets: list[dict[str, Any]] = []
        if data.get("HJ"):
            assets.append(_household_asset(data["HJ"]))
        assets.extend(_vehicle_asset(v) for v in data.get("CL", []))
        assets.extend(_whereabouts_asset(w) for w in data.get("XZ", []))
        return AgencyAnswer(
            message_id=head["XXID"], request_sha256=head["QQSHA256"], answered_at=head["FKSJ"], assets=assets,
            raw=reply.body,
        )

    def _decode_control(self, reply: Reply, envelope: Envelope) -> AgencyAnswer:
        answer = load_checked(self._control_answer, reply.body)
        head = answer["Head"]
        check_bound(envelope, head["XXID"], head["QQSHA256"], reply.body)
        control = json.loads(envelope.body)["Control"]  # our own message, checked when it was made
        data = answer["Data"]
        if control["KZLX"] == "BK":
            if "BK" not in data:
                raise IncomingInvalid("answer to a watch has no BK (the watch registered)", raw=reply.body)
            controls = [_watch_outcome(data["BK"])]
        else:
            asked = [line["HPHM"] for line in control["CL"]]
            answered = [result["HPHM"] for result in data.get("CL", [])]
            if answered != asked:
                raise IncomingInvalid(f"answer covers vehicles {answered} but the order listed {asked}", raw=reply.body)
            controls = [_vehicle_outcome(control["KZLX"], result) for result in data["CL"]]
        return AgencyAnswer(
            message_id=head["XXID"], request_sha256=head["QQSHA256"], answered_at=head["FKSJ"], assets=[],
            raw=reply.body, controls=controls,
        )

    def _check_lists_asked(self, data: dict[str, Any], envelope: Envelope, raw: bytes) -> None:
        asked = set(json.loads(envelope.body)["Query"]["CXLB"])  # our own message, checked when it was made
        answered = set(data)
        if answered != asked:
            raise IncomingInvalid(
                f"answer lists {sorted(answered)} but the inquiry asked for {sorted(asked)}", raw=raw
            )


def _household_asset(record: dict[str, Any]) -> dict[str, Any]:
    born = record["CSRQ"]
    return {
        "category": "identity",
        "identifier": mask_id_number(record["GMSFHM"]),
        "description": (
            f"household register: {record['XM']}, {_SEX[record['XB']]}, born {born[:4]}-{born[4:6]}-{born[6:]}, "
            f"registered at {record['HJDZ']}"
        ),
        "details": {"sex": _SEX[record["XB"]], "ethnicity": record["MZ"], "birth_date": born, "address": record["HJDZ"]},
    }


def _vehicle_asset(record: dict[str, Any]) -> dict[str, Any]:
    encumbrances = []
    if record["DYBJ"] == "1":
        encumbrances.append("mortgaged")
    if record["ZT"] != "A":
        encumbrances.append(f"state {record['ZT']}: {fmt.VEHICLE_STATES[record['ZT']]}")
    return {
        "category": "vehicle",
        "identifier": record["HPHM"],
        "description": f"vehicle {record['HPHM']} (plate type {record['HPZL']}), VIN {record['CLSBDH']}, owner {record['SYR']}, first registered {record['CCDJRQ']}",
        "encumbrances": encumbrances,
        "details": {"plate_type": record["HPZL"], "vin": record["CLSBDH"], "state": record["ZT"], "first_registered": record["CCDJRQ"]},
    }


def _whereabouts_asset(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "category": "whereabouts",
        "identifier": f"{record['LX']}@{record['SJ']}",
        "description": f"{record['LX']} record at {record['DD']} on {record['SJ']}",
        "details": {"kind": record["LX"], "place": record["DD"], "time": record["SJ"]},
    }


def _vehicle_line(kind: str, line: ControlLine) -> dict[str, str]:
    """One vehicle of a seal (plate and end of term) or a release (plate and the seal released).

    A line missing what its kind needs is sent as is and refused by the format
    check, which names the field.
    """
    vehicle = {"HPHM": line.identifier}
    if kind == "CF" and line.until is not None:
        vehicle["JZRQ"] = line.until.isoformat()
    if kind == "JF" and line.original_reference is not None:
        vehicle["YCFBH"] = line.original_reference
    return vehicle


def _day(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _vehicle_outcome(kind: str, result: dict[str, Any]) -> dict[str, Any]:
    outcome: dict[str, Any] = {
        "category": "vehicle",
        "identifier": result["HPHM"],
        "agency_reference": result.get("CFBH"),
        "until": _day(result.get("JZRQ")),
    }
    if result["ZXJG"] == "3":
        outcome.update(outcome="not_controlled", reason=result["YY"])
    elif result["ZXJG"] == "2":
        outcome.update(
            outcome="queued", queue_position=result["LHXH"],
            ahead=[f"court {a['CFFY']}, {a['WSH']}, until {a['JZRQ'].isoformat()}" for a in result["QX"]],
        )
    elif kind == "JF":
        outcome.update(outcome="released", effective_from=_day(result.get("JFRQ")))
    else:
        outcome.update(outcome="controlled", effective_from=_day(result.get("QSRQ")))
    return outcome


def _watch_outcome(watch: dict[str, Any]) -> dict[str, Any]:
    return {
        "category": "whereabouts",
        "identifier": watch["BKBH"],
        "outcome": "watching",
        "effective_from": watch["QSRQ"].isoformat(),
        "until": watch["JZRQ"].isoformat(),
        "agency_reference": watch["BKBH"],
    }
