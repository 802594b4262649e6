"""Re-inquiries of terminated cases on the housekeeper (gateway/background) (art. 9: every six months for
five years), and what their answers mean.

Each round makes one inquiry per debtor through the ordinary intake
(``prepare_request``: the purpose rule with the case's court, routing, the reuse
window), attributed to ``gateway:termination`` with an Idempotency-Key naming the
termination, round and debtor, and audited. A round whose inquiries have all
finished is compared with the assets known at termination; what is new makes the
case resumable (a "resume" follow-up item, a ``case.resumable`` webhook), and the
result is recorded as the creditor's notice whether anything was found or not.

Runs at most every ``interval_seconds``; ``run_once`` does one pass now (tests and
the demo, with the app's clock moved on).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any, Callable, Sequence

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from audit.store import AuditLog, SystemActor
from gateway.auth.tokens import Principal
from gateway.batches.services import Intake
from gateway.cases.models import Case, Subject
from gateway.db import Database, rows_matched
from gateway.deliveries.models import Delivery
from gateway.deliveries.states import DeliveryState
from gateway.errors import GatewayError, RuleViolation
from gateway.requests import services as requests
from gateway.requests.models import Request
from gateway.requests.states import SETTLED
from gateway.settings import TerminationSection
from gateway.termination import rules
from gateway.termination.models import TERMINATED, CaseTermination, TerminationRequery
from gateway.termination.services import debtor_label, debtors_of, found_assets, serving_agencies
from gateway.timeutil import as_utc, new_id, utc_now
from schemas.identifiers import mask_id_number

log = logging.getLogger(__name__)
SYSTEM_SUB = "gateway:termination"
SYSTEM = SystemActor(sub=SYSTEM_SUB)
FINISHED = SETTLED  # a request that will not move again


class _Taken(Exception):
    """Another process made this round meanwhile."""


class TerminationWatch:
    def __init__(self, db: Database, audit: AuditLog, intake: Intake, settings: TerminationSection, *,
                 on_work: Callable[[], None] | None = None):
        self.db, self.audit, self.intake, self.settings = db, audit, intake, settings
        self.on_work = on_work
        # None: the first pass runs at once (the monotonic clock may start near 0 after a boot).
        self._last: float | None = None

    def maybe_run(self) -> None:
        if self._last is not None and time.monotonic() - self._last < self.settings.interval_seconds:
            return
        self._last = time.monotonic()
        self.run_once()

    def run_once(self) -> dict[str, list[str]]:
        """One pass: rounds due are made, rounds answered are finished. Returns their ids."""
        now = self.intake.clock()
        with self.db.reading() as session:
            due = list(session.scalars(select(CaseTermination.id).where(
                CaseTermination.state == TERMINATED, CaseTermination.next_requery_at.is_not(None),
                CaseTermination.next_requery_at <= now)))
        made = [r for r in (self._make_round(t, now) for t in due) if r]
        if made and self.on_work:
            self.on_work()
        with self.db.reading() as session:  # a round answered from reuse finishes in the pass that made it
            waiting = list(session.scalars(select(TerminationRequery.id).where(TerminationRequery.state == "asked")))
        finished = [r for r in (self._finish_round(r, now) for r in waiting) if r]
        return {"made": made, "finished": finished}

    # --- making a round ----------------------------------------------------------------

    def _make_round(self, termination_id: str, now: datetime) -> str | None:
        with self.db.reading() as session:
            row = session.get_one(CaseTermination, termination_id)
            if row.state != TERMINATED or row.next_requery_at is None or as_utc(row.next_requery_at) > now:
                return None  # resumed, ended, or made by another pass meanwhile
            case = session.get_one(Case, row.case_id)
            debtors = [(s.id, s.kind, s.name, s.id_number) for s in debtors_of(case)]
            round_number, due_at, terminated_at, until = row.next_round, row.next_requery_at, row.terminated_at, \
                row.requery_until
            case_number, court = case.case_number, case.court_code
            asked_at_termination = list(row.categories)
            categories = [c for c in asked_at_termination if serving_agencies(self.intake.registry, [c])[c]]
        principal = Principal(sub=SYSTEM_SUB, role="system", court=court)
        next_round, following = rules.following_round(as_utc(terminated_at), round_number,
                                                      self.settings.requery_every_months, as_utc(until), now)
        round_id = new_id()
        # The outbox runs on the worker's clock, not on the schedule's (which tests and the demo
        # move on): deliveries due now, and the reuse window measured against real answer times.
        sent_at = utc_now()
        try:
            if not categories:
                raise RuleViolation(f"no agency of the registry answers an inquiry for "
                                    f"{', '.join(asked_at_termination)} any more")
            with self.db.connection_transaction() as connection:
                advanced = connection.execute(
                    update(CaseTermination.__table__)
                    .where(CaseTermination.id == termination_id, CaseTermination.next_round == round_number,
                           CaseTermination.state == TERMINATED)
                    .values(next_round=next_round, next_requery_at=following))
                if advanced.rowcount != 1:
                    raise _Taken()
                request_ids = []
                for subject_id, kind, name, id_number in debtors:
                    payload = {"case_number": case_number, "action": "inquiry", "categories": categories,
                               "subject": {"kind": kind, "name": name, "id_number": id_number},
                               "documents": [], "targets": []}
                    key = f"termination:{termination_id}:{round_number}:{subject_id}"
                    prepared = requests.prepare_request(
                        connection, payload, principal=principal, idempotency_key=key,
                        digest=requests.payload_digest(payload), registry=self.intake.registry, now=sent_at,
                        reuse_window=self.intake.reuse_window, rules=self.intake.rules,
                        max_document_bytes=self.intake.max_document_bytes, limits=None)
                    prepared.audit_event["details"]["termination"] = {"id": termination_id, "round": round_number}
                    requests.write_request(connection, prepared, principal=principal, audit=self.audit)
                    request_ids.append(prepared.request_row["id"])
                connection.execute(insert(TerminationRequery.__table__), [{
                    "id": round_id, "termination_id": termination_id, "round": round_number, "due_at": due_at,
                    "made_at": now, "request_ids": request_ids, "state": "asked", "new_assets": None,
                    "finished_at": None, "creditor_notice": None}])
                self.audit.record(connection, action="termination.requery", outcome="asked", actor=SYSTEM,
                                  case_number=case_number, details={
                                      "termination": termination_id, "round": round_number, "requests": request_ids,
                                      "categories": categories, "next_requery_at": _iso(following)})
        except (_Taken, IntegrityError):
            return None
        except GatewayError as exc:  # the intake refused (no agency serves...): recorded, the schedule goes on
            with self.db.transaction() as session:
                taken = rows_matched(session.execute(
                    update(CaseTermination).where(CaseTermination.id == termination_id,
                                                  CaseTermination.next_round == round_number)
                    .values(next_round=next_round, next_requery_at=following)))
                if taken != 1:
                    return None
                session.add(TerminationRequery(
                    id=round_id, termination_id=termination_id, round=round_number, due_at=due_at, made_at=now,
                    request_ids=[], state="refused", finished_at=now,
                    creditor_notice={"refused": exc.message[:500], "code": exc.code}))
                self.audit.record(session, action="termination.requery", outcome="refused", actor=SYSTEM,
                                  case_number=case_number, details={"termination": termination_id,
                                                                    "round": round_number, "code": exc.code,
                                                                    "reason": exc.message[:500]})
            return round_id
        log.info("termination %s: re-inquiry round %d made", termination_id, round_number)
        return round_id

    # --- finishing a round ---------------------------------------------------------------

    def _finish_round(self, round_id: str, now: datetime) -> str | None:
        with self.db.transaction() as session:
            requery = session.get(TerminationRequery, round_id, with_for_update=True)
            if requery is None or requery.state != "asked":
                return None
            made = session.execute(select(Request.id, Request.state, Request.subject_id)
                                   .where(Request.id.in_(requery.request_ids))).all()
            if any(r.state not in FINISHED for r in made):
                return None  # answers still awaited
            termination = session.get_one(CaseTermination, requery.termination_id, with_for_update=True)
            case = session.get_one(Case, termination.case_id)
            found = found_assets(session, list(requery.request_ids))
            fresh = rules.new_assets(termination.known_assets, found)
            requery.state, requery.finished_at, requery.new_assets = "finished", now, fresh
            if fresh and termination.state == TERMINATED and termination.resumable_since is None:
                termination.resumable_since = now
            requery.creditor_notice = _notice(session, case, requery, made, found, fresh)
            session.flush()
            self.audit.record(session, action="termination.requery", outcome="found" if fresh else "nothing_new",
                              actor=SYSTEM, case_number=case.case_number, details={
                                  "termination": termination.id, "round": requery.round,
                                  "requests": list(requery.request_ids), "assets_found": len(found),
                                  "new_assets": _asset_lines(fresh)})
            self.audit.record(session, action="termination.creditor_notified", outcome="recorded", actor=SYSTEM,
                              case_number=case.case_number, details={
                                  "termination": termination.id, "round": requery.round,
                                  **requery.creditor_notice})
        return round_id


def _asset_lines(assets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"agency": a["agency"], "category": a.get("category"), "identifier": a["identifier"],
             "balance": a.get("balance"), "value": a.get("value")} for a in assets]


def _notice(session: Any, case: Case, requery: TerminationRequery, made: Sequence[Any], found: list[dict[str, Any]],
            fresh: list[dict[str, Any]]) -> dict[str, Any]:
    """What the creditor is told (art. 9): each debtor's result, what is new, what went unanswered."""
    creditors = [p.subject for p in case.parties if p.role == "creditor"]
    debtors = {s.id: s for s in session.scalars(select(Subject).where(Subject.id.in_([r.subject_id for r in made])))}
    unanswered: dict[str, list[str]] = {}
    for request_id, agency_id in session.execute(select(Delivery.request_id, Delivery.agency_id).where(
            Delivery.request_id.in_([r.id for r in made]), Delivery.state != DeliveryState.ANSWERED)):
        unanswered.setdefault(request_id, []).append(agency_id)
    return {
        "creditors": [debtor_label(s) for s in creditors],
        "results": [{"debtor": debtor_label(debtors[r.subject_id]), "request_id": r.id, "state": r.state,
                     "assets_found": sum(1 for a in found if a["subject_id"] == r.subject_id),
                     "unanswered": sorted(unanswered.get(r.id, []))} for r in made],
        "new_assets": [{**line, "debtor": mask_id_number(debtors[a["subject_id"]].id_number)}
                       for line, a in zip(_asset_lines(fresh), fresh, strict=True)],
        "resumable": bool(fresh),
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
