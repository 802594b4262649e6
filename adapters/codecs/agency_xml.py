"""The message head the bank and tax XML formats share, and the rules that bind
an answer to its request (docs/agencies/bank.md, "Head").

A request is ``<XxxRequest><Head>…</Head><Data>…</Data></XxxRequest>`` in the
agency's namespace; an answer ``<XxxAnswer><Head>…</Head><Data>…</Data></XxxAnswer>``
whose Head echoes the key ``BDHM`` (the message id, the same on every attempt)
and ``QQSHA256``, the digest (``schemas.xml.digest``) of the request element as
the agency received it, so the answer is provably the answer to that request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Iterable

from lxml import etree

from adapters.codecs.xml_codec import load_checked
from adapters.errors import (
    AgencyRefused,
    AgencyUnavailable,
    AnswerNotBound,
    IncomingInvalid,
    OutgoingInvalid,
)
from adapters.interfaces import DeliveryOrder, Envelope, Reply
from schemas import xml

CODE_ANSWERED = "0000"
# "Try later" (1000) and a fault inside the agency (2040) may pass; anything else
# (bad credentials 2000, a request outside the format 3000, review failed 3010) will not.
RETRYABLE_CODES = frozenset({"1000", "2040"})
ID_TYPES = {"person": "1", "organization": "8"}


class MessageWriter:
    """Builds elements in one agency namespace (as the default namespace, so a
    message is short and has no prefixes)."""

    def __init__(self, namespace: str):
        self.namespace = namespace

    def root(self, name: str) -> etree._Element:
        return etree.Element(self.tag(name), nsmap={None: self.namespace})

    def tag(self, name: str) -> str:
        return f"{{{self.namespace}}}{name}"

    def child(self, parent: etree._Element, name: str, value: str | None = None) -> etree._Element:
        element = etree.SubElement(parent, self.tag(name))
        if value is not None:
            element.text = value
        return element

    def optional(self, parent: etree._Element, name: str, value: str | None) -> None:
        if value is not None:
            self.child(parent, name, value)

    def request_head(self, parent: etree._Element, order: DeliveryOrder, kind: str) -> None:
        head = self.child(parent, "Head")
        self.child(head, "BDHM", order.message_id)
        self.child(head, "XZ", kind)
        self.child(head, "CJSJ", datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
        self.child(head, "FYDM", order.court_code)
        self.child(head, "CBR", order.officer)
        self.child(head, "AH", order.case_number)
        if order.legal_basis_kind and order.legal_basis_number:
            self.child(head, "WSLX", order.legal_basis_kind)
            self.child(head, "WSH", order.legal_basis_number)

    def debtor(self, data: etree._Element, order: DeliveryOrder) -> None:
        id_type = ID_TYPES.get(order.subject.kind)
        if id_type is None:
            raise OutgoingInvalid(f"subject.kind must be person or organization, got {order.subject.kind!r}")
        self.child(data, "XM", order.subject.name)
        self.child(data, "ZJLX", id_type)
        self.child(data, "DSRZJHM", order.subject.id_number)


def money_text(amount: Decimal) -> str:
    return f"{amount.quantize(Decimal('0.01')):f}"


def date_text(day: date) -> str:
    return day.isoformat()


@dataclass(frozen=True)
class AnswerHead:
    message_id: str
    request_sha256: str
    kind: str
    answered_at: str


class MessageReader:
    """Reads elements of one agency namespace by local name."""

    def __init__(self, namespace: str):
        self.namespace = namespace
        self._prefix = f"{{{namespace}}}"

    def tag(self, name: str) -> str:
        return f"{{{self.namespace}}}{name}"

    def text(self, parent: etree._Element | None, name: str) -> str | None:
        element = None if parent is None else parent.find(self.tag(name))
        return element.text if element is not None else None

    def texts(self, parent: etree._Element) -> dict[str, str | None]:
        """The text of each child of ``parent`` in this namespace, by local name (the
        first of a name, as ``text`` finds it): one pass over the children instead of
        one ``find`` per field, which was most of decoding an answer."""
        prefix, cut = self._prefix, len(self._prefix)
        found: dict[str, str | None] = {}
        for child in parent:
            tag = child.tag
            if type(tag) is str and tag.startswith(prefix):  # comments and PIs have no str tag
                found.setdefault(tag[cut:], child.text)
        return found

    def all(self, parent: etree._Element | None, name: str) -> list[etree._Element]:
        return [] if parent is None else parent.findall(self.tag(name))

    def read_answer(
        self, reply: Reply, envelope: Envelope, schema_name: str, answer_for: dict[str, str]
    ) -> tuple[etree._Element, etree._Element, AnswerHead]:
        """Validate an answer, bind it to ``envelope`` and turn error codes into errors.

        ``answer_for`` maps each request element's local name to its answer's.
        Returns (answer root, request root, head) for a ``0000`` answer.
        """
        if not 200 <= reply.status < 300:
            if reply.status >= 500 or reply.status in (408, 429):
                raise AgencyUnavailable(f"agency answered status {reply.status}")
            raise AgencyRefused(f"agency refused the message with status {reply.status}")
        root = load_checked(reply.body, schema_name)
        request = xml.parse(envelope.body)  # our own message, checked when it was made
        request_name = etree.QName(request).localname
        expected = answer_for[request_name]
        if etree.QName(root) != etree.QName(self.namespace, expected):
            raise IncomingInvalid(
                f"answer is a {etree.QName(root).localname} but the request was a {request_name} (expected {expected})",
                raw=reply.body,
            )
        head = root.find(self.tag("Head"))
        request_head = request.find(self.tag("Head"))
        fields = {} if head is None else self.texts(head)  # one pass over the Head, not a find per field
        message_id, request_sha256 = fields.get("BDHM"), fields.get("QQSHA256")
        code, info = fields.get("RESPONSECODE"), fields.get("RESPONSEINFO")
        # A key or digest that is there must be ours, even on an error answer: an
        # answer meant for another request must never settle this one.
        if message_id is not None and message_id != envelope.message_id:
            raise AnswerNotBound(f"answer is for message {message_id!r}, not {envelope.message_id!r}", raw=reply.body)
        if request_sha256 is not None and request_sha256 != xml.digest(request):
            raise AnswerNotBound("answer's QQSHA256 does not match the digest of the request sent", raw=reply.body)
        if code in RETRYABLE_CODES:
            raise AgencyUnavailable(f"agency could not answer now: code {code}: {info}")
        if code != CODE_ANSWERED:
            raise AgencyRefused(f"agency refused: code {code}: {info}")
        if message_id is None or request_sha256 is None:
            missing = "BDHM" if message_id is None else "QQSHA256"
            raise AnswerNotBound(f"answer does not name its request: Head.{missing} is missing", raw=reply.body)
        kind, asked_kind = fields.get("XZ"), self.text(request_head, "XZ")
        if kind != asked_kind:
            raise IncomingInvalid(f"answer Head.XZ is {kind} but the request's is {asked_kind}", raw=reply.body)
        return root, request, AnswerHead(message_id, request_sha256, kind or "", fields.get("FKSJ") or "")


def check_only_asked(answered: Iterable[str], asked: Iterable[str | None], what: str, raw: bytes) -> None:
    """An answer may carry only what the request asked for."""
    extra = sorted(set(answered) - set(asked))
    if extra:
        raise IncomingInvalid(f"answer carries {what} {extra} that the request did not ask for", raw=raw)
