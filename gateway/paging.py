"""Opaque page cursors for the API's lists (audit events, requests): what the last row
of a page was, as text a caller hands back unchanged. A prefix names the list, so a
cursor of one list is refused by another."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

from sqlalchemy import ColumnElement, and_, or_
from sqlalchemy.orm import QueryableAttribute

from gateway.errors import InvalidInput
from gateway.timeutil import as_utc


def encode_cursor(prefix: str, position: str) -> str:
    return base64.urlsafe_b64encode(f"{prefix}{position}".encode()).decode().rstrip("=")


def decode_cursor(prefix: str, cursor: str) -> str:
    """The position a cursor names; InvalidInput naming ``cursor`` for text this API did
    not return. A caller that cannot read the position raises ``refuse_cursor()`` too."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise refuse_cursor() from None
    if not text.startswith(prefix):
        raise refuse_cursor()
    return text[len(prefix):]


def refuse_cursor() -> InvalidInput:
    return InvalidInput("cursor: not a cursor this API returned", fields={"cursor": ["use next_cursor as given"]})


def encode_newest_first(prefix: str, created_at: datetime, row_id: str) -> str:
    """The cursor of a list that goes newest first by (created_at, id): a row added
    meanwhile never shifts a page already read."""
    return encode_cursor(prefix, f"{as_utc(created_at).isoformat()}|{row_id}")


def decode_newest_first(prefix: str, cursor: str) -> tuple[datetime, str]:
    """(created_at, id) of the last row of the previous page."""
    try:
        moment, row_id = decode_cursor(prefix, cursor).split("|", 1)
        return as_utc(datetime.fromisoformat(moment)), row_id
    except ValueError:
        raise refuse_cursor() from None


def older_than(prefix: str, cursor: str, created_at: QueryableAttribute[datetime],
               row_id: QueryableAttribute[str]) -> ColumnElement[bool]:
    """The WHERE clause of the page after ``cursor`` in a (created_at, id) newest-first list."""
    moment, last_id = decode_newest_first(prefix, cursor)
    return or_(created_at < moment, and_(created_at == moment, row_id < last_id))
