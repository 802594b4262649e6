"""gateway.attachments.services.check_upload and the attachment schemas (pure)."""

from __future__ import annotations

import base64
import hashlib

import pytest
from marshmallow import ValidationError

from conftest import CARD_PNG, LEGAL_PDF
from gateway.attachments.services import check_upload
from gateway.errors import InvalidInput, TooLarge
from schemas.canonical import CredentialsSchema, RequestDocumentSchema
from schemas.errors import flatten_errors

JPEG = b"\xff\xd8\xff\xdb" + b"\x00" * 16


@pytest.mark.parametrize("content, media_type", [(LEGAL_PDF, "application/pdf"), (CARD_PNG, "image/png"),
                                                 (JPEG, "image/jpeg")])
def test_a_file_of_its_declared_type_is_taken_with_its_digests(content, media_type):
    upload = check_upload(content, media_type, field="f", max_bytes=1024)
    assert upload.view() == {"sha256": hashlib.sha256(content).hexdigest(), "md5": hashlib.md5(content).hexdigest(),
                             "size_bytes": len(content), "media_type": media_type}


@pytest.mark.parametrize("content, media_type", [
    (CARD_PNG, "application/pdf"), (LEGAL_PDF, "image/png"), (JPEG, "image/png"), (b"", "image/jpeg"),
    (b"%PDF", "application/pdf"),  # one byte short of the signature
])
def test_bytes_of_another_type_are_refused_naming_the_field(content, media_type):
    with pytest.raises(InvalidInput) as info:
        check_upload(content, media_type, field="documents[0].content_base64", max_bytes=1024)
    assert list(info.value.fields) == ["documents[0].content_base64"]
    assert media_type in info.value.fields["documents[0].content_base64"][0]


def test_a_type_not_stored_and_a_file_too_large_are_refused():
    with pytest.raises(InvalidInput) as info:
        check_upload(LEGAL_PDF, "text/plain", field="Content-Type", max_bytes=1024)
    assert "application/pdf" in info.value.fields["Content-Type"][0]
    with pytest.raises(TooLarge) as too_large:
        check_upload(LEGAL_PDF, "application/pdf", field="_body", max_bytes=len(LEGAL_PDF) - 1)
    assert too_large.value.http_status == 413
    assert check_upload(LEGAL_PDF, "application/pdf", field="_body", max_bytes=len(LEGAL_PDF)).size_bytes == len(LEGAL_PDF)


def load_errors(schema, data) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as info:
        schema.load(data)
    return flatten_errors(info.value.messages)


def test_a_request_document_is_an_upload_or_inline_not_both():
    pdf64 = base64.b64encode(LEGAL_PDF).decode()
    schema = RequestDocumentSchema()
    assert schema.load({"name": "裁定.PDF", "sha256": "AB" * 32}) == {"name": "裁定.PDF", "sha256": "ab" * 32}
    assert schema.load({"name": "a.pdf", "content_base64": pdf64})["content_base64"] == LEGAL_PDF
    assert list(load_errors(schema, {"name": "a.pdf"})) == ["sha256"]
    assert list(load_errors(schema, {"name": "a.pdf", "sha256": "ab" * 32, "content_base64": pdf64})) == ["content_base64"]
    assert list(load_errors(schema, {"name": "a.pdf", "sha256": "xyz"})) == ["sha256"]
    assert list(load_errors(schema, {"name": "a.pdf", "content_base64": "QQ"})) == ["content_base64"]  # unpadded
    for name in ("a.doc", "dir/a.pdf", "..\\a.pdf", ".pdf", "x" * 125 + ".pdf"):
        assert list(load_errors(schema, {"name": name, "sha256": "ab" * 32})) == ["name"], name


def test_credentials_name_each_bad_field_by_its_path():
    png64 = base64.b64encode(CARD_PNG).decode()
    errors = load_errors(CredentialsSchema(), {
        "name": "", "work_card_number": "A 1", "duty_card_number": "D1",
        "work_card_image": {"content_base64": png64},
        "duty_card_image": {"sha256": "ab" * 32, "media_type": "image/png"}, "photo": 1})
    assert set(errors) == {"name", "work_card_number", "work_card_image.media_type", "duty_card_image.media_type",
                           "photo"}
