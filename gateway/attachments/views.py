"""The attachments API: files stored by content, officers' credentials."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from flask import Flask, Response, current_app, request

from gateway.api import ApiBlueprint, base64_length, body_limit, roles_required
from gateway.attachments import services
from gateway.auditing.log import get_audit
from gateway.auth.access import current_principal
from gateway.db import get_db
from gateway.errors import InvalidInput, TooLarge
from gateway.timeutil import utc_now
from schemas.canonical import CredentialsOutSchema, CredentialsSchema, DocumentOutSchema, ErrorSchema

blp = ApiBlueprint("attachments", __name__, url_prefix="/api/v1",
                   description="Legal documents (PDF) and officers' credentials (work card, official-duty card)")

_RAW_BODY = {"required": True, "content": {
    media_type: {"schema": {"type": "string", "format": "binary"}} for media_type in services.SIGNATURES}}


@blp.route("/documents", methods=["POST"])
@roles_required("court_officer", "approver")
@body_limit(lambda settings: settings.documents.max_bytes)
@blp.doc(requestBody=_RAW_BODY)
@blp.response(201, DocumentOutSchema, description="stored")
@blp.alt_response(200, schema=DocumentOutSchema, description="the same bytes were stored before: the same document")
@blp.alt_response(400, schema=ErrorSchema, description="a type not stored, or bytes not of the declared type")
@blp.alt_response(413, schema=ErrorSchema, description="larger than [documents] max_bytes")
def upload_document() -> Any:
    """Store a legal document (application/pdf) or a card image (image/jpeg, image/png), sent
    as the raw body. Stored once by SHA-256: the same bytes again answer 200 with the same row."""
    principal = current_principal()
    max_bytes = current_app.config["SETTINGS"].documents.max_bytes
    if request.mimetype not in services.SIGNATURES:
        raise InvalidInput(f"{request.mimetype or 'no Content-Type'} is not stored", fields={
            "Content-Type": [f"must be one of: {', '.join(services.SIGNATURES)}"]})
    if request.content_length is not None and request.content_length > max_bytes:
        raise TooLarge(f"the file is {request.content_length} bytes; at most {max_bytes} are stored",
                       fields={"_body": [f"at most {max_bytes} bytes"]})
    upload = services.check_upload(request.get_data(cache=False), request.mimetype, field="_body", max_bytes=max_bytes)
    with get_db().transaction() as session:
        created = services.store_upload(session, upload, uploaded_by=principal.sub, court_code=principal.court,
                                        now=utc_now())
        get_audit().record(session, action="document.uploaded", outcome="stored" if created else "already_stored",
                           actor=principal, details={"sha256": upload.sha256, "media_type": upload.media_type,
                                                     "size_bytes": upload.size_bytes})
    return upload.view(), 201 if created else 200


@blp.route("/documents/<sha256>", methods=["GET"])
@roles_required("court_officer", "approver")
@blp.doc(responses={"200": {"description": "the file as stored", "content": {
    media_type: {"schema": {"type": "string", "format": "binary"}} for media_type in services.SIGNATURES}}})
@blp.alt_response(404, schema=ErrorSchema, description="no such file among the caller's court's requests and uploads")
def download_document(sha256: str) -> Any:
    """A legal document or card image, for the court whose requests carry it (or that uploaded
    it first). Each download is an audit event."""
    principal = current_principal()
    with get_db().transaction() as session:
        document, name = services.readable_document(session, sha256.lower(), principal)
        get_audit().record(session, action="document.read", outcome="ok", actor=principal,
                           details={"sha256": document.sha256, "media_type": document.media_type})
        content, media_type = document.content, document.media_type
    # inline: a judge reads the PDF in the browser; the name is the one the request gave it.
    return Response(content, mimetype=media_type, headers={
        "Content-Disposition": f"inline; filename*=UTF-8''{quote(name)}",
        "X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-store"})


@blp.route("/officers/me/credentials", methods=["PUT"])
@roles_required("court_officer", "approver")
@body_limit(lambda settings: settings.gateway.max_content_length + 2 * base64_length(settings.documents.max_bytes))
@blp.arguments(CredentialsSchema())
@blp.response(200, CredentialsOutSchema, description="the credentials on file were replaced")
@blp.alt_response(201, schema=CredentialsOutSchema, description="filed")
@blp.alt_response(400, schema=ErrorSchema, description="a field breaks its rule")
@blp.alt_response(413, schema=ErrorSchema, description="an image larger than [documents] max_bytes")
@blp.alt_response(422, schema=ErrorSchema, description="an image named by SHA-256 was not uploaded, or is no image")
def file_credentials(payload: dict[str, Any]) -> Any:
    """File the calling officer's work card and official-duty card (numbers and images).
    Agencies refuse a control whose officer's credentials they cannot fetch, so a control
    is accepted only from an officer whose credentials are on file."""
    principal = current_principal()
    with get_db().transaction() as session:
        replaced = services.file_credentials(
            session, payload, principal, audit=get_audit(), now=utc_now(),
            max_bytes=current_app.config["SETTINGS"].documents.max_bytes)
        body = services.credentials_view(session, principal)
    return body, 200 if replaced else 201


@blp.route("/officers/me/credentials", methods=["GET"])
@roles_required("court_officer", "approver")
@blp.response(200, CredentialsOutSchema)
@blp.alt_response(404, schema=ErrorSchema, description="nothing filed yet (the message says where to file)")
def show_credentials() -> Any:
    """The calling officer's credentials on file: numbers, images' digests, when filed."""
    principal = current_principal()
    with get_db().transaction() as session:
        body = services.credentials_view(session, principal)
        get_audit().record(session, action="credential.read", outcome="ok", actor=principal,
                           details={"officer": principal.sub})
    return body


def init_app(app: Flask, api: Any) -> None:
    api.register_blueprint(blp)
