"""Field types shared by the canonical model and the agencies' formats."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import timezone
from decimal import Decimal
from typing import Any

from marshmallow import ValidationError, fields

_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_MONEY = re.compile(r"^(0|[1-9]\d{0,15})\.\d{2}$")
MONEY_PATTERN = _MONEY  # the rule Money checks, also applied by schemas.canonical.load_asset_record


class Money(fields.Field):
    """Yuan as a decimal string with exactly two places ("150000.00").

    A string, not a JSON number, so that no float ever touches an amount.
    """

    default_error_messages = {"invalid": 'must be a decimal string in yuan with two places, such as "150000.00"'}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Decimal:
        if not isinstance(value, str) or not _MONEY.match(value):
            raise self.make_error("invalid")
        return Decimal(value)

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        if value is None:
            return None
        return f"{Decimal(value).quantize(Decimal('0.01'))}"


def money_text(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01'))}"


class UtcDateTime(fields.DateTime):
    """RFC 3339 in UTC with a trailing Z; a naive value (SQLite) is taken as UTC."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        if value is None or isinstance(value, str):  # already rendered (a stored reply)
            return value
        value = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
        return value.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def unique_items(values: list[Any]) -> None:
    seen = set()
    for value in values:
        if value in seen:
            raise ValidationError(f"{value!r} is listed twice")
        seen.add(value)


class Base64Bytes(fields.Field):
    """A file sent inline in JSON: standard base64 (RFC 4648, padded), decoded to bytes."""

    default_error_messages = {"invalid": "must be a base64 string (RFC 4648, with padding)",
                              "empty": "must not be empty"}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bytes:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        try:
            content = base64.b64decode(value.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise self.make_error("invalid") from None
        if not content:
            raise self.make_error("empty")
        return content

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else base64.b64encode(value).decode("ascii")


class Sha256Hex(fields.Str):
    """A SHA-256 as 64 hex digits, kept lowercase (the name a stored file goes by)."""

    default_error_messages = {"sha256": "must be 64 hex digits (a SHA-256)"}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if not _SHA256.match(text):
            raise self.make_error("sha256")
        return text.lower()
