"""Public security controls end to end on loopback: PublicSecurityCodec +
RestTransport against the real public security sandbox (vehicle seal and
release, watch), and the sandbox's side of the controls contract over HTTP."""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import uuid
from dataclasses import replace
from datetime import date, timedelta
from typing import Any, Callable, Iterator

import pytest
import requests

from adapters.codecs.public_security import PublicSecurityCodec
from adapters.errors import AgencyRefused, AgencyUnavailable, OutgoingInvalid
from adapters.interfaces import AgencyAnswer, ControlLine, DeliveryOrder, Envelope, SubjectRef
from adapters.transports.rest import RestTransport
from sandboxes.public_security import create_app, describe_subject
from sandboxes.server import FaultKnobs, SandboxServer
from schemas.canonical import AssetRecordSchema, ControlOutcomeSchema
from schemas.identifiers import resident_id_check_digit
from gateway.timeutil import court_today

PREFIX = "/psb/v1"
COURT, OTHER_COURT = "330102", "330106"
BASIS = "(2024)浙0102执1234号之一"


def resident_ids() -> Iterator[str]:
    for sequence in itertools.count():
        body = f"33010219800101{sequence:03d}"
        yield body + resident_id_check_digit(body)


@functools.lru_cache(maxsize=None)
def owner(vehicle_state: str) -> str:
    """A resident whose first vehicle is in ``vehicle_state`` (``A`` free, ``K`` sealed by another court)."""
    def fits(n: str) -> bool:
        vehicles = describe_subject(n, "张三", categories=("CL",))["CL"]
        return bool(vehicles) and vehicles[0]["ZT"] == vehicle_state
    return next(n for n in resident_ids() if fits(n))


def plate_of(person: str) -> str:
    return describe_subject(person, "张三", categories=("CL",))["CL"][0]["HPHM"]


def today() -> date:
    return court_today()


def order(person: str, action: str, *lines: ControlLine, message_id: str, **changes) -> DeliveryOrder:
    base = DeliveryOrder(
        message_id=message_id, action=action,
        categories={"inquiry": ("vehicle",), "watch": ("whereabouts",)}.get(action, ("vehicle",)),
        subject=SubjectRef(kind="person", name="张三", id_number=person), case_number="(2024)浙0102执1234号",
        court_code=COURT, officer="officer.wang", legal_basis_kind="ruling", legal_basis_number=BASIS, lines=lines,
    )
    return replace(base, **changes)


class Bureau:
    def __init__(self, knobs: FaultKnobs | None = None):
        self.app = create_app(knobs)
        self.server = SandboxServer(self.app).start()
        self.codec = PublicSecurityCodec()
        self.transport = RestTransport(self.server.url + PREFIX, timeout_seconds=5)

    @property
    def state(self):
        return self.app.extensions["psb_sandbox"]

    def deliver(self, order: DeliveryOrder) -> AgencyAnswer:
        return self.exchange(self.codec.encode(order))

    def exchange(self, envelope: Envelope) -> AgencyAnswer:
        answer = self.codec.decode(self.transport.send(envelope), envelope)
        AssetRecordSchema(many=True).load(answer.assets)
        ControlOutcomeSchema(many=True).load(answer.controls)
        return answer

    def seal(self, person: str, plate: str, message_id: str, days: int = 365, **changes) -> dict[str, Any]:
        (outcome,) = self.deliver(order(person, "seal", ControlLine(plate, until=today() + timedelta(days=days)),
                                        message_id=message_id, **changes)).controls
        return outcome

    def release(self, person: str, plate: str, reference: str, message_id: str, **changes) -> dict[str, Any]:
        (outcome,) = self.deliver(order(person, "release", ControlLine(plate, original_reference=reference),
                                        message_id=message_id, **changes)).controls
        return outcome

    def vehicle(self, person: str, message_id: str) -> dict[str, Any]:
        return self.deliver(order(person, "inquiry", message_id=message_id)).assets[0]

    def stop(self) -> None:
        self.transport.close()
        self.server.stop()


@pytest.fixture
def start_bureau() -> Iterator[Callable[..., Bureau]]:
    started: list[Bureau] = []

    def start(knobs: FaultKnobs | None = None) -> Bureau:
        started.append(Bureau(knobs))
        return started[-1]

    yield start
    for bureau in started:
        bureau.stop()


@pytest.fixture
def bureau(start_bureau) -> Bureau:
    return start_bureau()


# --- through the codec ---------------------------------------------------------------


def test_a_seal_sets_state_k_for_the_term_and_a_release_lifts_it(bureau):
    person = owner("A")
    plate = plate_of(person)
    assert bureau.vehicle(person, "inq-0")["details"]["state"] == "A"

    sealed = bureau.seal(person, plate, "seal-1", days=500)

    assert (sealed["outcome"], sealed["identifier"], sealed["category"]) == ("controlled", plate, "vehicle")
    assert (sealed["effective_from"], sealed["until"]) == (today().isoformat(), (today() + timedelta(days=500)).isoformat())
    after = bureau.vehicle(person, "inq-1")
    assert after["details"]["state"] == "K" and "state K: sealed" in after["encumbrances"]

    released = bureau.release(person, plate, sealed["agency_reference"], "rel-1")

    assert (released["outcome"], released["effective_from"]) == ("released", today().isoformat())
    assert bureau.vehicle(person, "inq-2")["details"]["state"] == "A"


def test_a_vehicle_sealed_by_another_court_gives_a_queued_seal(bureau):
    person = owner("K")
    queued = bureau.seal(person, plate_of(person), "seal-q")
    assert queued["outcome"] == "queued" and queued["queue_position"] == 1
    (ahead,) = queued["ahead"]
    assert ahead.startswith("court ") and COURT not in ahead


def test_a_second_court_queues_behind_us_and_takes_over_on_release(bureau):
    person = owner("A")
    plate = plate_of(person)
    ours = bureau.seal(person, plate, "seal-ours")
    theirs = bureau.seal(person, plate, "seal-theirs", days=100, court_code=OTHER_COURT)
    assert theirs["outcome"] == "queued"
    assert theirs["ahead"] == [f"court {COURT}, {BASIS}, until {today() + timedelta(days=365)}"]

    refused = bureau.release(person, plate, ours["agency_reference"], "rel-theirs", court_code=OTHER_COURT)
    assert refused["outcome"] == "not_controlled" and "another court" in refused["reason"]

    bureau.release(person, plate, ours["agency_reference"], "rel-ours")
    assert bureau.vehicle(person, "inq-k")["details"]["state"] == "K"  # the queued seal took effect
    bureau.release(person, plate, theirs["agency_reference"], "rel-2", court_code=OTHER_COURT)
    assert bureau.vehicle(person, "inq-a")["details"]["state"] == "A"


def test_a_seal_lapses_at_the_end_of_its_term(bureau):
    person = owner("A")
    plate = plate_of(person)
    bureau.seal(person, plate, "seal-short", days=5)
    bureau.state.vehicles.today = lambda: today() + timedelta(days=6)
    assert bureau.vehicle(person, "inq-lapsed")["details"]["state"] == "A"


@pytest.mark.parametrize(("plate", "days", "reason"), [
    ("京Z00000", 365, "not registered to this subject"),
    (None, 3 * 366, "over 2 years"),
])
def test_seals_the_bureau_will_not_place(bureau, plate, days, reason):
    person = owner("A")
    outcome = bureau.seal(person, plate or plate_of(person), "seal-no", days=days)
    assert outcome["outcome"] == "not_controlled" and reason in outcome["reason"]
    assert bureau.vehicle(person, "inq-no")["details"]["state"] == "A"


def test_a_watch_is_registered_once_per_subject_and_court(bureau):
    person = owner("A")
    (first,) = bureau.deliver(order(person, "watch", message_id="watch-1")).controls
    assert (first["outcome"], first["category"]) == ("watching", "whereabouts")
    assert first["identifier"] == first["agency_reference"] and first["identifier"].startswith("BK")
    assert first["until"] == (today() + timedelta(days=365)).isoformat()
    (again,) = bureau.deliver(order(person, "watch", message_id="watch-2")).controls
    assert again["agency_reference"] == first["agency_reference"]
    until = today() + timedelta(days=90)
    (other,) = bureau.deliver(order(person, "watch", ControlLine("whereabouts", until=until), message_id="watch-3",
                                    court_code=OTHER_COURT)).controls
    assert other["agency_reference"] != first["agency_reference"] and other["until"] == until.isoformat()


def test_a_repeated_message_id_places_no_second_seal(bureau):
    person = owner("A")
    plate = plate_of(person)
    envelope = bureau.codec.encode(order(person, "seal", ControlLine(plate, until=today() + timedelta(days=30)),
                                         message_id="seal-dup"))
    first, repeat = bureau.exchange(envelope), bureau.exchange(envelope)
    assert repeat.raw == first.raw and first.controls[0]["outcome"] == "controlled"
    # Had the repeat been carried out, it would have queued behind the first seal.
    other = bureau.seal(person, plate, "seal-next", court_code=OTHER_COURT)
    assert other["queue_position"] == 1
    assert bureau.state.duplicate_count == 1


def test_an_invalid_control_is_never_sent(bureau):
    person = owner("A")
    with pytest.raises(OutgoingInvalid, match=r"Control\.CL\[0\]\.JZRQ"):
        bureau.deliver(order(person, "seal", ControlLine(plate_of(person)), message_id="never"))
    with pytest.raises(OutgoingInvalid, match=r"Head\.WSH"):
        bureau.deliver(order(person, "watch", message_id="never-2", legal_basis_kind=None, legal_basis_number=None))
    assert bureau.state.calls == 0


def test_refusals_and_unavailability_map_to_adapter_errors(start_bureau):
    bureau = start_bureau()
    person = owner("A")
    envelope = bureau.codec.encode(order(person, "seal", ControlLine(plate_of(person), until=today() + timedelta(days=30)),
                                         message_id="seal-bad"))
    broken = replace(envelope, body=envelope.body.replace(b'"KZLX":"CF"', b'"KZLX":"XX"'))
    with pytest.raises(AgencyRefused, match=r"code 3000: Control\.KZLX"):
        bureau.exchange(broken)
    busy = start_bureau(FaultKnobs(failure_rate=1.0))
    with pytest.raises(AgencyUnavailable, match="HTTP 503"):
        busy.exchange(envelope)
    assert (busy.state.calls, busy.state.answered_count) == (1, 0)


# --- the sandbox's side of the contract, without the codec ----------------------------------


def control_document(person: str, kind: str = "CF", **control) -> dict:
    lines = {"CF": [{"HPHM": plate_of(person), "JZRQ": (court_today() + timedelta(days=30)).isoformat()}],
             "JF": [{"HPHM": plate_of(person), "YCFBH": "CF00000001"}]}
    body = {"KZLX": kind, "XM": "张三", "ZJZL": "1", "ZJHM": person, **({"CL": lines[kind]} if kind in lines else {}), **control}
    return {"Head": {"XXID": str(uuid.uuid4()), "CJSJ": "2026-11-23T10:00:00Z", "FYDM": COURT, "CBR": "officer.wang",
                     "AH": "(2024)浙0102执1234号", "WSLX": "ruling", "WSH": BASIS}, "Control": body}


CONTROL_VIOLATIONS = [
    ("no legal basis", lambda d: (d["Head"].pop("WSLX"), d["Head"].pop("WSH")), "Head.WSH"),
    ("unknown kind", lambda d: d["Control"].__setitem__("KZLX", "KY"), "Control.KZLX"),
    ("seal without JZRQ", lambda d: d["Control"]["CL"][0].pop("JZRQ"), "Control.CL[0].JZRQ"),
    ("seal with YCFBH", lambda d: d["Control"]["CL"][0].__setitem__("YCFBH", "CF1"), "Control.CL[0].YCFBH"),
    ("bad JZRQ", lambda d: d["Control"]["CL"][0].__setitem__("JZRQ", "2027/01/01"), "Control.CL[0].JZRQ"),
    ("repeated plate", lambda d: d["Control"]["CL"].append(dict(d["Control"]["CL"][0])), "Control.CL[1].HPHM"),
    ("empty CL", lambda d: d["Control"].__setitem__("CL", []), "Control.CL"),
    ("watch end on a seal", lambda d: d["Control"].__setitem__("BKJZRQ", "2027-01-01"), "Control.BKJZRQ"),
    ("unknown field", lambda d: d["Control"].__setitem__("HPZL", "02"), "Control.HPZL"),
]


@pytest.mark.parametrize("change, field", [v[1:] for v in CONTROL_VIOLATIONS], ids=[v[0] for v in CONTROL_VIOLATIONS])
def test_control_violations_are_refused_naming_the_field(bureau, change, field):
    document = control_document(owner("A"))
    change(document)
    body = json.dumps(document, ensure_ascii=False).encode()
    response = requests.post(f"{bureau.server.url}{PREFIX}/controls", data=body, timeout=5,
                             headers={"Content-Type": "application/json; charset=utf-8", "X-Message-Id": document["Head"]["XXID"]})
    assert response.status_code == 400
    assert response.json()["Head"]["RESPONSECODE"] == "3000"
    assert response.json()["Head"]["RESPONSEINFO"].startswith(f"{field}: "), response.json()["Head"]["RESPONSEINFO"]
    assert bureau.state.answered_count == 0


def test_a_watch_answer_on_the_wire(bureau):
    document = control_document(owner("A"), "BK", BKJZRQ=(court_today() + timedelta(days=10)).isoformat())
    body = json.dumps(document, ensure_ascii=False).encode()
    response = requests.post(f"{bureau.server.url}{PREFIX}/controls", data=body, timeout=5,
                             headers={"Content-Type": "application/json; charset=utf-8", "X-Message-Id": document["Head"]["XXID"]})
    answer = response.json()
    assert answer["Head"]["QQSHA256"] == hashlib.sha256(body).hexdigest()
    assert set(answer["Data"]) == {"BK"} and set(answer["Data"]["BK"]) == {"BKBH", "QSRQ", "JZRQ"}
