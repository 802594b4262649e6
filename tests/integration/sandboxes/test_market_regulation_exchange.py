"""Market regulation end to end on loopback: MarketRegulationCodec + RestTransport
against the real market regulation sandbox over HTTP.

Every answer the codec produces is loaded with the canonical schemas; what the
register holds afterwards is read back with a following inquiry.
"""

from __future__ import annotations

import functools
import io
import itertools
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Callable, Iterator

import pytest

from adapters.codecs.market_regulation import MarketRegulationCodec
from adapters.errors import AgencyRefused, AgencyUnavailable, AnswerNotBound, IncomingInvalid, OutgoingInvalid
from adapters.interfaces import AgencyAnswer, ControlLine, DeliveryOrder, Envelope, SubjectRef
from adapters.transports.rest import RestTransport
from sandboxes.market_regulation import create_app, describe_subject
from sandboxes.market_regulation_data import initial_freeze, subject_seed
from sandboxes.server import FaultKnobs, SandboxServer
from schemas.canonical import AssetRecordSchema, ControlOutcomeSchema
from schemas.identifiers import resident_id_check_digit
from gateway.timeutil import court_today

PREFIX = "/samr/v1"
COURT, OTHER_COURT = "330102", "330106"
BASIS = "(2024)浙0102执1234号之一"


def resident_ids() -> Iterator[str]:
    for sequence in itertools.count():
        body = f"33010219800101{sequence:03d}"
        yield body + resident_id_check_digit(body)


def knows_nothing(id_number: str) -> bool:
    return subject_seed(id_number)[0] % 8 == 0


@functools.lru_cache(maxsize=None)
def person_with(predicate_name: str) -> str:
    """A resident whose holdings fit the named shape (found once, deterministic)."""
    def holdings(n: str) -> list[dict]:
        return describe_subject(n, "张三")["GQ"]

    predicates: dict[str, Callable[[str], bool]] = {
        # two holdings, the first free of any freeze, the second already frozen by another court
        "free_and_frozen": lambda n: len(holdings(n)) >= 2 and initial_freeze(n, holdings(n)[0]["UniSCID"]) is None
        and initial_freeze(n, holdings(n)[1]["UniSCID"]) is not None,
        "nothing": knows_nothing,
    }
    return next(n for n in resident_ids() if predicates[predicate_name](n))


def today() -> date:
    return court_today()


class Agency:
    """The codec, a transport and one running sandbox: deliver orders as the worker would."""

    def __init__(self, server: SandboxServer, app):
        self.server, self.app = server, app
        self.codec = MarketRegulationCodec()
        self.transport = RestTransport(server.url + PREFIX, timeout_seconds=5)

    @property
    def state(self):
        return self.app.extensions["samr_sandbox"]

    def deliver(self, order: DeliveryOrder) -> AgencyAnswer:
        envelope = self.codec.encode(order)
        return self.exchange(envelope)

    def exchange(self, envelope: Envelope) -> AgencyAnswer:
        answer = self.codec.decode(self.transport.send(envelope), envelope)
        AssetRecordSchema(many=True).load(answer.assets)
        ControlOutcomeSchema(many=True).load(answer.controls)
        return answer

    def equity(self, id_number: str, message_id: str, **changes) -> dict[str, dict[str, Any]]:
        answer = self.deliver(order(id_number, message_id=message_id, categories=("equity",), **changes))
        return {asset["identifier"]: asset for asset in answer.assets}


def order(id_number: str, *, message_id: str, action: str = "inquiry", kind: str = "person",
          categories: tuple[str, ...] = ("enterprise", "equity"), **changes) -> DeliveryOrder:
    base = DeliveryOrder(
        court_date=court_today(),
        message_id=message_id, action=action, categories=categories,
        subject=SubjectRef(kind=kind, name="张三" if kind == "person" else "杭州某某科技有限公司", id_number=id_number),
        case_number="(2024)浙0102执1234号", court_code=COURT, officer="officer.wang",
        legal_basis_kind="ruling", legal_basis_number=BASIS,
    )
    return replace(base, **changes)


def control(id_number: str, action: str, *lines: ControlLine, message_id: str, **changes) -> DeliveryOrder:
    return order(id_number, message_id=message_id, action=action, categories=("equity",), lines=lines, **changes)


@pytest.fixture
def start_agency() -> Iterator[Callable[..., Agency]]:
    started: list[Agency] = []

    def start(knobs: FaultKnobs | None = None, wrap: Callable | None = None) -> Agency:
        app = create_app(knobs)
        server = SandboxServer(wrap(app) if wrap else app).start()
        started.append(Agency(server, app))
        return started[-1]

    yield start
    for agency in started:
        agency.transport.close()
        agency.server.stop()


@pytest.fixture
def agency(start_agency) -> Agency:
    return start_agency()


# --- inquiries ---------------------------------------------------------------------


def test_a_person_inquiry_reports_equity_and_existing_freezes(agency):
    person = person_with("free_and_frozen")
    expected = describe_subject(person, "张三")["GQ"]

    answer = agency.deliver(order(person, message_id="inq-1"))

    assert [a["category"] for a in answer.assets] == ["equity"] * len(expected)
    assert [a["identifier"] for a in answer.assets] == [h["UniSCID"] for h in expected]
    assert [a["value"] for a in answer.assets] == [h["SubConAm"] for h in expected]
    free, frozen = answer.assets[0], answer.assets[1]
    assert free["encumbrances"] == []
    held = initial_freeze(person, frozen["identifier"])
    assert len(frozen["encumbrances"]) == 1
    assert f"frozen by court {held['ExeCourt']}, {held['RulingNo']}" in frozen["encumbrances"][0]
    assert held["FrozNo"] in frozen["encumbrances"][0]


def test_an_organisation_inquiry_reports_its_registration_and_holdings(agency):
    code = next(c for c in (f"91330100MA{n:07d}X" for n in itertools.count())
                if not knows_nothing(c) and describe_subject(c, "x", "20")["GQ"])
    expected = describe_subject(code, "杭州某某科技有限公司", "20")

    answer = agency.deliver(order(code, message_id="inq-org", kind="organization"))

    enterprise = answer.assets[0]
    assert (enterprise["category"], enterprise["identifier"]) == ("enterprise", code)
    assert enterprise["details"]["legal_representative"] == expected["QYDJ"]["LeRep"]
    assert enterprise["details"]["registration_number"] == expected["QYDJ"]["RegNo"]
    assert [a["identifier"] for a in answer.assets[1:]] == [h["UniSCID"] for h in expected["GQ"]]


def test_a_subject_the_register_knows_nothing_about(agency):
    assert agency.deliver(order(person_with("nothing"), message_id="inq-none")).assets == []


# --- freeze, queue, renew, release, lapse ---------------------------------------------


def test_a_freeze_takes_effect_and_shows_on_the_next_inquiry(agency):
    person = person_with("free_and_frozen")
    company = describe_subject(person, "张三")["GQ"][0]["UniSCID"]
    until = today() + timedelta(days=700)

    frozen = agency.deliver(control(person, "freeze", ControlLine(company, amount=Decimal("1000.00"), until=until),
                                    message_id="frz-1"))

    (outcome,) = frozen.controls
    assert outcome["outcome"] == "controlled"
    assert (outcome["amount_requested"], outcome["amount_controlled"]) == ("1000.00", "1000.00")
    assert (outcome["effective_from"], outcome["until"]) == (today().isoformat(), until.isoformat())
    encumbrances = agency.equity(person, "inq-after")[company]["encumbrances"]
    assert encumbrances == [f"frozen by court {COURT}, {BASIS}: 1000.00 yuan until {until} ({outcome['agency_reference']})"]


def test_freezing_equity_already_frozen_is_queued_behind_who_holds_it(agency):
    person = person_with("free_and_frozen")
    company = describe_subject(person, "张三")["GQ"][1]["UniSCID"]
    held = initial_freeze(person, company)

    queued = agency.deliver(control(person, "freeze", ControlLine(company, until=today() + timedelta(days=365)),
                                    message_id="frz-q"))

    (outcome,) = queued.controls
    assert outcome["outcome"] == "queued" and outcome["queue_position"] == 1
    assert outcome["ahead"] == [f"court {held['ExeCourt']}, {held['RulingNo']}, until {held['FroTo']}"]
    listed = agency.equity(person, "inq-q")[company]["details"]["freezes"]
    assert [(f["reference"], f["queue_position"]) for f in listed] == [(held["FrozNo"], None), (outcome["agency_reference"], 1)]


def test_more_than_the_holding_is_partly_controlled(agency):
    person = person_with("free_and_frozen")
    holding = describe_subject(person, "张三")["GQ"][0]
    asked = Decimal(holding["SubConAm"]) + 1
    answer = agency.deliver(control(person, "freeze", ControlLine(holding["UniSCID"], amount=asked, until=today() + timedelta(days=30)),
                                    message_id="frz-big"))
    (outcome,) = answer.controls
    assert outcome["outcome"] == "partly_controlled"
    assert outcome["amount_controlled"] == holding["SubConAm"]


def test_a_second_court_queues_renewal_extends_release_promotes_the_queue(agency):
    person = person_with("free_and_frozen")
    company = describe_subject(person, "张三")["GQ"][0]["UniSCID"]
    first = agency.deliver(control(person, "freeze", ControlLine(company, until=today() + timedelta(days=300)),
                                   message_id="frz-a")).controls[0]
    second = agency.deliver(control(person, "freeze", ControlLine(company, until=today() + timedelta(days=200)),
                                    message_id="frz-b", court_code=OTHER_COURT)).controls[0]
    assert second["outcome"] == "queued"
    assert second["ahead"] == [f"court {COURT}, {BASIS}, until {today() + timedelta(days=300)}"]

    longer = today() + timedelta(days=900)
    renewed = agency.deliver(control(person, "renew", ControlLine(company, until=longer, original_reference=first["agency_reference"]),
                                     message_id="renew-a")).controls[0]
    assert (renewed["outcome"], renewed["until"], renewed["agency_reference"]) == ("controlled", longer.isoformat(), first["agency_reference"])
    assert f"until {longer}" in agency.equity(person, "inq-renewed")[company]["encumbrances"][0]

    not_theirs = agency.deliver(control(person, "unfreeze", ControlLine(company, original_reference=first["agency_reference"]),
                                        message_id="rel-other", court_code=OTHER_COURT)).controls[0]
    assert not_theirs["outcome"] == "not_controlled" and "another court" in not_theirs["reason"]

    released = agency.deliver(control(person, "unfreeze", ControlLine(company, original_reference=first["agency_reference"]),
                                      message_id="rel-a")).controls[0]
    assert (released["outcome"], released["effective_from"]) == ("released", today().isoformat())
    (now_in_force,) = agency.equity(person, "inq-released")[company]["details"]["freezes"]
    assert (now_in_force["reference"], now_in_force["court"], now_in_force["queue_position"]) == (
        second["agency_reference"], OTHER_COURT, None)

    again = agency.deliver(control(person, "unfreeze", ControlLine(company, original_reference=first["agency_reference"]),
                                   message_id="rel-again")).controls[0]
    assert again["outcome"] == "not_controlled" and "released" in again["reason"]


def test_a_freeze_past_its_term_lapses_and_cannot_be_renewed(agency):
    person = person_with("free_and_frozen")
    company = describe_subject(person, "张三")["GQ"][0]["UniSCID"]
    until = today() + timedelta(days=10)
    placed = agency.deliver(control(person, "freeze", ControlLine(company, until=until), message_id="frz-l")).controls[0]

    agency.state.equity.today = lambda: until + timedelta(days=1)

    assert agency.equity(person, "inq-lapsed")[company]["encumbrances"] == []
    renewal = agency.deliver(control(person, "renew", ControlLine(company, until=until + timedelta(days=400),
                                                                  original_reference=placed["agency_reference"]),
                                     message_id="renew-l")).controls[0]
    assert renewal["outcome"] == "not_controlled"
    assert "lapsed" in renewal["reason"]


@pytest.mark.parametrize(("line", "reason"), [
    (lambda company: ControlLine("91330100MA0000000X", until=today() + timedelta(days=30)), "holds no equity"),
    (lambda company: ControlLine(company, until=today() + timedelta(days=4 * 366)), "over 3 years"),
])
def test_freezes_the_register_will_not_place(agency, line, reason):
    person = person_with("free_and_frozen")
    company = describe_subject(person, "张三")["GQ"][0]["UniSCID"]
    (outcome,) = agency.deliver(control(person, "freeze", line(company), message_id="frz-no")).controls
    assert outcome["outcome"] == "not_controlled" and reason in outcome["reason"]
    assert agency.equity(person, "inq-no")[company]["encumbrances"] == []


# --- duplicates, never-sent messages, errors on the wire ------------------------------------


def test_a_repeated_message_id_gets_the_same_answer_and_no_second_freeze(agency):
    person = person_with("free_and_frozen")
    company = describe_subject(person, "张三")["GQ"][0]["UniSCID"]
    envelope = agency.codec.encode(control(person, "freeze", ControlLine(company, until=today() + timedelta(days=60)),
                                           message_id="frz-dup"))

    first = agency.exchange(envelope)
    repeat = agency.exchange(envelope)  # the worker retries with the stored request bytes

    assert repeat.raw == first.raw
    assert repeat.controls == first.controls and first.controls[0]["outcome"] == "controlled"
    assert len(agency.equity(person, "inq-dup")[company]["encumbrances"]) == 1
    assert (agency.state.answered_count, agency.state.duplicate_count) == (2, 1)


def test_an_invalid_outgoing_message_is_never_sent(agency):
    person = person_with("free_and_frozen")
    with pytest.raises(OutgoingInvalid, match=r"Execute\.Items\[0\]\.FroTo"):
        agency.deliver(control(person, "freeze", ControlLine("91330100MA0000000X"), message_id="never"))
    assert agency.state.calls == 0


def test_a_refusal_is_agency_refused_naming_the_field(agency):
    envelope = agency.codec.encode(order(person_with("free_and_frozen"), message_id="bad-cer"))
    broken = replace(envelope, body=envelope.body.replace(b'"CerType":"10"', b'"CerType":"99"'))
    with pytest.raises(AgencyRefused, match=r"HTTP 400 \(code 3000: Query\.CerType"):
        agency.exchange(broken)
    assert agency.state.rejected_count == 1


def test_an_unavailable_agency_is_retryable_and_nothing_happens(start_agency):
    agency = start_agency(FaultKnobs(failure_rate=1.0))
    person = person_with("free_and_frozen")
    company = describe_subject(person, "张三")["GQ"][0]["UniSCID"]
    with pytest.raises(AgencyUnavailable, match="HTTP 503") as info:
        agency.deliver(control(person, "freeze", ControlLine(company, until=today() + timedelta(days=60)), message_id="busy"))
    assert info.value.retryable
    assert (agency.state.calls, agency.state.failures_injected, agency.state.answered_count) == (1, 1, 0)


def tampering(side: str, old: bytes, new: bytes) -> Callable:
    """Wrap a sandbox so the request it reads (``side="request"``) or the answer it
    sends (``"answer"``) is altered on the wire: a broken link or a hostile peer."""
    def wrap(app):
        def middleware(environ, start_response):
            if side == "request":
                body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)).replace(old, new)
                environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(body), str(len(body))
                return app(environ, start_response)
            captured: dict[str, Any] = {}

            def capture(status, headers, exc_info=None):
                captured.update(status=status, headers=headers)

            body = b"".join(app(environ, capture)).replace(old, new)
            headers = [(k, str(len(body)) if k.lower() == "content-length" else v) for k, v in captured["headers"]]
            start_response(captured["status"], headers)
            return [body]
        return middleware
    return wrap


@pytest.mark.parametrize(("side", "old", "new", "error", "names"), [
    ("answer", b'"FrozState": "1"', b'"FrozState": "7"', IncomingInvalid, "Data.Items[0].FrozState:"),
    ("answer", b'"FroAm": "', b'"FroAm": "x', IncomingInvalid, "Data.Items[0].FroAm:"),
    ("answer", b'"XXID": "frz-wire"', b'"XXID": "frz-other"', AnswerNotBound, "answer is for message 'frz-other'"),
    ("request", b"officer.wang", b"officer.wan9", AnswerNotBound, "request hash does not match"),
])
def test_a_bad_answer_on_the_wire_is_refused(start_agency, side, old, new, error, names):
    agency = start_agency(wrap=tampering(side, old, new))
    person = person_with("free_and_frozen")
    company = describe_subject(person, "张三")["GQ"][0]["UniSCID"]
    with pytest.raises(error) as info:
        agency.deliver(control(person, "freeze", ControlLine(company, until=today() + timedelta(days=60)), message_id="frz-wire"))
    assert names in info.value.message
    assert info.value.raw
    assert agency.state.answered_count == 1  # the agency did answer: the gateway refuses what came back
