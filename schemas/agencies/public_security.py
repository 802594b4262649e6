"""Public security REST format, v1: see docs/agencies/public-security.md.

Field codes are the police-side ones seen in the field (GMSFHM, HPZL, HPHM,
CLSBDH, SYR, ZT); the envelope is the shape shared by all agencies (Head + Data).
"""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

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
RFC3339_UTC = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$"


def _text(max_length: int, **kwargs) -> fields.Str:
    return fields.Str(validate=validate.Length(min=1, max=max_length), **kwargs)


def _time(**kwargs) -> fields.Str:
    return fields.Str(validate=validate.Regexp(RFC3339_UTC, error="must be RFC 3339 UTC ending in Z"), **kwargs)


class InquiryHeadSchema(Schema):
    XXID = _text(64, required=True)
    CJSJ = _time(required=True)
    FYDM = _text(32, required=True)
    CBR = _text(64, required=True)
    AH = _text(64, required=True)
    WSLX = _text(32)
    WSH = _text(64)

    @validates_schema
    def _basis_both_or_neither(self, data, **kwargs):
        if ("WSLX" in data) != ("WSH" in data):
            raise ValidationError("WSLX and WSH go together: both or neither", field_name="WSH")


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


class AnswerHeadSchema(Schema):
    XXID = _text(64, required=True)
    QQSHA256 = fields.Str(required=True, validate=validate.Regexp(r"^[0-9a-f]{64}$", error="must be 64 lower-case hex digits"))
    RESPONSECODE = fields.Str(required=True, validate=validate.Regexp(r"^\d{4}$"))
    RESPONSEINFO = fields.Str(required=True)
    FKSJ = _time(required=True)


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


class ErrorHeadSchema(Schema):
    XXID = fields.Str()
    RESPONSECODE = fields.Str(required=True)
    RESPONSEINFO = fields.Str(required=True)
    QQSHA256 = fields.Str()
    FKSJ = fields.Str()


class ErrorAnswerSchema(Schema):
    Head = fields.Nested(ErrorHeadSchema, required=True)
