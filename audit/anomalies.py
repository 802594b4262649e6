"""Anomaly rules over audit events, as pure functions.

Each rule takes event rows (dicts with the hashed fields; ``at`` a datetime or
the hashed RFC 3339 string) and returns ``Anomaly`` records that name the
rule, the officer and/or the subject (masked), say what is unusual in a
sentence, and list the seqs of the events behind it. Time comes from the
events and the ``now`` passed in, never from the clock, so tests choose it.

A "query" is an accepted request (``request.<action>``, outcome ``accepted``).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping, Sequence
from zoneinfo import ZoneInfo

from schemas.vocabulary import ACTIONS, CONTROL_ACTIONS

Event = Mapping[str, Any]


@dataclass(frozen=True)
class AnomalyRules:
    office_timezone: str = "Asia/Shanghai"
    office_hours_start: int = 8
    office_hours_end: int = 18
    office_weekdays: tuple[int, ...] = (1, 2, 3, 4, 5)
    subjects_per_officer_hour: int = 20
    courts_per_subject: int = 3
    courts_per_subject_hours: float = 24.0
    repeat_count: int = 3
    repeat_window_minutes: float = 60.0
    refused_purpose_count: int = 1
    control_follow_up_days: float = 7.0


@dataclass(frozen=True)
class Anomaly:
    rule: str
    message: str
    seqs: tuple[int, ...]
    first_at: datetime
    last_at: datetime
    actor: str | None = None
    subject: str | None = None  # masked
    extra: dict[str, Any] = field(default_factory=dict)
    # The figures the message states, by name, so a console can word the same finding in
    # its own language (gateway/people/messages.py: "anomaly.<rule>").
    facts: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "actor": self.actor, "subject": self.subject, "message": self.message,
                "facts": dict(self.facts), "seqs": list(self.seqs), "first_at": _iso(self.first_at),
                "last_at": _iso(self.last_at), **self.extra}


def _iso(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _at(event: Event) -> datetime:
    value = event["at"]
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def is_query(event: Event) -> bool:
    action = event["action"]
    return action.startswith("request.") and action[len("request."):] in ACTIONS and event["outcome"] == "accepted"


def _queries(events: Iterable[Event]) -> list[Event]:
    return sorted((e for e in events if is_query(e)), key=lambda e: (_at(e), e["seq"]))


def _make(rule: str, message: str, group: Sequence[Event], **kw: Any) -> Anomaly:
    times = [_at(e) for e in group]
    return Anomaly(rule, message, tuple(e["seq"] for e in group), min(times), max(times), **kw)


def outside_office_hours(events: Iterable[Event], rules: AnomalyRules) -> list[Anomaly]:
    """Queries made outside office hours or days, one anomaly per officer per local day."""
    zone = ZoneInfo(rules.office_timezone)
    groups: dict[tuple[Any, str], list[Event]] = defaultdict(list)
    for event in _queries(events):
        local = _at(event).astimezone(zone)
        if local.isoweekday() not in rules.office_weekdays or not rules.office_hours_start <= local.hour < rules.office_hours_end:
            groups[(event["actor_sub"], local.date().isoformat())].append(event)
    return [
        _make("outside_office_hours",
              f"{actor} made {len(group)} quer{'y' if len(group) == 1 else 'ies'} outside office hours on {day} "
              f"({rules.office_hours_start:02d}:00-{rules.office_hours_end:02d}:00 {rules.office_timezone}, "
              f"weekdays {','.join(map(str, rules.office_weekdays))})",
              group, actor=actor,
              facts={"actor": actor, "count": len(group), "day": day, "start": f"{rules.office_hours_start:02d}:00",
                     "end": f"{rules.office_hours_end:02d}:00", "zone": rules.office_timezone,
                     "weekdays": ",".join(map(str, rules.office_weekdays))})
        for (actor, day), group in groups.items()
    ]


def _bursts(events: list[Event], window: timedelta, value_of: Any, threshold: int) -> list[list[Event]]:
    """Groups of events within ``window`` of each other holding more than
    ``threshold`` distinct values; after a burst the search starts afresh, so one
    burst is reported once."""
    found: list[list[Event]] = []
    left, counts = 0, Counter[Any]()
    for right, event in enumerate(events):
        counts[value_of(event)] += 1
        while _at(event) - _at(events[left]) > window:
            old = value_of(events[left])
            counts[old] -= 1
            if not counts[old]:
                del counts[old]
            left += 1
        if len(counts) > threshold:
            found.append(events[left:right + 1])
            counts, left = Counter(), right + 1
    return found


def many_subjects_per_officer(events: Iterable[Event], rules: AnomalyRules) -> list[Anomaly]:
    """An officer querying more than N distinct subjects within an hour."""
    by_actor: dict[Any, list[Event]] = defaultdict(list)
    for event in _queries(events):
        if event["subject_hash"]:
            by_actor[event["actor_sub"]].append(event)
    found = []
    for actor, group in by_actor.items():
        for burst in _bursts(group, timedelta(hours=1), lambda e: e["subject_hash"], rules.subjects_per_officer_hour):
            subjects = len({e["subject_hash"] for e in burst})
            found.append(_make("many_subjects_per_officer",
                               f"{actor} queried {subjects} distinct subjects within an hour "
                               f"(more than {rules.subjects_per_officer_hour})", burst, actor=actor,
                               facts={"actor": actor, "count": subjects, "limit": rules.subjects_per_officer_hour}))
    return found


def many_courts_per_subject(events: Iterable[Event], rules: AnomalyRules) -> list[Anomaly]:
    """A subject queried by more than M distinct courts within T hours."""
    by_subject: dict[str, list[Event]] = defaultdict(list)
    for event in _queries(events):
        if event["subject_hash"]:
            by_subject[event["subject_hash"]].append(event)
    found = []
    window = timedelta(hours=rules.courts_per_subject_hours)
    for group in by_subject.values():
        for burst in _bursts(group, window, lambda e: e["actor_court"], rules.courts_per_subject):
            courts = sorted({str(e["actor_court"]) for e in burst})
            masked = burst[0]["subject_masked"]
            found.append(_make("many_courts_per_subject",
                               f"subject {masked} was queried by {len(courts)} courts ({', '.join(courts)}) within "
                               f"{rules.courts_per_subject_hours:g} hours (more than {rules.courts_per_subject})",
                               burst, subject=masked,
                               facts={"subject": masked, "count": len(courts), "courts": ", ".join(courts),
                                      "hours": f"{rules.courts_per_subject_hours:g}", "limit": rules.courts_per_subject}))
    return found


def repeated_queries(events: Iterable[Event], rules: AnomalyRules) -> list[Anomaly]:
    """The same officer asking the same thing about the same subject again and
    again: ``repeat_count`` identical queries (action, categories) within the window.
    Idempotent re-sends are not queries (their outcome is ``replayed``)."""
    groups: dict[tuple[Any, ...], list[Event]] = defaultdict(list)
    for event in _queries(events):
        categories = tuple(sorted((event.get("details") or {}).get("categories") or ()))
        groups[(event["actor_sub"], event["subject_hash"], event["action"], categories)].append(event)
    found = []
    window = timedelta(minutes=rules.repeat_window_minutes)
    for (actor, _, action, categories), group in groups.items():
        left = 0
        for right in range(len(group)):
            while _at(group[right]) - _at(group[left]) > window:
                left += 1
            if right - left + 1 >= rules.repeat_count:
                burst = group[left:right + 1]
                found.append(_make("repeated_queries",
                                   f"{actor} made the same {action[len('request.'):]} ({', '.join(categories) or 'all'}) "
                                   f"about {burst[0]['subject_masked']} {len(burst)} times within "
                                   f"{rules.repeat_window_minutes:g} minutes", burst,
                                   actor=actor, subject=burst[0]["subject_masked"],
                                   facts={"actor": actor, "action": action[len("request."):],
                                          "categories": ", ".join(categories) or "all",
                                          "subject": burst[0]["subject_masked"], "count": len(burst),
                                          "minutes": f"{rules.repeat_window_minutes:g}"}))
                left = right + 1
    return found


def refused_purpose_checks(events: Iterable[Event], rules: AnomalyRules) -> list[Anomaly]:
    """Calls refused by the purpose rule (a subject not a debtor of the caller's case)."""
    by_actor: dict[Any, list[Event]] = defaultdict(list)
    for event in events:
        if event["outcome"] == "refused" and (event.get("details") or {}).get("code") == "purpose_denied":
            by_actor[event["actor_sub"]].append(event)
    return [
        _make("refused_purpose_checks",
              f"{actor} was refused {len(group)} time{'s' if len(group) > 1 else ''} by the purpose check "
              "(asked about a subject who is not a debtor of the court's case)",
              sorted(group, key=lambda e: e["seq"]), actor=actor, facts={"actor": actor, "count": len(group)})
        for actor, group in by_actor.items() if len(group) >= rules.refused_purpose_count
    ]


def _is_follow_up(event: Event) -> bool:
    action = event["action"]
    return ((action == "delivery.result" and event["outcome"] == "answered")
            or action.startswith("request.approv") or action.startswith("approval."))


def controls_without_follow_up(events: Iterable[Event], rules: AnomalyRules, *, now: datetime) -> list[Anomaly]:
    """A control accepted (or awaiting approval) with no agency result and no
    approval decision within D days."""
    rows = list(events)
    limit = timedelta(days=rules.control_follow_up_days)
    controls = [e for e in rows if e["action"].startswith("request.") and e["action"][8:] in CONTROL_ACTIONS
                and e["outcome"] in ("accepted", "awaiting_approval") and e["request_id"]]
    follow_ups: dict[str, list[datetime]] = defaultdict(list)
    for event in rows:
        if event["request_id"] and _is_follow_up(event):
            follow_ups[event["request_id"]].append(_at(event))
    found = []
    for control in controls:
        placed = _at(control)
        if now - placed <= limit:
            continue  # still within its time
        if any(placed <= t <= placed + limit for t in follow_ups.get(control["request_id"], ())):
            continue
        found.append(_make("control_without_follow_up",
                           f"{control['action'][8:]} request {control['request_id']} by {control['actor_sub']} was "
                           f"accepted with no result or approval within {rules.control_follow_up_days:g} days",
                           [control], actor=control["actor_sub"], subject=control["subject_masked"],
                           facts={"action": control["action"][8:], "request_id": control["request_id"],
                                  "actor": control["actor_sub"], "days": f"{rules.control_follow_up_days:g}"}))
    return found


def find_anomalies(events: Iterable[Event], rules: AnomalyRules, *, now: datetime) -> list[Anomaly]:
    """Every rule over the same events, oldest anomaly first."""
    rows = list(events)
    found = (outside_office_hours(rows, rules) + many_subjects_per_officer(rows, rules)
             + many_courts_per_subject(rows, rules) + repeated_queries(rows, rules)
             + refused_purpose_checks(rows, rules) + controls_without_follow_up(rows, rules, now=now))
    return sorted(found, key=lambda a: (a.first_at, a.rule))
