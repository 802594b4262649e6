"""Legal documents and officers' credentials: POST /api/v1/documents,
PUT/GET /api/v1/officers/me/credentials, and the rule at intake that a control
carries its legal document (PDF) and comes from an officer whose credentials are
on file (agencies refuse it otherwise: 业务审核未通过).

Controls are proved with a watch on the public security sandbox, as in
test_approval_api.py (whose app fixture this module uses).
"""

from __future__ import annotations

import base64
import hashlib
import uuid

import pytest
import sqlalchemy as sa

from conftest import CARD_PNG, CASE_NUMBER, DEBTOR, LEGAL_DOCUMENT, LEGAL_PDF, audit_rows, credentials_body
from gateway.attachments.models import Document, OfficerCredential, RequestDocument
from test_approval_api import LEGAL_BASIS, app  # noqa: F401 (fixture)

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"
OTHER_PDF = LEGAL_PDF.replace(b"%%EOF", b"% another ruling\n%%EOF")


def upload(api, content: bytes, media_type: str, **kw):
    return api.post("/api/v1/documents", data=content, headers={"Content-Type": media_type}, **kw)


def watch(api, key: str | None = None, **changes):
    body = {"case_number": CASE_NUMBER, "subject": DEBTOR, "action": "watch", "legal_basis": LEGAL_BASIS,
            "documents": [LEGAL_DOCUMENT], **changes}
    return api.post("/api/v1/requests", json=body, headers={"Idempotency-Key": key or f"watch-{uuid.uuid4().hex}"})


def count(app, model) -> int:
    with app.extensions["db"].reading() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(model))


def test_the_same_bytes_are_stored_once(api, app):
    first = upload(api, LEGAL_PDF, "application/pdf")
    assert first.status_code == 201, first.text
    assert first.json() == {"sha256": hashlib.sha256(LEGAL_PDF).hexdigest(), "md5": hashlib.md5(LEGAL_PDF).hexdigest(),
                            "size_bytes": len(LEGAL_PDF), "media_type": "application/pdf"}
    judge = api.token(role="approver", sub="judge.zhao")
    again = upload(api, LEGAL_PDF, "application/pdf; charset=binary", token=judge)
    assert again.status_code == 200 and again.json() == first.json()
    assert count(app, Document) == 1
    with app.extensions["db"].reading() as session:
        stored = session.get(Document, first.json()["sha256"])
        assert (stored.content, stored.uploaded_by) == (LEGAL_PDF, "officer.wang")  # the first uploader's row
    events = [e for e in audit_rows(app) if e.action == "document.uploaded"]
    assert [(e.outcome, e.actor_sub, e.details["sha256"]) for e in events] == [
        ("stored", "officer.wang", first.json()["sha256"]), ("already_stored", "judge.zhao", first.json()["sha256"])]
    assert "content" not in str(events[0].details)


@pytest.mark.parametrize("content, media_type, status, field", [
    (CARD_PNG, "application/pdf", 400, "_body"),       # a PNG declared as a PDF
    (LEGAL_PDF, "image/jpeg", 400, "_body"),
    (JPEG, "image/png", 400, "_body"),
    (b"", "application/pdf", 400, "_body"),
    (LEGAL_PDF, "text/plain", 400, "Content-Type"),
    (LEGAL_PDF, "application/json", 400, "Content-Type"),
])
def test_a_file_must_be_what_its_type_says(api, app, content, media_type, status, field):
    reply = upload(api, content, media_type)
    assert reply.status_code == status, reply.text
    assert field in reply.json()["error"]["fields"], reply.json()
    assert count(app, Document) == 0


def test_jpeg_and_png_card_images_are_stored(api):
    assert upload(api, JPEG, "image/jpeg").json()["media_type"] == "image/jpeg"
    assert upload(api, CARD_PNG, "image/png").json()["media_type"] == "image/png"


def test_only_officers_and_approvers_upload(api):
    auditor = api.token(role="auditor", court=None, sub="auditor.zhao")
    assert upload(api, LEGAL_PDF, "application/pdf", token=auditor).status_code == 403
    assert upload(api, LEGAL_PDF, "application/pdf", token=None).status_code == 401


class TestSizeLimit:
    @pytest.fixture
    def overrides(self, overrides):
        return {**overrides, "documents": {"max_bytes": 1024}}

    def test_a_file_above_max_bytes_is_refused(self, api, app):
        big = LEGAL_PDF + b"%" * 1024
        reply = upload(api, big, "application/pdf")
        assert reply.status_code == 413 and reply.json()["error"]["code"] == "too_large", reply.text
        assert api.register_case().status_code == 201
        api.file_credentials()
        inline = watch(api, documents=[{"name": "big.pdf", "content_base64": base64.b64encode(big).decode()}])
        assert inline.status_code == 413, inline.text
        assert "documents[0].content_base64" in inline.json()["error"]["fields"]
        assert count(app, Document) == 1  # the card image only
        assert upload(api, LEGAL_PDF, "application/pdf").status_code == 201  # at the limit's side: stored


def test_credentials_are_filed_replaced_and_shown(api, app):
    missing = api.get("/api/v1/officers/me/credentials")
    assert missing.status_code == 404 and "PUT /api/v1/officers/me/credentials" in missing.json()["error"]["message"]
    filed = api.file_credentials()
    assert filed.status_code == 201
    png_sha = hashlib.sha256(CARD_PNG).hexdigest()
    body = api.get("/api/v1/officers/me/credentials").json()
    assert {k: body[k] for k in ("officer_sub", "court_code", "name", "work_card_number", "duty_card_number")} == {
        "officer_sub": "officer.wang", "court_code": "330102", "name": "王某", "work_card_number": "GZ-330102-001",
        "duty_card_number": "ZWGZ-330102-001"}
    assert body["work_card_image"] == {"sha256": png_sha, "md5": hashlib.md5(CARD_PNG).hexdigest(),
                                       "size_bytes": len(CARD_PNG), "media_type": "image/png"}
    assert body["filed_at"].endswith("Z")

    jpeg_sha = upload(api, JPEG, "image/jpeg").json()["sha256"]
    replaced = api.call("PUT", "/api/v1/officers/me/credentials", json={
        **credentials_body(number="GZ-2"), "duty_card_image": {"sha256": jpeg_sha.upper()}})
    assert replaced.status_code == 200, replaced.text
    assert (replaced.json()["work_card_number"], replaced.json()["duty_card_image"]["sha256"]) == ("GZ-2", jpeg_sha)
    assert count(app, OfficerCredential) == 1
    assert count(app, Document) == 2  # both PNG filings stored one image
    events = [e for e in audit_rows(app) if e.action == "credential.filed"]
    assert [(e.outcome, e.details["duty_card_image"]) for e in events] == [("filed", png_sha), ("replaced", jpeg_sha)]


@pytest.mark.parametrize("changes, status, field", [
    ({"work_card_image": {"sha256": "0" * 64}}, 422, "work_card_image.sha256"),
    ({"work_card_image": {"sha256": hashlib.sha256(LEGAL_PDF).hexdigest()}}, 422, "work_card_image.sha256"),
    ({"duty_card_image": {"content_base64": base64.b64encode(CARD_PNG).decode()}}, 400, "duty_card_image.media_type"),
    ({"duty_card_image": {"content_base64": base64.b64encode(LEGAL_PDF).decode(), "media_type": "image/png"}}, 400,
     "duty_card_image.content_base64"),
    ({"duty_card_image": {"content_base64": "not base64!", "media_type": "image/png"}}, 400,
     "duty_card_image.content_base64"),
    ({"duty_card_image": {}}, 400, "duty_card_image.sha256"),
    ({"work_card_number": "工作证 1"}, 400, "work_card_number"),
    ({"badge": "x"}, 400, "badge"),
])
def test_bad_credentials_name_the_field(api, app, changes, status, field):
    assert upload(api, LEGAL_PDF, "application/pdf").status_code == 201
    reply = api.call("PUT", "/api/v1/officers/me/credentials", json={**credentials_body(), **changes})
    assert reply.status_code == status, reply.text
    assert field in reply.json()["error"]["fields"], reply.json()
    assert count(app, OfficerCredential) == 0


def test_a_control_without_its_legal_document_is_refused(api, app):
    assert api.register_case().status_code == 201
    api.file_credentials()
    reply = watch(api, documents=[])
    assert reply.status_code == 422, reply.text
    assert "legal document (PDF)" in reply.json()["error"]["fields"]["documents"][0]
    without = {"case_number": CASE_NUMBER, "subject": DEBTOR, "action": "watch", "legal_basis": LEGAL_BASIS}
    reply = api.post("/api/v1/requests", json=without, headers={"Idempotency-Key": "watch-no-documents"})
    assert reply.status_code == 422 and list(reply.json()["error"]["fields"]) == ["documents"]
    assert count(app, RequestDocument) == 0


def test_a_control_from_an_officer_without_credentials_is_refused(api, app):
    assert api.register_case().status_code == 201
    reply = watch(api)
    assert reply.status_code == 422, reply.text
    assert "PUT /api/v1/officers/me/credentials" in reply.json()["error"]["fields"]["officer"][0]
    assert count(app, Document) == 0  # nothing half-written: not even the inline document
    # Filed for another court, they do not count for this one.
    api.file_credentials(token=api.token(court="110105"))
    moved = watch(api)
    assert moved.status_code == 422 and "court 110105" in moved.json()["error"]["fields"]["officer"][0]
    api.file_credentials()
    assert watch(api).status_code == 202
    # An inquiry needs neither.
    assert api.inquire(token=api.token(sub="officer.li")).status_code == 202


def test_documents_must_be_uploaded_pdfs(api, app):
    assert api.register_case().status_code == 201
    api.file_credentials()
    png = upload(api, CARD_PNG, "image/png").json()["sha256"]
    pdf = upload(api, LEGAL_PDF, "application/pdf").json()["sha256"]
    reply = watch(api, documents=[{"name": "a.pdf", "sha256": pdf}, {"name": "b.pdf", "sha256": "ab" * 32},
                                  {"name": "c.pdf", "sha256": png}])
    assert reply.status_code == 422, reply.text
    fields = reply.json()["error"]["fields"]
    assert set(fields) == {"documents[1].sha256", "documents[2].sha256"}
    assert "was uploaded" in fields["documents[1].sha256"][0] and "image/png" in fields["documents[2].sha256"][0]
    inline_png = watch(api, documents=[{"name": "a.pdf", "content_base64": base64.b64encode(CARD_PNG).decode()}])
    assert inline_png.status_code == 400 and "documents[0].content_base64" in inline_png.json()["error"]["fields"]
    too_many = watch(api, documents=[{"name": f"{i}.pdf", "sha256": pdf} for i in range(21)])
    assert too_many.status_code == 400 and "documents" in too_many.json()["error"]["fields"]
    assert count(app, RequestDocument) == 0


def test_documents_travel_with_the_request_and_show_in_its_state(api, app):
    assert api.register_case().status_code == 201
    api.file_credentials()
    uploaded = upload(api, OTHER_PDF, "application/pdf").json()
    documents = [LEGAL_DOCUMENT, {"name": "查封裁定书.pdf", "sha256": uploaded["sha256"]}]
    reply = watch(api, key="watch-with-documents", documents=documents)
    assert reply.status_code == 202, reply.text
    expected = [
        {"position": 1, "name": "协助执行通知书.pdf", "sha256": hashlib.sha256(LEGAL_PDF).hexdigest(),
         "md5": hashlib.md5(LEGAL_PDF).hexdigest(), "size_bytes": len(LEGAL_PDF)},
        {"position": 2, "name": "查封裁定书.pdf", "sha256": uploaded["sha256"], "md5": uploaded["md5"],
         "size_bytes": len(OTHER_PDF)},
    ]
    assert reply.json()["documents"] == expected
    assert api.get(f"/api/v1/requests/{reply.json()['id']}").json()["documents"] == expected
    with app.extensions["db"].reading() as session:
        stored = session.get(Document, expected[0]["sha256"])  # the inline one, stored like an upload
        assert (stored.content, stored.media_type, stored.uploaded_by) == (LEGAL_PDF, "application/pdf", "officer.wang")
    (accepted,) = [e for e in audit_rows(app) if e.action == "request.watch"]
    assert accepted.details["documents"] == [d["sha256"] for d in expected]

    # Same key, same body: the same reply, nothing written twice; other documents: 409.
    replay = watch(api, key="watch-with-documents", documents=documents)
    assert replay.status_code == 202 and replay.json() == reply.json()
    assert count(app, RequestDocument) == 2 and count(app, Document) == 3  # two PDFs, the card image
    other = watch(api, key="watch-with-documents", documents=documents[:1])
    assert other.status_code == 409

    # The same PDF inline in a second request is the same stored document.
    second = watch(api, key="watch-again", documents=[{**LEGAL_DOCUMENT, "name": "再次.pdf"}])
    assert second.status_code == 202 and second.json()["documents"][0]["sha256"] == expected[0]["sha256"]
    assert count(app, Document) == 3 and count(app, RequestDocument) == 3


def test_an_inquiry_may_carry_documents(api, app):
    assert api.register_case().status_code == 201
    plain = api.inquire()
    assert plain.status_code == 202 and plain.json()["documents"] == []
    carried = api.inquire(extra={"documents": [LEGAL_DOCUMENT]})
    assert carried.status_code == 202 and [d["position"] for d in carried.json()["documents"]] == [1]


def test_an_inline_document_lifts_the_request_body_limit_by_one_file(api, app):
    """[gateway] max_content_length is 1 MiB; a 1.5 MiB PDF inline (2 MiB of JSON) is
    within [documents] max_bytes (5 MiB) and goes through; two 5 MiB ones do not."""
    assert api.register_case().status_code == 201
    api.file_credentials()
    big = LEGAL_PDF + b"%" * (1536 * 1024)
    reply = watch(api, documents=[{"name": "big.pdf", "content_base64": base64.b64encode(big).decode()}])
    assert reply.status_code == 202, reply.text[:500]
    assert reply.json()["documents"][0]["size_bytes"] == len(big)
    huge = base64.b64encode(LEGAL_PDF + b"%" * (5 * 1024 * 1024 - len(LEGAL_PDF))).decode()
    refused = watch(api, documents=[{"name": "a.pdf", "content_base64": huge}, {"name": "b.pdf", "content_base64": huge}])
    assert refused.status_code == 413, refused.text[:500]
    assert api.post("/api/v1/cases", data=b"{" + b" " * (2 * 1024 * 1024) + b"}",
                    headers={"Content-Type": "application/json"}).status_code == 413  # elsewhere: unchanged
