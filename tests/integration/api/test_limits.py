"""Limits per officer and per court ([limits], gateway/requests/limits.py): requests
per hour per officer and per court, new subjects per day per officer. Over a limit:
429 with Retry-After, the limit named, the refusal audited; a replay of an earlier
Idempotency-Key still gets its first reply. Both databases."""

from __future__ import annotations

import pytest
from conftest import CASE_NUMBER, CREDITOR, DEBTOR, OTHER_PERSON, Api, audit_rows, make_app

from sandboxes.server import SandboxServer

SUBJECTS = [DEBTOR, OTHER_PERSON,
            {"kind": "person", "name": "王五", "id_number": "330106199001012208"},
            {"kind": "person", "name": "赵六", "id_number": "330102198703151122"}]


@pytest.fixture
def limited(overrides, psb_sandbox):
    limits = {"officer_requests_per_hour": 3, "court_requests_per_hour": 5, "officer_subjects_per_day": 2}
    app = make_app({**overrides, "limits": limits}, {"psb": psb_sandbox.url})
    server = SandboxServer(app).start()
    api = Api(server.url, app.config["SETTINGS"])
    for i, subject in enumerate(SUBJECTS):  # one case per debtor
        reply = api.register_case(case_number=CASE_NUMBER.replace("1234", str(1234 + i)),
                                  parties=[{"role": "debtor", "subject": subject}, {"role": "creditor", "subject": CREDITOR}])
        assert reply.status_code == 201, reply.text
    yield api, app
    server.stop()
    app.extensions["db"].dispose()


def _ask(api: Api, i: int, **kw):
    return api.inquire(subject=SUBJECTS[i], case_number=CASE_NUMBER.replace("1234", str(1234 + i)), **kw)


def test_an_officer_over_the_hourly_limit_gets_429_with_retry_after_and_a_replay_still_works(limited):
    api, app = limited
    first = _ask(api, 0, key="limits-key-1")
    assert first.status_code == 202
    assert [_ask(api, 0).status_code for _ in range(2)] == [202, 202]
    refused = _ask(api, 0)
    assert refused.status_code == 429, refused.text
    assert 1 <= int(refused.headers["Retry-After"]) <= 3601
    error = refused.json()["error"]
    assert error["code"] == "too_many_requests"
    assert "officer officer.wang has submitted 3 requests in the last hour" in error["message"]
    assert "limits.officer_requests_per_hour" in error["message"]
    # The same key and body again: the first reply, not a refusal.
    replay = _ask(api, 0, key="limits-key-1")
    assert replay.status_code == 202 and replay.json() == first.json()
    refusals = [e for e in audit_rows(app) if e.outcome == "refused" and e.details.get("code") == "too_many_requests"]
    assert len(refusals) == 1


def test_the_court_limit_counts_every_officer_of_the_court(limited):
    api, _app = limited
    li = api.token(sub="officer.li")
    assert [_ask(api, 0).status_code for _ in range(3)] == [202, 202, 202]
    assert [_ask(api, 0, token=li).status_code for _ in range(2)] == [202, 202]
    refused = _ask(api, 0, token=li)  # officer.li's third, the court's sixth
    assert refused.status_code == 429
    assert "court 330102 has submitted 5 requests in the last hour" in refused.json()["error"]["message"]


def test_a_new_subject_over_the_daily_limit_is_refused_but_one_asked_about_today_is_not(limited):
    api, _app = limited
    li = api.token(sub="officer.li")
    assert _ask(api, 0, token=li).status_code == 202
    assert _ask(api, 1, token=li).status_code == 202
    refused = _ask(api, 2, token=li)
    assert refused.status_code == 429
    assert "has asked about 2 subjects in the last day" in refused.json()["error"]["message"]
    assert _ask(api, 1, token=li).status_code == 202  # asked about today already: not a new subject
    assert _ask(api, 3).status_code == 202  # another officer's subjects are counted apart
