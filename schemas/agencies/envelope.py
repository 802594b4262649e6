"""The envelope every JSON agency shares (AGENCY-FORMATS.md, "Shape shared by all
agencies"): a request ``Head`` naming the message, the court, the officer, the
case and the legal basis; an answer ``Head`` echoing the message id and the
SHA-256 of the exact request bytes, with ``RESPONSECODE``/``RESPONSEINFO``."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

RFC3339_UTC = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$"


def text(max_length: int, **kwargs) -> fields.Str:
    return fields.Str(validate=validate.Length(min=1, max=max_length), **kwargs)


def utc_time(**kwargs) -> fields.Str:
    return fields.Str(validate=validate.Regexp(RFC3339_UTC, error="must be RFC 3339 UTC ending in Z"), **kwargs)


class RequestHeadSchema(Schema):
    XXID = text(64, required=True)  # message id: the delivery id, the same on every attempt
    CJSJ = utc_time(required=True)  # created
    FYDM = text(32, required=True)  # court
    CBR = text(64, required=True)  # officer
    AH = text(64, required=True)  # case number
    WSLX = text(32)  # legal basis: document kind
    WSH = text(64)  # legal basis: document number

    @validates_schema
    def _basis_both_or_neither(self, data, **kwargs):
        if ("WSLX" in data) != ("WSH" in data):
            raise ValidationError("WSLX and WSH go together: both or neither", field_name="WSH")


def require_legal_basis(data: dict) -> None:
    """Controls need a legal basis: call from a request schema's ``validates_schema``."""
    if "Head" in data and "WSH" not in data["Head"]:
        raise ValidationError({"Head": {"WSH": ["required for a control: the legal basis (WSLX and WSH)"]}})


class AnswerHeadSchema(Schema):
    XXID = text(64, required=True)
    QQSHA256 = fields.Str(required=True, validate=validate.Regexp(r"^[0-9a-f]{64}$", error="must be 64 lower-case hex digits"))
    RESPONSECODE = fields.Str(required=True, validate=validate.Regexp(r"^\d{4}$"))
    RESPONSEINFO = fields.Str(required=True)
    FKSJ = utc_time(required=True)


class ErrorHeadSchema(Schema):
    XXID = fields.Str()
    RESPONSECODE = fields.Str(required=True)
    RESPONSEINFO = fields.Str(required=True)
    QQSHA256 = fields.Str()
    FKSJ = fields.Str()


class ErrorAnswerSchema(Schema):
    """Reads the ``Head`` of any answer (load with ``unknown=EXCLUDE``)."""

    Head = fields.Nested(ErrorHeadSchema, required=True)
