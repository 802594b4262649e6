"""Market regulation (company register, equity) REST format, v1: see
docs/agencies/market-regulation.md.

Field names are the ones seen in the equity-freeze exchange (``ExecuteItem``,
``Inv``, ``EntName``, ``UniSCID``, ``FroAm``, ``FroFrom``, ``FroTo``,
``FrozState``); the envelope is the shape shared by all agencies
(``schemas.agencies.envelope``). Dates are ``YYYY-MM-DD``; money is yuan as a
string with two places.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from schemas.agencies.envelope import (  # noqa: F401 (AnswerHeadSchema, ErrorAnswerSchema: this format's too)
    AnswerHeadSchema,
    ErrorAnswerSchema,
    RequestHeadSchema,
    require_legal_basis,
    text,
)
from schemas.fields import Money, unique_items

# Our categories and the agency's lists for them.
CATEGORY_CODES = {"enterprise": "QYDJ", "equity": "GQ"}
# The agency's own certificate type codes (CerType): not public security's 1/8.
ID_TYPES = {"person": "10", "organization": "20"}
# ExecuteItem. 4 (forced transfer) exists at the agency but is served on paper,
# not over this interface.
EXECUTE_ITEMS = {"freeze": "1", "renew": "2", "unfreeze": "3"}
FROZEN_STATES = {"1": "frozen", "2": "released", "3": "lapsed"}
EXECUTE_RESULTS = {"1": "done", "2": "queued behind earlier freezes", "3": "not done (Reason says why)"}
ENTERPRISE_STATES = {"1": "in business", "2": "licence revoked", "3": "deregistered", "4": "moved out"}
MAX_ITEMS_PER_EXECUTE = 50

_USCC = validate.Regexp(r"^[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}$",
                        error="must be an 18-character unified social credit code")


def _date(**kwargs) -> fields.Date:
    return fields.Date(format="iso", **kwargs)


def _share(**kwargs) -> fields.Str:
    return fields.Str(validate=validate.Regexp(r"^(100\.00|\d{1,2}\.\d{2})$", error="must be a percentage like 12.50"),
                      **kwargs)


# --- Inquiry: POST {endpoint}/inquiries ---------------------------------------


class InquiryQuerySchema(Schema):
    Inv = text(100, required=True)  # the debtor's name
    CerType = fields.Str(required=True, validate=validate.OneOf(ID_TYPES.values()))
    CerNo = fields.Str(required=True, validate=validate.Length(equal=18))
    CXLB = fields.List(
        fields.Str(validate=validate.OneOf(CATEGORY_CODES.values())),
        required=True,
        validate=[validate.Length(min=1), unique_items],
    )


class InquirySchema(Schema):
    Head = fields.Nested(RequestHeadSchema, required=True)
    Query = fields.Nested(InquiryQuerySchema, required=True)


class EnterpriseSchema(Schema):
    EntName = text(200, required=True)
    UniSCID = fields.Str(required=True, validate=_USCC)
    RegNo = fields.Str(required=True, validate=validate.Regexp(r"^\d{15}$", error="must be 15 digits"))
    LeRep = text(100, required=True)  # legal representative
    EntStatus = fields.Str(required=True, validate=validate.OneOf(ENTERPRISE_STATES))
    EstDate = _date(required=True)  # founded
    RegCap = Money(required=True)  # registered capital, yuan


class FreezeSchema(Schema):
    """A freeze on a holding, in force (``FrozState`` 1) or queued (``QueuePos``)."""

    FrozNo = text(64, required=True)
    ExeCourt = text(32, required=True)
    RulingNo = text(64, required=True)
    FroAm = Money(required=True)
    FroFrom = _date()
    FroTo = _date(required=True)
    FrozState = fields.Str(validate=validate.OneOf(FROZEN_STATES))
    QueuePos = fields.Int(strict=True, validate=validate.Range(min=1))

    @validates_schema
    def _in_force_or_queued(self, data, **kwargs):
        if ("FrozState" in data) == ("QueuePos" in data):
            raise ValidationError("a listed freeze has FrozState (in force) or QueuePos (queued), not both",
                                  field_name="FrozState")
        if "FrozState" in data and "FroFrom" not in data:
            raise ValidationError("required for a freeze in force", field_name="FroFrom")


class HoldingSchema(Schema):
    EntName = text(200, required=True)
    UniSCID = fields.Str(required=True, validate=_USCC)
    SubConAm = Money(required=True)  # subscribed capital contribution, yuan
    ConProp = _share(required=True)  # share of the registered capital, percent
    FrozList = fields.List(fields.Nested(FreezeSchema), required=True)


class AnswerDataSchema(Schema):
    QYDJ = fields.Nested(EnterpriseSchema, allow_none=True)
    GQ = fields.List(fields.Nested(HoldingSchema))


class AnswerSchema(Schema):
    Head = fields.Nested(AnswerHeadSchema, required=True)
    Data = fields.Nested(AnswerDataSchema, required=True)


# --- Controls: POST {endpoint}/controls -----------------------------------------


class ExecuteLineSchema(Schema):
    UniSCID = fields.Str(required=True, validate=_USCC)  # the company whose equity is acted on
    FroAm = Money()  # freeze: amount of equity to freeze; absent: the whole holding
    FroFrom = _date()  # freeze
    FroTo = _date()  # freeze, renew: end of the term
    OrigFrozNo = text(64)  # renew, release: the freeze acted on (its FrozNo)
    UnfroDate = _date()  # release: date the release takes effect


# What each ExecuteItem needs on every line, and what it must not carry.
_LINE_RULES = {
    "1": ("a freeze", ("FroFrom", "FroTo"), ("OrigFrozNo", "UnfroDate")),
    "2": ("a renewal", ("OrigFrozNo", "FroTo"), ("FroAm", "FroFrom", "UnfroDate")),
    "3": ("a release", ("OrigFrozNo", "UnfroDate"), ("FroAm", "FroFrom", "FroTo")),
}


class ExecuteSchema(Schema):
    ExecuteItem = fields.Str(required=True, validate=validate.OneOf(EXECUTE_ITEMS.values()))
    Inv = text(100, required=True)
    CerType = fields.Str(required=True, validate=validate.OneOf(ID_TYPES.values()))
    CerNo = fields.Str(required=True, validate=validate.Length(equal=18))
    Items = fields.List(fields.Nested(ExecuteLineSchema), required=True,
                        validate=validate.Length(min=1, max=MAX_ITEMS_PER_EXECUTE))

    @validates_schema
    def _lines_fit_the_item(self, data: dict[str, Any], **kwargs: Any) -> None:
        rules = _LINE_RULES.get(data.get("ExecuteItem", ""))
        if rules is None or "Items" not in data:
            return
        what, needed, refused = rules
        problems: dict = {}
        companies: set[str] = set()
        for index, line in enumerate(data["Items"]):
            for key in needed:
                if key not in line:
                    problems.setdefault(index, {})[key] = [f"required for {what}"]
            for key in refused:
                if key in line:
                    problems.setdefault(index, {})[key] = [f"not allowed for {what}"]
            if "FroFrom" in line and "FroTo" in line and line["FroTo"] < line["FroFrom"]:
                problems.setdefault(index, {})["FroTo"] = ["must not be before FroFrom"]
            if line.get("UniSCID") in companies:
                problems.setdefault(index, {})["UniSCID"] = [f"{line['UniSCID']!r} is listed twice"]
            companies.add(line.get("UniSCID"))
        if problems:
            raise ValidationError({"Items": problems})


class ControlRequestSchema(Schema):
    Head = fields.Nested(RequestHeadSchema, required=True)
    Execute = fields.Nested(ExecuteSchema, required=True)

    @validates_schema
    def _control_has_a_legal_basis(self, data, **kwargs):
        require_legal_basis(data)


class AheadSchema(Schema):
    ExeCourt = text(32, required=True)
    RulingNo = text(64, required=True)
    FroTo = _date(required=True)


class ExecuteResultSchema(Schema):
    UniSCID = fields.Str(required=True, validate=_USCC)
    EntName = text(200)
    ExeResult = fields.Str(required=True, validate=validate.OneOf(EXECUTE_RESULTS))
    FrozNo = text(64)  # the freeze placed (queued included), renewed or released
    FrozState = fields.Str(validate=validate.OneOf(FROZEN_STATES))  # the freeze's state after this order
    FroAm = Money()
    FroFrom = _date()
    FroTo = _date()
    UnfroDate = _date()
    QueuePos = fields.Int(strict=True, validate=validate.Range(min=1))
    Ahead = fields.List(fields.Nested(AheadSchema))
    Reason = text(500)  # why not done
    LapseReason = text(500)  # why a freeze lapsed (FrozState 3)

    @validates_schema
    def _result_carries_what_it_means(self, data, **kwargs):
        result = data.get("ExeResult")
        if result in ("1", "2") and "FrozNo" not in data:
            raise ValidationError(f"required when ExeResult is {result}", field_name="FrozNo")
        if result == "1" and "FrozState" not in data:
            raise ValidationError("required when ExeResult is 1", field_name="FrozState")
        if result == "2" and ("QueuePos" not in data or not data.get("Ahead")):
            raise ValidationError("a queued freeze needs its place QueuePos and the freezes Ahead", field_name="QueuePos")
        if result == "3" and "Reason" not in data:
            raise ValidationError("required when ExeResult is 3 (not done)", field_name="Reason")
        if data.get("FrozState") == "3" and "LapseReason" not in data:
            raise ValidationError("required when FrozState is 3 (lapsed)", field_name="LapseReason")


class ControlAnswerDataSchema(Schema):
    Items = fields.List(fields.Nested(ExecuteResultSchema), required=True)


class ControlAnswerSchema(Schema):
    Head = fields.Nested(AnswerHeadSchema, required=True)
    Data = fields.Nested(ControlAnswerDataSchema, required=True)
