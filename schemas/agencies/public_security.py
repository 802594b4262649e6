"""Public security REST format, v1: see docs/agencies/public-security.md.

Field codes are the police-side ones seen in the field (GMSFHM, HPZL, HPHM,
CLSBDH, SYR, ZT); the envelope is the shape shared by all agencies (Head + Data).
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
    utc_time,
)
from schemas.fields import unique_items

# Our categories and the agency's codes for them.
CATEGORY_CODES = {"identity": "HJ", "vehicle": "CL", "whereabouts": "XZ"}
ID_TYPES = {"person": "1", "organization": "8"}
VEHICLE_STATES = {
    "A": "normal",
    "B": "transferred out",
    "C": "stolen",
    "D": "off road",
    "E": "deregistered",
    "G": "unresolved violation",
    "H": "customs",
    "I": "unresolved accident",
    "J": "suspect",
    "K": "sealed",
    "L": "detained",
    "M": "forcibly deregistered",
    "N": "hit-and-run",
    "O": "locked",
    "P": "scrapped",
    "Q": "overdue inspection",
}


_text, _time = text, utc_time
InquiryHeadSchema = RequestHeadSchema  # the shared request Head


class InquiryQuerySchema(Schema):
    XM = _text(100, required=True)
    ZJZL = fields.Str(required=True, validate=validate.OneOf(ID_TYPES.values()))
    ZJHM = fields.Str(required=True, validate=validate.Length(equal=18))
    CXLB = fields.List(
        fields.Str(validate=validate.OneOf(CATEGORY_CODES.values())),
        required=True,
        validate=[validate.Length(min=1), unique_items],
    )


class InquirySchema(Schema):
    Head = fields.Nested(InquiryHeadSchema, required=True)
    Query = fields.Nested(InquiryQuerySchema, required=True)


class HouseholdSchema(Schema):
    GMSFHM = fields.Str(required=True, validate=validate.Length(equal=18))
    XM = _text(100, required=True)
    XB = fields.Str(required=True, validate=validate.OneOf(["1", "2"]))
    MZ = fields.Str(required=True, validate=validate.Regexp(r"^\d{2}$"))
    CSRQ = fields.Str(required=True, validate=validate.Regexp(r"^\d{8}$"))
    HJDZ = _text(200, required=True)


class VehicleSchema(Schema):
    HPZL = fields.Str(required=True, validate=validate.Regexp(r"^\d{2}$"))
    HPHM = _text(16, required=True)
    CLSBDH = fields.Str(required=True, validate=validate.Length(equal=17))
    SYR = _text(100, required=True)
    SFZMHM = fields.Str(required=True, validate=validate.Length(equal=18))
    ZT = fields.Str(required=True, validate=validate.OneOf(VEHICLE_STATES))
    DYBJ = fields.Str(required=True, validate=validate.OneOf(["0", "1"]))
    CCDJRQ = fields.Str(required=True, validate=validate.Regexp(r"^\d{4}-\d{2}-\d{2}$"))


class WhereaboutsSchema(Schema):
    LX = fields.Str(required=True, validate=validate.OneOf(["hotel", "rail", "flight"]))
    DD = _text(200, required=True)
    SJ = _time(required=True)


class AnswerDataSchema(Schema):
    HJ = fields.Nested(HouseholdSchema, allow_none=True)
    CL = fields.List(fields.Nested(VehicleSchema))
    XZ = fields.List(fields.Nested(WhereaboutsSchema))


class AnswerSchema(Schema):
    Head = fields.Nested(AnswerHeadSchema, required=True)
    Data = fields.Nested(AnswerDataSchema, required=True)


# --- Controls (POST {endpoint}/controls): vehicle seal and release, watch -----

# Our actions and the agency's control kinds (KZLX) for them.
CONTROL_KINDS = {"seal": "CF", "release": "JF", "watch": "BK"}
# ZXJG: what the bureau did with one vehicle.
CONTROL_RESULTS = {"1": "done", "2": "queued behind earlier seals", "3": "not done (YY says why)"}
MAX_VEHICLES_PER_CONTROL = 50


class ControlVehicleSchema(Schema):
    HPHM = _text(16, required=True)
    JZRQ = fields.Date(format="iso")  # seal: end of the term asked
    YCFBH = _text(64)  # release: the seal released (its CFBH)


class ControlSchema(Schema):
    KZLX = fields.Str(required=True, validate=validate.OneOf(CONTROL_KINDS.values()))
    XM = _text(100, required=True)
    ZJZL = fields.Str(required=True, validate=validate.OneOf(ID_TYPES.values()))
    ZJHM = fields.Str(required=True, validate=validate.Length(equal=18))
    CL = fields.List(fields.Nested(ControlVehicleSchema), validate=validate.Length(min=1, max=MAX_VEHICLES_PER_CONTROL))
    BKJZRQ = fields.Date(format="iso")  # watch: until when (the bureau's default when absent)

    @validates_schema
    def _lines_fit_the_kind(self, data: dict[str, Any], **kwargs: Any) -> None:
        kind = data.get("KZLX")
        if kind == "BK":
            if "CL" in data:
                raise ValidationError("not allowed for a watch", field_name="CL")
            return
        if "BKJZRQ" in data:
            raise ValidationError("only for a watch", field_name="BKJZRQ")
        if kind not in ("CF", "JF"):
            return
        if "CL" not in data:
            raise ValidationError(f"required for KZLX {kind}", field_name="CL")
        needed, refused = ("JZRQ", "YCFBH") if kind == "CF" else ("YCFBH", "JZRQ")
        what = "a seal" if kind == "CF" else "a release"
        problems: dict = {}
        plates: set[str] = set()
        for index, line in enumerate(data["CL"]):
            if needed not in line:
                problems.setdefault(index, {})[needed] = [f"required for {what}"]
            if refused in line:
                problems.setdefault(index, {})[refused] = [f"not allowed for {what}"]
            if line.get("HPHM") in plates:
                problems.setdefault(index, {})["HPHM"] = [f"{line['HPHM']!r} is listed twice"]
            plates.add(line.get("HPHM"))
        if problems:
            raise ValidationError({"CL": problems})


class ControlRequestSchema(Schema):
    Head = fields.Nested(InquiryHeadSchema, required=True)
    Control = fields.Nested(ControlSchema, required=True)

    @validates_schema
    def _control_has_a_legal_basis(self, data, **kwargs):
        require_legal_basis(data)


class AheadSchema(Schema):
    CFFY = _text(32, required=True)  # the court holding the earlier seal
    WSH = _text(64, required=True)
    JZRQ = fields.Date(format="iso", required=True)


class VehicleControlResultSchema(Schema):
    HPHM = _text(16, required=True)
    ZXJG = fields.Str(required=True, validate=validate.OneOf(CONTROL_RESULTS))
    CFBH = _text(64)  # the seal's reference at the bureau
    ZT = fields.Str(validate=validate.OneOf(VEHICLE_STATES))  # the vehicle's state after the control
    QSRQ = fields.Date(format="iso")
    JZRQ = fields.Date(format="iso")
    JFRQ = fields.Date(format="iso")
    LHXH = fields.Int(strict=True, validate=validate.Range(min=1))  # place in the queue
    QX = fields.List(fields.Nested(AheadSchema))
    YY = _text(500)

    @validates_schema
    def _result_carries_what_it_means(self, data, **kwargs):
        result = data.get("ZXJG")
        if result in ("1", "2") and "CFBH" not in data:
            raise ValidationError(f"required when ZXJG is {result}", field_name="CFBH")
        if result == "2" and ("LHXH" not in data or not data.get("QX")):
            raise ValidationError("a queued seal needs its place LHXH and the seals ahead QX", field_name="LHXH")
        if result == "3" and "YY" not in data:
            raise ValidationError("required when ZXJG is 3 (not done)", field_name="YY")


class WatchResultSchema(Schema):
    BKBH = _text(64, required=True)  # the watch's reference
    QSRQ = fields.Date(format="iso", required=True)
    JZRQ = fields.Date(format="iso", required=True)


class ControlAnswerDataSchema(Schema):
    CL = fields.List(fields.Nested(VehicleControlResultSchema))
    BK = fields.Nested(WatchResultSchema)

    @validates_schema
    def _one_kind_of_result(self, data, **kwargs):
        if ("CL" in data) == ("BK" in data):
            raise ValidationError("holds either CL (seal, release) or BK (watch)", field_name="_schema")


class ControlAnswerSchema(Schema):
    Head = fields.Nested(AnswerHeadSchema, required=True)
    Data = fields.Nested(ControlAnswerDataSchema, required=True)
