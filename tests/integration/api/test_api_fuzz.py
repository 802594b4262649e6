"""Whatever a court system sends, the answer is a clear 4xx or a success, never a
500, and always in the error format. Hypothesis builds the bodies."""

import base64
import hashlib
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import CARD_PNG, CASE_NUMBER, COURT, DEBTOR, LEGAL_PDF, credentials_body

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
# Near-misses of the real shapes find more than random JSON does.
subjects = st.fixed_dictionaries({}, optional={
    "kind": st.sampled_from(["person", "organization", "robot", ""]) | json_values,
    "name": st.text(max_size=120) | json_values,
    "id_number": st.sampled_from([DEBTOR["id_number"], "91350100M000100Y43", "11010519491231002x", "x" * 18])
    | st.text(max_size=20) | json_values,
})
files_base64 = st.sampled_from([base64.b64encode(f).decode() for f in (LEGAL_PDF, CARD_PNG, b"x")] + ["!!", ""])
sha256s = st.sampled_from([hashlib.sha256(LEGAL_PDF).hexdigest(), hashlib.sha256(CARD_PNG).hexdigest(), "0" * 64, "x"])
documents = st.lists(st.fixed_dictionaries({}, optional={
    "name": st.sampled_from(["裁定书.pdf", "a.PDF", "../a.pdf", "a.txt", ""]) | json_values,
    "sha256": sha256s | json_values,
    "content_base64": files_base64 | json_values,
}), max_size=3) | json_values
card_images = st.fixed_dictionaries({}, optional={
    "sha256": sha256s | json_values, "content_base64": files_base64 | json_values,
    "media_type": st.sampled_from(["image/png", "image/jpeg", "application/pdf"]) | json_values,
}) | json_values
request_bodies = st.fixed_dictionaries({}, optional={
    "case_number": st.sampled_from([CASE_NUMBER, "（2024）浙0102执1234号", "bad"]) | json_values,
    "subject": subjects | json_values,
    "action": st.sampled_from(["inquiry", "freeze", "seal", "look"]) | json_values,
    "categories": st.lists(st.sampled_from(["vehicle", "identity", "deposit", "gold"]), max_size=4) | json_values,
    "legal_basis": st.fixed_dictionaries({}, optional={"kind": st.sampled_from(["ruling", "x"]), "number": st.text(max_size=70)}) | json_values,
    "amount": st.sampled_from(["1000.00", "1000", "-1.00", "0.00"]) | json_values,
    "targets": st.lists(st.text(max_size=70), max_size=3) | json_values,
    "documents": documents,
    "extra": json_values,
})
credentials_bodies = st.fixed_dictionaries({}, optional={
    "name": st.text(max_size=70) | json_values,
    "work_card_number": st.sampled_from(["GZ-1", "工作证", "x" * 40]) | json_values,
    "duty_card_number": st.sampled_from(["ZW-1", ""]) | json_values,
    "work_card_image": card_images, "duty_card_image": card_images, "extra": json_values,
})
case_bodies = st.fixed_dictionaries({}, optional={
    "case_number": st.sampled_from([CASE_NUMBER, "bad"]) | json_values,
    "court_code": st.sampled_from([COURT, "110105", "3"]) | json_values,
    "amount_owed": st.sampled_from(["150000.00", "1.5", "0.00"]) | json_values,
    "parties": st.lists(st.fixed_dictionaries({}, optional={"role": st.sampled_from(["debtor", "creditor", "x"]),
                                                         "subject": subjects}), max_size=3) | json_values,
})

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _check(reply):
    assert reply.status_code < 500, reply.get_data(as_text=True)
    if reply.status_code >= 400:
        error = reply.get_json()["error"]
        assert error["code"] and error["message"] and isinstance(error["fields"], dict)


@FUZZ
@given(body=request_bodies)
def test_request_bodies_never_crash_the_gateway(app, settings, body):
    client = app.test_client()
    from gateway.auth.tokens import issue_token

    token = issue_token(settings, role="court_officer", sub="fuzz", court=COURT)
    client.put("/api/v1/officers/me/credentials", json=credentials_body(), headers={"Authorization": f"Bearer {token}"})
    client.post("/api/v1/documents", data=LEGAL_PDF, content_type="application/pdf",
                headers={"Authorization": f"Bearer {token}"})
    client.post("/api/v1/cases", json={"case_number": CASE_NUMBER, "court_code": COURT, "amount_owed": "1.00",
                                       "parties": [{"role": "debtor", "subject": DEBTOR}]},
                headers={"Authorization": f"Bearer {token}"})
    reply = client.post("/api/v1/requests", data=json.dumps(body), content_type="application/json",
                        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "fuzz-key-0001"})
    _check(reply)


@FUZZ
@given(body=case_bodies)
def test_case_bodies_never_crash_the_gateway(app, settings, body):
    from gateway.auth.tokens import issue_token

    token = issue_token(settings, role="court_officer", sub="fuzz", court=COURT)
    reply = app.test_client().post("/api/v1/cases", data=json.dumps(body), content_type="application/json",
                                   headers={"Authorization": f"Bearer {token}"})
    _check(reply)


@FUZZ
@given(body=credentials_bodies)
def test_credentials_bodies_never_crash_the_gateway(app, settings, body):
    from gateway.auth.tokens import issue_token

    token = issue_token(settings, role="court_officer", sub="fuzz", court=COURT)
    client = app.test_client()
    client.post("/api/v1/documents", data=LEGAL_PDF, content_type="application/pdf",
                headers={"Authorization": f"Bearer {token}"})
    reply = client.put("/api/v1/officers/me/credentials", data=json.dumps(body), content_type="application/json",
                       headers={"Authorization": f"Bearer {token}"})
    _check(reply)


@FUZZ
@given(content=st.binary(max_size=64) | st.sampled_from([LEGAL_PDF, CARD_PNG, b"%PDF-", b"\xff\xd8\xff"]),
       media_type=st.sampled_from(["application/pdf", "image/png", "image/jpeg", "text/plain", ""]))
def test_uploads_never_crash_the_gateway(app, settings, content, media_type):
    from gateway.auth.tokens import issue_token

    token = issue_token(settings, role="approver", sub="fuzz", court=COURT)
    reply = app.test_client().post("/api/v1/documents", data=content, content_type=media_type or None,
                                   headers={"Authorization": f"Bearer {token}"})
    _check(reply)


DEEP_ARRAY = "[" * 300_000 + "]" * 300_000  # 600 KB: Python's parser would recurse into RecursionError


def test_deeply_nested_json_is_refused_naming_the_depth_rule(app, settings):
    from gateway.auth.tokens import issue_token

    token = issue_token(settings, role="court_officer", sub="fuzz", court=COURT)
    client = app.test_client()
    for path, extra in (("/api/v1/cases", {}), ("/api/v1/requests", {"Idempotency-Key": "deep-key-0001"})):
        for body in (DEEP_ARRAY, '{"case_number": ' + DEEP_ARRAY + "}"):
            reply = client.post(path, data=body, content_type="application/json",
                                headers={"Authorization": f"Bearer {token}", **extra})
            assert reply.status_code == 400, (path, reply.status_code)
            assert reply.get_json()["error"]["fields"]["_body"] == [
                "JSON may nest arrays and objects at most 64 levels deep"]
    # Brackets inside strings are text, not nesting: a body of ordinary depth still gets its ordinary answer.
    shallow = json.dumps({"case_number": "[" * 200, "court_code": COURT, "amount_owed": "1.00", "parties": []})
    reply = client.post("/api/v1/cases", data=shallow, content_type="application/json",
                        headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code == 400 and "_body" not in reply.get_json()["error"]["fields"]
