"""What the gateway hands an adapter and gets back.

An adapter is a transport (how bytes reach an agency) paired with a codec (what
the bytes say). The gateway pairs them from the agency registry; neither knows
the other:

    order ──codec.encode──▶ Envelope ──transport.send──▶ Reply ──codec.decode──▶ AgencyAnswer

A transport knows nothing of agencies; a codec nothing of sockets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Protocol, Sequence


@dataclass(frozen=True)
class SubjectRef:
    kind: str  # "person" | "organization"
    name: str
    id_number: str


@dataclass(frozen=True)
class ControlLine:
    """One asset a control acts on, named as the agency knows it."""

    identifier: str  # account number, 28-character unit number, plate, company USCC
    amount: Decimal | None = None  # money to freeze or deduct on this asset; None: the whole asset
    until: date | None = None  # end of the term asked (freeze, seal, renew)
    original_reference: str | None = None  # the agency's reference of the control renewed or released


@dataclass(frozen=True)
class DeliveryOrder:
    """One request as addressed to one agency: everything a codec may put on the wire.

    ``message_id`` is the delivery id, the same on every attempt, so that the
    agency can discard duplicates.
    """

    message_id: str
    action: str
    categories: tuple[str, ...]
    subject: SubjectRef
    case_number: str
    court_code: str
    officer: str
    legal_basis_kind: str | None = None
    legal_basis_number: str | None = None
    amount: Decimal | None = None
    targets: tuple[str, ...] = ()
    # Controls: one line per asset, as the agency names it (the gateway resolves the
    # officer's asset ids and spreads amounts before a codec sees the order).
    lines: tuple[ControlLine, ...] = ()
    court_account: str | None = None  # the court's receiving account, for deducts
    # The court's calendar date when the order is written (Beijing, not UTC): a
    # freeze's start date on the wire. The gateway sets it; codecs never read a clock.
    court_date: date | None = None


@dataclass(frozen=True)
class Envelope:
    """Bytes ready for a transport. ``operation`` is a name the transport maps to
    its own addressing (a URL path for REST, a SOAP operation, a batch file kind)."""

    message_id: str
    operation: str
    body: bytes
    media_type: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    """What came back. ``status`` follows HTTP's meaning whatever the transport."""

    status: int
    body: bytes
    media_type: str = ""


@dataclass(frozen=True)
class AgencyAnswer:
    """A decoded, validated answer bound to the request it answers.

    Each asset is a dict that ``schemas.canonical.AssetRecordSchema`` loads; each
    control outcome (answers to freeze, seal, ...) one that
    ``schemas.canonical.ControlOutcomeSchema`` loads.
    """

    message_id: str
    request_sha256: str
    answered_at: str
    assets: list[dict[str, Any]]
    raw: bytes = b""
    controls: list[dict[str, Any]] = field(default_factory=list)  # the answer's bytes as received, for its digest in the audit log


class Transport(Protocol):
    def send(self, envelope: Envelope) -> Reply:
        """Deliver one envelope and return the agency's reply.

        Raises adapters.errors.TransportError (retryable) when the exchange did not
        complete; any reply that did arrive is returned whatever its status.
        """

    def close(self) -> None: ...


@dataclass(frozen=True)
class BatchRecord:
    """One message on one line of a batch file, with the message id it carries or answers."""

    message_id: str
    body: bytes


@dataclass(frozen=True)
class InboundBatch:
    """A result file an agency left for us.

    ``problem`` is set when the file is corrupt or partial (checksum or record
    count mismatch, a line that is not a record): then ``records`` is empty and
    none of it may be applied; ``settle`` moves it to quarantine.
    """

    name: str
    records: tuple[BatchRecord, ...]
    sha256: str
    problem: str | None = None
    raw: bytes = b""


class BatchTransport(Protocol):
    """A file drop (SFTP): requests leave as batch files, answers come back later as
    result files. Knows files, lines and checksums; nothing of agencies.

    The file format (docs/agencies/sftp-batch.md): one record per line,
    ``<message id> TAB <body>``, and beside each data file a control file holding
    its record count and SHA-256, written last, so a reader can tell a complete
    file from one still being written.
    """

    def send_batch(self, operation: str, records: Sequence[BatchRecord]) -> str:
        """Upload one batch file (temporary name, then renamed); return its name."""

    def receive(self, limit: int = 100) -> list[InboundBatch]:
        """Complete result files waiting, each checked against its control file."""

    def settle(self, batch: InboundBatch) -> None:
        """Move a result file out of the way: to done/, or to quarantine/ if it had a problem."""

    def missing(self, names: Sequence[str]) -> list[str]:
        """Of these request files sent earlier, those the agency neither has waiting
        nor has answered: lost at the agency, to be sent again."""

    def close(self) -> None: ...


class Codec(Protocol):
    kind: str
    # Which asset categories each action applies to at this kind of agency, e.g.
    # {"inquiry": ("deposit", "wealth_product"), "freeze": ("deposit",)}.
    action_categories: dict[str, tuple[str, ...]]
    categories: tuple[str, ...]  # every category in action_categories
    actions: tuple[str, ...]  # every action in action_categories
    transports: tuple[str, ...]  # transports this codec's messages can travel over

    def encode(self, order: DeliveryOrder) -> Envelope:
        """Raises OutgoingInvalid if the message would break the agency's schema."""

    def decode(self, reply: Reply, envelope: Envelope) -> AgencyAnswer:
        """Raises AgencyUnavailable, AgencyRefused, IncomingInvalid or AnswerNotBound."""
