"""Storing files by content, the documents a request carries, officers' credentials.

A file is checked before it is stored: its first bytes must be those of the type
it was declared as (``%PDF-``, the JPEG and PNG signatures) and it must fit
``[documents] max_bytes``. It is stored once, by SHA-256, however often it is
sent; its MD5 is kept for agencies that check documents by it.

Intake (gateway/requests/services.py) runs on a Core connection and calls
``resolve_documents``, ``require_credentials`` and ``write_documents``; the pull
service reads what agencies fetch with ``documents_of`` and ``credentials_of``.
Functions take a session or connection, may write, and never commit.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, defer, joinedload

from audit.store import AuditLog
from gateway.attachments.models import Document, OfficerCredential, RequestDocument
from gateway.cases.models import Case
from gateway.db import rows_matched
from gateway.auth.tokens import Principal
from gateway.errors import InvalidInput, NotFound, RuleViolation, TooLarge
from gateway.requests.models import Request
from schemas.canonical import CARD_IMAGE_TYPES, LEGAL_DOCUMENT_TYPE

DEFAULT_MAX_BYTES = 5 * 1024 * 1024
# What a file of each type starts with; a file is stored only as the type its bytes show.
SIGNATURES = {
    "application/pdf": b"%PDF-",
    "image/jpeg": b"\xff\xd8\xff",
    "image/png": b"\x89PNG\r\n\x1a\n",
}
CREDENTIALS_PATH = "/api/v1/officers/me/credentials"
_DOCUMENT_COLUMNS = (Document.sha256, Document.md5, Document.media_type, Document.size_bytes)


@dataclass(frozen=True)
class Upload:
    """A file checked against its declared type and size, with its digests."""

    content: bytes
    media_type: str
    sha256: str
    md5: str

    @property
    def size_bytes(self) -> int:
        return len(self.content)

    def view(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "md5": self.md5, "size_bytes": self.size_bytes, "media_type": self.media_type}


def check_upload(content: bytes, media_type: str, *, field: str, max_bytes: int) -> Upload:
    """The file as an ``Upload``. Raises TooLarge, or InvalidInput naming ``field`` when
    the type is not one stored or the bytes are not of that type."""
    signature = SIGNATURES.get(media_type)
    if signature is None:
        raise InvalidInput(f"{media_type or 'no type'} is not stored", fields={
            field: [f"must be one of: {', '.join(SIGNATURES)}"]})
    if len(content) > max_bytes:
        raise TooLarge(f"the file is {len(content)} bytes; at most {max_bytes} are stored",
                       fields={field: [f"at most {max_bytes} bytes"]})
    if not content.startswith(signature):
        raise InvalidInput(f"the file is not a {media_type} file", fields={
            field: [f"is not {media_type}: a {media_type} file starts with {signature[:5]!r}"]})
    return Upload(content, media_type, hashlib.sha256(content).hexdigest(), hashlib.md5(content).hexdigest())


def _document_row(upload: Upload, uploaded_by: str, court_code: str | None, now: datetime) -> dict[str, Any]:
    return {**upload.view(), "content": upload.content, "uploaded_by": uploaded_by, "court_code": court_code,
            "uploaded_at": now}


def _insert_new(bind: Session | Connection) -> Any:
    """INSERT of documents that does nothing for one stored already: two callers storing
    the same bytes at once both succeed."""
    dialect = (bind.get_bind() if isinstance(bind, Session) else bind).dialect.name
    dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return dialect_insert(Document.__table__).on_conflict_do_nothing(index_elements=["sha256"])


def store_upload(bind: Session | Connection, upload: Upload, *, uploaded_by: str, court_code: str | None,
                 now: datetime) -> bool:
    """Store the file unless the same bytes are stored already; True when this call stored it."""
    # RETURNING, not rowcount: psycopg reports -1 for an INSERT ... ON CONFLICT DO NOTHING.
    stored = bind.execute(_insert_new(bind).returning(Document.sha256),
                          _document_row(upload, uploaded_by, court_code, now)).first()
    return stored is not None


# --- the documents a request carries ----------------------------------------------------


@dataclass(frozen=True)
class AttachedDocument:
    position: int
    name: str
    sha256: str
    md5: str
    size_bytes: int
    upload: Upload | None = None  # sent inline: stored with the request

    def view(self) -> dict[str, Any]:
        return {"position": self.position, "name": self.name, "sha256": self.sha256, "md5": self.md5,
                "size_bytes": self.size_bytes}


def resolve_documents(bind: Session | Connection, documents: list[dict[str, Any]], *,
                      max_bytes: int) -> list[AttachedDocument]:
    """The request's documents in order: inline ones checked as PDFs, the others looked up
    (one query). Raises RuleViolation naming ``documents[i].sha256`` for an unknown or
    non-PDF upload, InvalidInput/TooLarge naming ``documents[i].content_base64``."""
    if not documents:
        return []
    named = {d["sha256"] for d in documents if "sha256" in d}
    stored = {r.sha256: r for r in bind.execute(select(*_DOCUMENT_COLUMNS).where(Document.sha256.in_(named)))} \
        if named else {}
    attached: list[AttachedDocument] = []
    problems: dict[str, list[str]] = {}
    for i, document in enumerate(documents):
        position, name = i + 1, document["name"]
        if "content_base64" in document:
            upload = check_upload(document["content_base64"], LEGAL_DOCUMENT_TYPE,
                                  field=f"documents[{i}].content_base64", max_bytes=max_bytes)
            attached.append(AttachedDocument(position, name, upload.sha256, upload.md5, upload.size_bytes, upload))
            continue
        row = stored.get(document["sha256"])
        if row is None:
            problems[f"documents[{i}].sha256"] = ["no document with this SHA-256 was uploaded (POST /api/v1/documents)"]
        elif row.media_type != LEGAL_DOCUMENT_TYPE:
            problems[f"documents[{i}].sha256"] = [f"is {row.media_type}: a legal document is a PDF"]
        else:
            attached.append(AttachedDocument(position, name, row.sha256, row.md5, row.size_bytes))
    if problems:
        raise RuleViolation("the request names documents it cannot carry", fields=problems)
    return attached


def write_documents(bind: Session | Connection, request_id: str, attached: list[AttachedDocument], *,
                    uploaded_by: str, court_code: str | None, now: datetime) -> None:
    """Store the inline documents and link every document to the request, in order."""
    if not attached:
        return
    inline = {a.sha256: _document_row(a.upload, uploaded_by, court_code, now) for a in attached if a.upload}
    if inline:
        bind.execute(_insert_new(bind), list(inline.values()))
    bind.execute(insert(RequestDocument.__table__), [
        {"request_id": request_id, "position": a.position, "document_sha256": a.sha256, "name": a.name}
        for a in attached])


def copy_documents(bind: Session | Connection, from_request_id: str, to_request_id: str) -> None:
    """A control the gateway makes itself carries the documents of the request it carries out."""
    columns = RequestDocument.__table__.c
    bind.execute(insert(RequestDocument.__table__).from_select(
        ["request_id", "position", "document_sha256", "name"],
        select(literal(to_request_id), columns.position, columns.document_sha256, columns.name)
        .where(columns.request_id == from_request_id)))


def document_views(bind: Session | Connection, request_id: str) -> list[dict[str, Any]]:
    """What the request state shows of its documents (not their content)."""
    rows = bind.execute(
        select(RequestDocument.position, RequestDocument.name, Document.sha256, Document.md5, Document.size_bytes)
        .join(Document, Document.sha256 == RequestDocument.document_sha256)
        .where(RequestDocument.request_id == request_id).order_by(RequestDocument.position))
    return [dict(r._mapping) for r in rows]


def readable_document(session: Session, sha256: str, principal: Principal) -> tuple[Document, str]:
    """The document and the name a request of the caller's court gave it (or its digest).

    A court reads the documents its requests carry and the files it uploaded first;
    another court's file answers as no file at all (NotFound), so digests cannot be probed.
    """
    document = session.get(Document, sha256)
    if document is not None:
        carried = session.execute(
            select(RequestDocument.name).join(Request, Request.id == RequestDocument.request_id)
            .join(Case, Case.id == Request.case_id)  # the case's court: a moved case's documents go with it
            .where(RequestDocument.document_sha256 == sha256, Case.court_code == (principal.court or ""))
            .limit(1)).scalar()
        if carried is not None:
            return document, carried
        if document.court_code == principal.court:
            return document, sha256
    raise NotFound(f"no document {sha256} for court {principal.court}")


def documents_of(session: Session, request_id: str) -> list[RequestDocument]:
    """The request's documents in order (``XH``), each with its Document (content included)."""
    return list(session.scalars(
        select(RequestDocument).where(RequestDocument.request_id == request_id).order_by(RequestDocument.position)))


# --- officers' credentials -------------------------------------------------------------


def require_credentials(bind: Session | Connection, principal: Principal) -> None:
    """Raises RuleViolation naming ``officer`` unless the officer's credentials are on
    file for the court the officer acts for."""
    court = bind.scalar(select(OfficerCredential.court_code).where(OfficerCredential.officer_sub == principal.sub))
    if court is None:
        raise RuleViolation(f"officer {principal.sub} has no credentials on file", fields={"officer": [
            (f"a control needs its officer's work card and official-duty card on file: file them with "
             f"PUT {CREDENTIALS_PATH}")]})
    if court != principal.court:
        raise RuleViolation(f"officer {principal.sub}'s credentials are filed for court {court}", fields={"officer": [
            (f"credentials on file are for court {court}, not {principal.court}: file them again with "
             f"PUT {CREDENTIALS_PATH}")]})


def credentials_of(session: Session, request: Request) -> list[OfficerCredential]:
    """The credentials an agency is shown for a request: its proposer's, then its
    approver's, where filed. A control the gateway made itself shows those of the
    officers of the request it carries out."""
    people = [request.officer_sub, request.decided_by]
    if request.source_request_id:
        from gateway.requests.models import Request  # the request package imports this module

        source = session.execute(select(Request.officer_sub, Request.decided_by)
                                 .where(Request.id == request.source_request_id)).first()
        if source is not None:
            people = [source.officer_sub, request.decided_by, source.decided_by]
    subs = [s for s in dict.fromkeys(people) if s]
    filed = {c.officer_sub: c for c in session.scalars(
        select(OfficerCredential).where(OfficerCredential.officer_sub.in_(subs)))} if subs else {}
    return [filed[s] for s in subs if s in filed]


def _card_image(session: Session, image: dict[str, Any], field: str, principal: Principal, *, max_bytes: int,
                now: datetime) -> str:
    """The SHA-256 of a card image named or sent inline (stored now)."""
    if "content_base64" in image:
        upload = check_upload(image["content_base64"], image["media_type"], field=f"{field}.content_base64",
                              max_bytes=max_bytes)
        store_upload(session, upload, uploaded_by=principal.sub, court_code=principal.court, now=now)
        return upload.sha256
    media_type = session.scalar(select(Document.media_type).where(Document.sha256 == image["sha256"]))
    if media_type is None:
        raise RuleViolation("no such upload", fields={
            f"{field}.sha256": ["no image with this SHA-256 was uploaded (POST /api/v1/documents)"]})
    if media_type not in CARD_IMAGE_TYPES:
        raise RuleViolation("a card image is an image", fields={
            f"{field}.sha256": [f"is {media_type}: a card image is {' or '.join(CARD_IMAGE_TYPES)}"]})
    return image["sha256"]


def file_credentials(session: Session, payload: dict[str, Any], principal: Principal, *, audit: AuditLog,
                     max_bytes: int, now: datetime) -> bool:
    """File (or replace) the calling officer's credentials; True when they replace earlier ones."""
    images = {field: _card_image(session, payload[field], field, principal, max_bytes=max_bytes, now=now)
              for field in ("work_card_image", "duty_card_image")}
    values = {"court_code": principal.court or "", "name": payload["name"],
              "work_card_number": payload["work_card_number"], "duty_card_number": payload["duty_card_number"],
              "work_card_image_sha256": images["work_card_image"], "duty_card_image_sha256": images["duty_card_image"],
              "filed_by": principal.sub, "filed_at": now}
    table = OfficerCredential.__table__
    replaced = rows_matched(session.execute(update(table).where(table.c.officer_sub == principal.sub).values(values))) == 1
    if not replaced:
        session.execute(insert(table), [{"officer_sub": principal.sub, **values}])
    audit.record(session, action="credential.filed", outcome="replaced" if replaced else "filed", actor=principal,
                 details={"officer": principal.sub, "court": principal.court,
                          "work_card_image": images["work_card_image"], "duty_card_image": images["duty_card_image"]})
    return replaced


def credentials_view(session: Session, principal: Principal) -> dict[str, Any]:
    """The calling officer's credentials as filed (the images' digests, not their content).
    Raises NotFound saying where to file them."""
    credential = session.scalars(
        select(OfficerCredential).where(OfficerCredential.officer_sub == principal.sub)
        .options(joinedload(OfficerCredential.work_card_image).options(defer(Document.content)),
                 joinedload(OfficerCredential.duty_card_image).options(defer(Document.content)))
    ).first()
    if credential is None:
        raise NotFound(f"officer {principal.sub} has no credentials on file: file them with PUT {CREDENTIALS_PATH}")

    def image(document: Document) -> dict[str, Any]:
        return {"sha256": document.sha256, "md5": document.md5, "size_bytes": document.size_bytes,
                "media_type": document.media_type}

    return {"officer_sub": credential.officer_sub, "court_code": credential.court_code, "name": credential.name,
            "work_card_number": credential.work_card_number, "duty_card_number": credential.duty_card_number,
            "work_card_image": image(credential.work_card_image), "duty_card_image": image(credential.duty_card_image),
            "filed_at": credential.filed_at}
