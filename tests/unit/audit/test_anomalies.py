"""audit.anomalies: every rule firing and not firing, over events built with
chosen times (no clock, no sleeping)."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

import pytest

from audit.anomalies import (
    AnomalyRules,
    controls_without_follow_up,
    find_anomalies,
    many_courts_per_subject,
    many_subjects_per_officer,
    outside_office_hours,
    refused_purpose_checks,
    repeated_queries,
)

# Tuesday 2026-11-24 10:00 in Shanghai (UTC+8) is 02:00 UTC.
TUESDAY_10 = datetime(2026, 11, 24, 2, 0, tzinfo=timezone.utc)
RULES = AnomalyRules(subjects_per_officer_hour=3, courts_per_subject=2, courts_per_subject_hours=24,
                     repeat_count=3, repeat_window_minutes=60, refused_purpose_count=2, control_follow_up_days=7)
_seq = itertools.count(1)


def event(at, *, actor="officer.wang", court="330102", subject="s1", action="request.inquiry", outcome="accepted",
          request_id=None, categories=("vehicle",), details=None):
    return {
        "seq": next(_seq), "at": at, "actor_sub": actor, "actor_role": "court_officer", "actor_court": court,
        "actor_agency": None, "action": action, "outcome": outcome, "case_number": "(2024)浙0102执1234号",
        "subject_hash": f"hash-{subject}" if subject else None, "subject_masked": f"3301**********{subject[-1] * 4}" if subject else None,
        "request_id": request_id, "delivery_id": None,
        "details": details if details is not None else {"categories": list(categories)},
    }


# --- outside office hours -----------------------------------------------------------


@pytest.mark.parametrize("at, fires", [
    (TUESDAY_10, False),
    (TUESDAY_10 - timedelta(hours=2), False),             # 08:00 local: the first office hour
    (TUESDAY_10 - timedelta(hours=2, minutes=1), True),   # 07:59 local
    (TUESDAY_10 + timedelta(hours=7, minutes=59), False), # 17:59 local
    (TUESDAY_10 + timedelta(hours=8), True),              # 18:00 local
    (TUESDAY_10 + timedelta(days=4), True),               # Saturday 10:00
    (TUESDAY_10 - timedelta(hours=10), True),             # 00:00 local, though 16:00 UTC the day before
])
def test_outside_office_hours(at, fires):
    found = outside_office_hours([event(at)], RULES)
    assert bool(found) is fires
    if fires:
        assert found[0].rule == "outside_office_hours" and found[0].actor == "officer.wang"


def test_outside_office_hours_groups_by_officer_and_local_day_and_ignores_reads():
    night = TUESDAY_10 + timedelta(hours=12)  # 22:00 local
    events = [event(night), event(night + timedelta(minutes=5)), event(night, actor="officer.li"),
              event(night, action="request.read", outcome="ok"), event(night, outcome="refused")]
    found = sorted(outside_office_hours(events, RULES), key=lambda a: a.actor)
    assert [(a.actor, len(a.seqs)) for a in found] == [("officer.li", 1), ("officer.wang", 2)]
    assert found[1].seqs == (events[0]["seq"], events[1]["seq"])


def test_office_hours_follow_the_settings():
    late = AnomalyRules(office_hours_start=8, office_hours_end=22, office_weekdays=(1, 2, 3, 4, 5, 6))
    assert not outside_office_hours([event(TUESDAY_10 + timedelta(hours=11))], late)   # 21:00 local
    assert not outside_office_hours([event(TUESDAY_10 + timedelta(days=4))], late)     # Saturday


# --- many subjects per officer ----------------------------------------------------------


def test_many_subjects_in_an_hour_fires():
    events = [event(TUESDAY_10 + timedelta(minutes=10 * i), subject=f"s{i}") for i in range(4)]
    (found,) = many_subjects_per_officer(events, RULES)
    assert found.rule == "many_subjects_per_officer" and found.actor == "officer.wang"
    assert found.seqs == tuple(e["seq"] for e in events)
    assert "4 distinct subjects within an hour" in found.message


@pytest.mark.parametrize("events", [
    [event(TUESDAY_10 + timedelta(minutes=10 * i), subject=f"s{i}") for i in range(3)],            # at the limit
    [event(TUESDAY_10 + timedelta(minutes=25 * i), subject=f"s{i}") for i in range(4)],            # spread over 75 min
    [event(TUESDAY_10 + timedelta(minutes=i), subject=f"s{i % 2}") for i in range(10)],            # same two subjects
    [event(TUESDAY_10 + timedelta(minutes=i), subject=f"s{i}", actor=f"o{i % 2}") for i in range(6)],  # two officers
])
def test_many_subjects_does_not_fire(events):
    assert many_subjects_per_officer(events, RULES) == []


def test_one_burst_is_reported_once():
    events = [event(TUESDAY_10 + timedelta(minutes=i), subject=f"s{i}") for i in range(6)]
    assert len(many_subjects_per_officer(events, RULES)) == 1


# --- many courts per subject ---------------------------------------------------------------


def test_subject_queried_by_many_courts_fires():
    events = [event(TUESDAY_10 + timedelta(hours=5 * i), court=c, actor=f"o{c}") for i, c in enumerate(("1", "2", "3"))]
    (found,) = many_courts_per_subject(events, RULES)
    assert found.rule == "many_courts_per_subject" and found.subject == "3301**********1111"
    assert "3 courts (1, 2, 3)" in found.message and found.seqs == tuple(e["seq"] for e in events)


@pytest.mark.parametrize("events", [
    [event(TUESDAY_10 + timedelta(hours=i), court=c) for i, c in enumerate(("1", "2", "1", "2"))],    # only two courts
    [event(TUESDAY_10 + timedelta(hours=13 * i), court=c) for i, c in enumerate(("1", "2", "3"))],    # over 26 hours
    [event(TUESDAY_10, court=c, subject=f"s{c}") for c in ("1", "2", "3")],                           # three subjects
])
def test_subject_courts_does_not_fire(events):
    assert many_courts_per_subject(events, RULES) == []


# --- repeated identical queries -------------------------------------------------------------


def test_repeated_identical_queries_fire():
    events = [event(TUESDAY_10 + timedelta(minutes=20 * i)) for i in range(3)]
    (found,) = repeated_queries(events, RULES)
    assert found.rule == "repeated_queries" and found.actor == "officer.wang" and len(found.seqs) == 3
    assert "the same inquiry (vehicle)" in found.message and "3 times within 60 minutes" in found.message


@pytest.mark.parametrize("events", [
    [event(TUESDAY_10 + timedelta(minutes=40 * i)) for i in range(3)],                                   # over 80 min
    [event(TUESDAY_10 + timedelta(minutes=i), categories=(c,)) for i, c in enumerate(("vehicle", "deposit", "tax"))],
    [event(TUESDAY_10 + timedelta(minutes=i), subject=f"s{i}") for i in range(3)],
    [event(TUESDAY_10), event(TUESDAY_10, outcome="replayed"), event(TUESDAY_10, outcome="replayed")],  # re-sends
])
def test_repeated_queries_do_not_fire(events):
    assert repeated_queries(events, RULES) == []


def test_category_order_does_not_make_queries_different():
    events = [event(TUESDAY_10 + timedelta(minutes=i), categories=cats)
              for i, cats in enumerate((("vehicle", "identity"), ("identity", "vehicle"), ("vehicle", "identity")))]
    assert len(repeated_queries(events, RULES)) == 1


# --- refused purpose checks ----------------------------------------------------------------------


def _refusal(at, code="purpose_denied", actor="officer.wang"):
    return event(at, action="api.post", outcome="refused", actor=actor, details={"code": code, "status": 403})


def test_refused_purpose_checks_fire_at_the_threshold():
    events = [_refusal(TUESDAY_10), _refusal(TUESDAY_10 + timedelta(hours=1))]
    (found,) = refused_purpose_checks(events, RULES)
    assert found.rule == "refused_purpose_checks" and found.actor == "officer.wang" and len(found.seqs) == 2


@pytest.mark.parametrize("events", [
    [_refusal(TUESDAY_10)],                                                     # once: below the threshold of 2
    [_refusal(TUESDAY_10, actor="a"), _refusal(TUESDAY_10, actor="b")],         # two officers once each
    [_refusal(TUESDAY_10, code="invalid_input"), _refusal(TUESDAY_10, code="forbidden")],
])
def test_refused_purpose_checks_do_not_fire(events):
    assert refused_purpose_checks(events, RULES) == []


# --- controls without follow-up -----------------------------------------------------------------------


def _freeze(at, request_id="r1"):
    return event(at, action="request.freeze", request_id=request_id, categories=("deposit",))


NOW = TUESDAY_10 + timedelta(days=10)


def test_control_without_follow_up_fires():
    control = _freeze(TUESDAY_10)
    unrelated = event(TUESDAY_10 + timedelta(days=1), action="delivery.result", outcome="answered", request_id="other")
    failed = event(TUESDAY_10 + timedelta(days=1), action="delivery.attempt", outcome="failed", request_id="r1")
    (found,) = controls_without_follow_up([control, unrelated, failed], RULES, now=NOW)
    assert found.rule == "control_without_follow_up" and found.seqs == (control["seq"],)
    assert "freeze request r1" in found.message


@pytest.mark.parametrize("follow_up", [
    {"action": "delivery.result", "outcome": "answered"},
    {"action": "request.approval", "outcome": "approved"},
])
def test_control_with_follow_up_does_not_fire(follow_up):
    events = [_freeze(TUESDAY_10), event(TUESDAY_10 + timedelta(days=2), request_id="r1", **follow_up)]
    assert controls_without_follow_up(events, RULES, now=NOW) == []


def test_control_still_within_its_days_and_late_follow_up():
    assert controls_without_follow_up([_freeze(NOW - timedelta(days=6))], RULES, now=NOW) == []
    late = [_freeze(TUESDAY_10), event(TUESDAY_10 + timedelta(days=8), action="delivery.result", outcome="answered",
                                       request_id="r1")]
    assert len(controls_without_follow_up(late, RULES, now=NOW)) == 1  # answered, but after 7 days
    assert controls_without_follow_up([event(TUESDAY_10, request_id="r9")], RULES, now=NOW) == []  # an inquiry


# --- all together -------------------------------------------------------------------------------------


def test_find_anomalies_runs_every_rule_and_names_events():
    events = ([event(TUESDAY_10 + timedelta(hours=14))]                                     # 00:00 local
              + [_refusal(TUESDAY_10), _refusal(TUESDAY_10 + timedelta(minutes=1))]
              + [_freeze(TUESDAY_10)])
    found = find_anomalies(events, RULES, now=NOW)
    assert {a.rule for a in found} == {"outside_office_hours", "refused_purpose_checks", "control_without_follow_up"}
    assert all(a.seqs and a.message for a in found)
    as_json = found[0].as_dict()
    assert set(as_json) >= {"rule", "actor", "subject", "message", "seqs", "first_at", "last_at"}
    assert found == sorted(found, key=lambda a: (a.first_at, a.rule))


def test_events_with_string_times_from_an_export_work_the_same():
    events = [event(TUESDAY_10 + timedelta(minutes=10 * i), subject=f"s{i}") for i in range(4)]
    as_text = [{**e, "at": e["at"].strftime("%Y-%m-%dT%H:%M:%S.%fZ")} for e in events]
    assert [a.seqs for a in many_subjects_per_officer(as_text, RULES)] == [a.seqs for a in many_subjects_per_officer(events, RULES)]


def test_every_rule_states_its_facts_and_the_console_words_each_in_chinese():
    """Each rule's facts fill its Chinese wording in the console's catalogue: a fact renamed
    on one side and not the other fails here, not as an English line on a Chinese page."""
    from gateway.people.messages import MESSAGES

    events = ([event(TUESDAY_10 + timedelta(hours=14))]                                             # 00:00 local
              + [event(TUESDAY_10 + timedelta(minutes=10 * i), subject=f"s{i}") for i in range(4)]  # many subjects
              + [event(TUESDAY_10 + timedelta(hours=5 * i), court=c, actor=f"o{c}", subject="c9")
                 for i, c in enumerate(("1", "2", "3"))]                                            # many courts
              + [event(TUESDAY_10 + timedelta(minutes=20 * i), subject="r7") for i in range(3)]     # repeated
              + [_refusal(TUESDAY_10), _refusal(TUESDAY_10 + timedelta(minutes=1))]
              + [_freeze(TUESDAY_10)])
    found = find_anomalies(events, RULES, now=NOW)
    assert {a.rule for a in found} == {"outside_office_hours", "many_subjects_per_officer", "many_courts_per_subject",
                                       "repeated_queries", "refused_purpose_checks", "control_without_follow_up"}
    for anomaly in found:
        worded = MESSAGES["zh"][f"anomaly.{anomaly.rule}"].format(**anomaly.as_dict()["facts"])
        assert str(anomaly.facts["count"] if "count" in anomaly.facts else anomaly.facts["request_id"]) in worded
