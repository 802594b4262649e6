"""Reading and writing agency XML safely, and checking it against the agency's XSD.

Every XML byte from outside goes through ``parse`` here: the parser refuses any
DOCTYPE (so no DTD, no entity, no billion laughs is ever expanded), never touches
the network and refuses huge trees. XSDs live in ``schemas/xsd/`` (namespaced,
versioned in the file name) and are compiled once per thread, because lxml
schemas and parsers keep a shared ``error_log`` and are not safe across threads.

Both sides use this module: the gateway's codecs and the agency sandboxes.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

XSD_DIR = Path(__file__).parent / "xsd"
WSDL_DIR = Path(__file__).parent / "wsdl"

_local = threading.local()
# libxml2 (2.14 here) compiling XSDs in several threads at once corrupts its tables of
# built-in types: a worker's delivery threads decoding their first bank answers together
# failed with "Document is not valid XML Schema" and "the given type is not a built-in
# type" (tests/unit/schemas/test_xml_threads.py reproduces it). One compile at a time,
# and the first one now, at import, before any thread can race it. A fork waits for a
# compile in progress (as ``logging`` does with its lock): `gateway serve
# --with-sandboxes` forks gunicorn workers while the sandboxes' threads validate, and
# a child that inherited the lock held would wait for it for ever.
_COMPILING = threading.Lock()
os.register_at_fork(before=_COMPILING.acquire, after_in_parent=_COMPILING.release,
                    after_in_child=_COMPILING.release)
with _COMPILING:
    etree.XMLSchema(etree.XML(b'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">'
                              b'<xs:element name="a" type="xs:string"/></xs:schema>'))


class XmlRefused(ValueError):
    """The bytes are not XML we accept (malformed, DOCTYPE, too big)."""


@dataclass(frozen=True)
class XmlProblem:
    """One schema violation: what broke and the line it is on."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class XmlInvalid(ValueError):
    """Well-formed XML that breaks its XSD."""

    def __init__(self, schema_name: str, problems: list[XmlProblem]):
        self.schema_name = schema_name
        self.problems = problems
        first = problems[0] if problems else XmlProblem(0, "invalid")
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"breaks {schema_name}: {first}{more}")

    @property
    def line(self) -> int:
        return self.problems[0].line if self.problems else 0


def hardened_parser() -> etree.XMLParser:
    """This thread's parser: no entities, no DTD, no network, no huge trees."""
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
            huge_tree=False, remove_blank_text=True,
        )
        _local.parser = parser
    return parser


def parse(raw: bytes) -> etree._Element:
    """Parse bytes from outside. Raises XmlRefused for a DOCTYPE or malformed XML."""
    if not isinstance(raw, (bytes, bytearray)):
        raise XmlRefused("XML must be bytes")
    # Refuse a DOCTYPE before the parser sees it: an internal subset is where
    # entity bombs and external entities live, and no agency message needs one.
    head = bytes(raw[:4096]).lower()
    if b"<!doctype" in head or b"<!entity" in head:
        raise XmlRefused("XML with a DOCTYPE or ENTITY declaration is refused")
    try:
        root = etree.fromstring(bytes(raw), hardened_parser())
    except etree.XMLSyntaxError as exc:
        raise XmlRefused(f"malformed XML: {exc}") from None
    if root.getroottree().docinfo.doctype:
        raise XmlRefused("XML with a DOCTYPE is refused")
    return root


def xsd(name: str) -> etree.XMLSchema:
    """The compiled XSD ``schemas/xsd/<name>.xsd`` for this thread."""
    cache = getattr(_local, "schemas", None)
    if cache is None:
        cache = _local.schemas = {}
    schema = cache.get(name)
    if schema is None:
        path = XSD_DIR / f"{name}.xsd"
        # Our own files, but parsed with the same hardened parser: an XSD may import
        # sibling XSDs by relative path, never anything from the network.
        doc = etree.parse(str(path), etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False))
        with _COMPILING:
            schema = cache[name] = etree.XMLSchema(doc)
    return schema


def validate(element: etree._Element, schema_name: str) -> None:
    """Raise XmlInvalid naming each problem and its line."""
    schema = xsd(schema_name)
    if not schema.validate(element):
        problems = [XmlProblem(e.line, e.message) for e in schema.error_log]
        raise XmlInvalid(schema_name, problems)


def parse_valid(raw: bytes, schema_name: str) -> etree._Element:
    """Parse bytes from outside and check them against an XSD."""
    root = parse(raw)
    validate(root, schema_name)
    return root


def serialize(element: etree._Element) -> bytes:
    """Bytes for sending: UTF-8 without a declaration (UTF-8 is XML's default) and
    without pretty printing, so a message is one line and can travel as one record
    of a batch file."""
    return etree.tostring(element, encoding="UTF-8")


def digest(element: etree._Element) -> str:
    """SHA-256 of a message's exclusive canonical form (Exclusive XML C14N 1.0).

    Binds an XML answer to its request: the agency hashes the request element as
    it received it (inside a SOAP body or on a batch-file line) and the gateway
    hashes the element it sent; exclusive C14N makes both the same bytes whatever
    namespaces the carrier wrapped around the element.
    """
    return hashlib.sha256(etree.tostring(element, method="c14n", exclusive=True, with_comments=False)).hexdigest()
