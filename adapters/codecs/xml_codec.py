"""What every XML agency codec shares: hardened parsing, XSD checks both ways, and
binding an answer to the request it answers (as json_codec does for JSON).

The XML rules themselves (no DOCTYPE, no entities, no network, XSDs compiled once
per thread) live in ``schemas.xml``; this module turns their errors into adapter
errors: an outgoing message that breaks its XSD is never sent, an incoming one is
quarantined with the first problem and its line.
"""

from __future__ import annotations

from lxml import etree

from adapters.errors import IncomingInvalid, OutgoingInvalid
from schemas import xml

XML_MEDIA_TYPE = "application/xml; charset=utf-8"


def dump_checked(element: etree._Element, schema_name: str, what: str) -> bytes:
    """Validate an outgoing message, then serialise it. Raises OutgoingInvalid."""
    try:
        xml.validate(element, schema_name)
    except xml.XmlInvalid as exc:
        raise OutgoingInvalid(f"{what} {exc}") from None
    return xml.serialize(element)


def load_checked(raw: bytes, schema_name: str, what: str = "answer") -> etree._Element:
    """Parse and validate incoming bytes. Raises IncomingInvalid with the raw bytes kept."""
    try:
        return xml.parse_valid(raw, schema_name)
    except xml.XmlRefused as exc:
        raise IncomingInvalid(f"{what} refused: {exc}", raw=raw) from None
    except xml.XmlInvalid as exc:
        raise IncomingInvalid(f"{what} {exc}", raw=raw) from None
