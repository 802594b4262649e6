"""Market regulation codec: company registration and equity held; equity freeze,
renewal and release.

Format: docs/agencies/market-regulation.md and schemas/agencies/market_regulation.py.
"""

from __future__ import annotations

import json
from decimal import Decimal
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
from schemas.agencies import market_regulation as fmt
from schemas.fields import money_text

INQUIRIES, CONTROLS = "inquiries", "controls"  # the operations (URL paths) of the contract


class MarketRegulationCodec:
    kind = "market_regulation"
    action_categories: dict[str, tuple[str, ...]] = {
        "inquiry": ("enterprise", "equity"),
        "freeze": ("equity",),
        "renew": ("equity",),
        "unfreeze": ("equity",),
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

    # --- encode ----------------------------------------------------------------

    def encode(self, order: DeliveryOrder) -> Envelope:
        if order.action == "inquiry":
            return self._encode_inquiry(order)
        if order.action in fmt.EXECUTE_ITEMS:
            return self._encode_control(order)
        raise OutgoingInvalid(f"market regulation does not take action {order.action!r} (it takes: {', '.join(self.actions)})")

    def _debtor(self, order: DeliveryOrder) -> dict[str, str]:
        return {
            "Inv": order.subject.name,
            "CerType": fmt.ID_TYPES.get(order.subject.kind, ""),
            "CerNo": order.subject.id_number,
        }

    def _encode_inquiry(self, order: DeliveryOrder) -> Envelope:
        query = {**self._debtor(order), "CXLB": [fmt.CATEGORY_CODES[c] for c in order.categories if c in fmt.CATEGORY_CODES]}
        body = dump_checked(self._inquiry, {"Head": request_head(order), "Query": query}, "inquiry")
        return Envelope(message_id=order.message_id, operation=INQUIRIES, body=body, media_type=JSON_MEDIA_TYPE)

    def _encode_control(self, order: DeliveryOrder) -> Envelope:
        item = fmt.EXECUTE_ITEMS[order.action]
        if order.court_date is None:
            raise OutgoingInvalid(f"court_date: required for {order.action} (FroFrom/UnfroDate, the court's date)")
        today = order.court_date.isoformat()
        execute = {**self._debtor(order), "Items": [_execute_line(item, line, today) for line in order.lines]}
        message = {"Head": request_head(order), "Execute": {"ExecuteItem": item, **execute}}
        body = dump_checked(self._control, message, order.action)
        return Envelope(message_id=order.message_id, operation=CONTROLS, body=body, media_type=JSON_MEDIA_TYPE)

    # --- decode ----------------------------------------------------------------

    def decode(self, reply: Reply, envelope: Envelope) -> AgencyAnswer:
        check_answered(reply, self._error)
        sent = json.loads(envelope.body)  # our own message, checked when it was made
        if envelope.operation == CONTROLS:
            answer = load_checked(self._control_answer, reply.body)
        else:
            answer = load_checked(self._answer, reply.body)
        head = answer["Head"]
        check_bound(envelope, head["XXID"], head["QQSHA256"], reply.body)
        assets: list[dict[str, Any]] = []
        controls: list[dict[str, Any]] = []
        if envelope.operation == CONTROLS:
            controls = _control_outcomes(sent["Execute"], answer["Data"]["Items"], reply.body)
        else:
            assets = _inquiry_assets(sent["Query"], answer["Data"], reply.body)
        return AgencyAnswer(
            message_id=head["XXID"], request_sha256=head["QQSHA256"], answered_at=head["FKSJ"], assets=assets,
            raw=reply.body, controls=controls,
        )


def _execute_line(item: str, line: ControlLine, today: str) -> dict[str, str]:
    """One company of a freeze, renewal or release.

    What a line lacks for its kind (no end of term, no original freeze) is left
    out and refused by the format check, which names the field.
    """
    out = {"UniSCID": line.identifier}
    if item == "1":
        if line.amount is not None:
            out["FroAm"] = money_text(line.amount)
        out["FroFrom"] = today
    if item in ("1", "2") and line.until is not None:
        out["FroTo"] = line.until.isoformat()
    if item in ("2", "3") and line.original_reference is not None:
        out["OrigFrozNo"] = line.original_reference
    if item == "3":
        out["UnfroDate"] = today
    return out


# --- inquiry answers -> assets ----------------------------------------------------


def _inquiry_assets(query: dict[str, Any], data: dict[str, Any], raw: bytes) -> list[dict[str, Any]]:
    asked, answered = set(query["CXLB"]), set(data)
    if answered != asked:
        raise IncomingInvalid(f"answer lists {sorted(answered)} but the inquiry asked for {sorted(asked)}", raw=raw)
    if data.get("QYDJ") and query["CerType"] != fmt.ID_TYPES["organization"]:
        raise IncomingInvalid("answer holds a company registration (QYDJ) for a person", raw=raw)
    assets = []
    if data.get("QYDJ"):
        if data["QYDJ"]["UniSCID"] != query["CerNo"]:
            raise IncomingInvalid("answer's QYDJ.UniSCID is not the code asked about", raw=raw)
        assets.append(_enterprise_asset(data["QYDJ"]))
    assets.extend(_equity_asset(holding) for holding in data.get("GQ", []))
    return assets


def _enterprise_asset(record: dict[str, Any]) -> dict[str, Any]:
    state = fmt.ENTERPRISE_STATES[record["EntStatus"]]
    capital = money_text(record["RegCap"])
    return {
        "category": "enterprise",
        "identifier": record["UniSCID"],
        "description": (
            f"company {record['EntName']} (USCC {record['UniSCID']}, registration {record['RegNo']}), "
            f"legal representative {record['LeRep']}, {state}, founded {record['EstDate'].isoformat()}, "
            f"registered capital {capital} yuan"
        ),
        "encumbrances": [] if record["EntStatus"] == "1" else [f"enterprise state {record['EntStatus']}: {state}"],
        "details": {
            "name": record["EntName"], "registration_number": record["RegNo"], "legal_representative": record["LeRep"],
            "state": record["EntStatus"], "founded": record["EstDate"].isoformat(), "registered_capital": capital,
        },
    }


def _freeze_text(freeze: dict[str, Any]) -> str:
    held = f"frozen by court {freeze['ExeCourt']}, {freeze['RulingNo']}"
    if "QueuePos" in freeze:
        held = f"queued freeze no. {freeze['QueuePos']} by court {freeze['ExeCourt']}, {freeze['RulingNo']}"
    return f"{held}: {money_text(freeze['FroAm'])} yuan until {freeze['FroTo'].isoformat()} ({freeze['FrozNo']})"


def _equity_asset(holding: dict[str, Any]) -> dict[str, Any]:
    subscribed = money_text(holding["SubConAm"])
    return {
        "category": "equity",
        "identifier": holding["UniSCID"],
        "description": (
            f"equity in {holding['EntName']} (USCC {holding['UniSCID']}): subscribed {subscribed} yuan, "
            f"{holding['ConProp']}% of the registered capital"
        ),
        "value": subscribed,
        "encumbrances": [_freeze_text(f) for f in holding["FrozList"]],
        "details": {
            "company": holding["EntName"], "share_percent": holding["ConProp"],
            "freezes": [
                {"reference": f["FrozNo"], "court": f["ExeCourt"], "ruling": f["RulingNo"], "amount": money_text(f["FroAm"]),
                 "until": f["FroTo"].isoformat(), "queue_position": f.get("QueuePos")}
                for f in holding["FrozList"]
            ],
        },
    }


# --- control answers -> control outcomes ------------------------------------------


def _control_outcomes(execute: dict[str, Any], results: list[dict[str, Any]], raw: bytes) -> list[dict[str, Any]]:
    asked = [line["UniSCID"] for line in execute["Items"]]
    answered = [result["UniSCID"] for result in results]
    if answered != asked:
        raise IncomingInvalid(f"answer covers companies {answered} but the order listed {asked}", raw=raw)
    return [_outcome(execute["ExecuteItem"], line, result) for line, result in zip(execute["Items"], results, strict=False)]


def _day(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _outcome(item: str, line: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    requested = Decimal(line["FroAm"]) if "FroAm" in line else None
    controlled = result.get("FroAm")
    outcome: dict[str, Any] = {
        "category": "equity",
        "identifier": result["UniSCID"],
        "amount_requested": money_text(requested) if requested is not None else None,
        "amount_controlled": money_text(controlled) if controlled is not None else None,
        "until": _day(result.get("FroTo")),
        "agency_reference": result.get("FrozNo"),
    }
    if result["ExeResult"] == "3":
        reason = result["Reason"]
        if result.get("LapseReason"):
            reason = f"{reason} (lapsed: {result['LapseReason']})"
        outcome.update(outcome="not_controlled", reason=reason, amount_controlled=None)
    elif result["ExeResult"] == "2":
        outcome.update(
            outcome="queued", queue_position=result["QueuePos"], amount_controlled=None,
            ahead=[f"court {a['ExeCourt']}, {a['RulingNo']}, until {a['FroTo'].isoformat()}" for a in result["Ahead"]],
        )
    elif item == "3":
        outcome.update(outcome="released", effective_from=_day(result.get("UnfroDate")), amount_controlled=None)
    else:
        shortfall = (controlled, requested) if requested is not None and controlled is not None and controlled < requested else None
        outcome.update(outcome="partly_controlled" if shortfall else "controlled", effective_from=_day(result.get("FroFrom")))
        if shortfall:
            held, asked = shortfall
            outcome["reason"] = f"the holding is {money_text(held)} yuan, less than the {money_text(asked)} asked"
    return outcome
