"""RealEstateCodec against the registry sandbox's logic (no transport): every action,
schema checks both ways, binding, error codes, hostile XML."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from lxml import etree

from adapters.codecs.real_estate import NS, RealEstateCodec
from adapters.errors import AgencyRefused, AgencyUnavailable, AnswerNotBound, IncomingInvalid, OutgoingInvalid
from adapters.interfaces import ControlLine, DeliveryOrder, Envelope, Reply, SubjectRef
from sandboxes.real_estate import RealEstateRegistry
from schemas import xml
from schemas.canonical import AssetRecordSchema, ControlOutcomeSchema
from schemas.identifiers import resident_id_check_digit
from gateway.timeutil import court_today

CASE = "(2024)浙0102执1234号"
IN_A_YEAR = court_today() + timedelta(days=365)


def person(n: int) -> SubjectRef:
    first = f"33010219800101{n:03d}"
    return SubjectRef("person", "张三", first + resident_id_check_digit(first))


def find_subject(registry: RealEstateRegistry, want) -> SubjectRef:
    for n in range(1, 999):
        subject = person(n)
        if want(registry.holdings(subject.id_number, subject.name)):
            return subject
    raise AssertionError("no test subject has those holdings")


def order(action: str, subject: SubjectRef, message_id: str = "d-1", lines: tuple[ControlLine, ...] = (),
          basis: bool = True) -> DeliveryOrder:
    return DeliveryOrder(
        message_id=message_id, action=action, categories=("real_estate",), subject=subject, case_number=CASE,
        court_code="330102", officer="officer.wang", lines=lines,
        legal_basis_kind="ruling" if basis else None, legal_basis_number="(2024)浙0102执1234号之一" if basis else None,
    )


@pytest.fixture
def codec() -> RealEstateCodec:
    return RealEstateCodec()


@pytest.fixture
def registry() -> RealEstateRegistry:
    return RealEstateRegistry(seed=0)


def exchange(codec: RealEstateCodec, registry: RealEstateRegistry, o: DeliveryOrder):
    envelope = codec.encode(o)
    return envelope, codec.decode(Reply(200, registry.handle(envelope.body)), envelope)


def test_inquiry_lists_titles_land_mortgages_and_seals_as_canonical_assets(codec, registry) -> None:
    subject = find_subject(registry, lambda h: h.mortgages and h.land and any(s.place == 2 for s in h.seals))
    held = registry.holdings(subject.id_number, subject.name)

    envelope, answer = exchange(codec, registry, order("inquiry", subject))

    assert answer.message_id == "d-1" and answer.request_sha256 == xml.digest(xml.parse(envelope.body))
    assert [a["identifier"] for a in answer.assets] == list(held.units)
    for asset in answer.assets:
        AssetRecordSchema().load(asset)  # raises if not canonical
    sealed = next(a for a in answer.assets if len(a["details"]["seals"]) == 2)
    first, second = sealed["details"]["seals"]
    assert (first["place"], first["in_force"], second["place"], second["in_force"]) == (1, True, 2, False)
    assert second["ahead"] == [f"{first['court']} {first['ruling']}"]
    assert any(e.startswith("mortgage to ") for a in answer.assets for e in a["encumbrances"])


def test_a_subject_with_nothing_gets_no_assets(codec, registry) -> None:
    subject = find_subject(registry, lambda h: not h.units)
    assert exchange(codec, registry, order("inquiry", subject))[1].assets == []


def test_seal_queue_renew_release_and_promotion(codec, registry) -> None:
    subject = find_subject(registry, lambda h: any(s.place == 1 for s in h.seals) and len(h.titles) > len(h.seals))
    held = registry.holdings(subject.id_number, subject.name)
    busy = held.seals[0].unit
    free = next(t.unit for t in held.titles if not any(s.unit == t.unit for s in held.seals))
    lines = (ControlLine(free, until=IN_A_YEAR), ControlLine(busy, until=IN_A_YEAR))

    _, sealed = exchange(codec, registry, order("seal", subject, "d-seal", lines))

    outcomes = {c["identifier"]: ControlOutcomeSchema().load(c) for c in sealed.controls}
    assert outcomes[free]["outcome"] == "controlled" and outcomes[free]["until"] == IN_A_YEAR
    queued = outcomes[busy]
    places_before = len(registry.seals_on(busy))
    assert queued["outcome"] == "queued" and queued["queue_position"] == places_before
    assert queued["ahead"][0] == f"{held.seals[0].court} {held.seals[0].ruling}"

    later = IN_A_YEAR + timedelta(days=200)
    _, renewed = exchange(codec, registry, order(
        "renew", subject, "d-renew", (ControlLine(free, until=later, original_reference=outcomes[free]["agency_reference"]),)))
    assert ControlOutcomeSchema().load(renewed.controls[0])["until"] == later
    assert renewed.controls[0]["outcome"] == "controlled"

    _, released = exchange(codec, registry, order(
        "release", subject, "d-release", (ControlLine(free, original_reference=outcomes[free]["agency_reference"]),)))
    assert ControlOutcomeSchema().load(released.controls[0])["outcome"] == "released"
    assert registry.seals_on(free) == []


def test_release_promotes_the_next_queued_seal(codec, registry) -> None:
    subject = find_subject(registry, lambda h: len(h.titles) > len(h.seals))
    free = next(t.unit for t in registry.holdings(subject.id_number, subject.name).titles
                if not registry.seals_on(t.unit))
    _, ours = exchange(codec, registry, order("seal", subject, "d-1", (ControlLine(free, until=IN_A_YEAR),)))
    other_court = replace(order("seal", subject, "d-2", (ControlLine(free, until=IN_A_YEAR),)), court_code="330106")
    _, theirs = exchange(codec, registry, other_court)
    assert theirs.controls[0]["outcome"] == "queued" and theirs.controls[0]["queue_position"] == 2
    assert theirs.controls[0]["ahead"] == ["330102 (2024)浙0102执1234号之一"]

    # Another court cannot release our seal; we can, and theirs takes effect.
    release = order("release", subject, "d-3", (ControlLine(free, original_reference=ours.controls[0]["agency_reference"]),))
    _, refused = exchange(codec, registry, replace(release, court_code="330106"))
    assert refused.controls[0]["outcome"] == "not_controlled" and "another court" in refused.controls[0]["reason"]
    _, released = exchange(codec, registry, replace(release, message_id="d-4"))
    assert released.controls[0]["outcome"] == "released"
    [promoted] = registry.seals_on(free)
    assert (promoted.court, promoted.place, promoted.kind, promoted.start) == ("330106", 1, "1", court_today())
    assert promoted.reference == theirs.controls[0]["agency_reference"]


def test_a_repeated_key_gets_the_same_answer_and_no_second_effect(codec, registry) -> None:
    subject = find_subject(registry, lambda h: len(h.titles) > len(h.seals))
    free = next(t.unit for t in registry.holdings(subject.id_number, subject.name).titles
                if not registry.seals_on(t.unit))
    envelope = codec.encode(order("seal", subject, "d-dup", (ControlLine(free, until=IN_A_YEAR),)))
    first, second = registry.handle(envelope.body), registry.handle(envelope.body)
    assert first == second and registry.counters.duplicates == 1 and registry.counters.sealed == 1
    assert len(registry.seals_on(free)) == 1


@pytest.mark.parametrize(
    ("action", "lines", "basis", "problem"),
    [
        ("seal", (), True, "needs at least one unit"),
        ("seal", (ControlLine("330102289189GB61668F00520003"),), True, "until"),
        ("renew", (ControlLine("330102289189GB61668F00520003", until=IN_A_YEAR),), True, "original_reference"),
        ("seal", (ControlLine("330102289189GB61668F00520003", until=IN_A_YEAR),), False, "breaks real-estate-v1"),
        ("seal", (ControlLine("not-a-unit", until=IN_A_YEAR),), True, "breaks real-estate-v1"),
        ("freeze", (), True, "not one the real-estate registry takes"),
    ],
)
def test_an_invalid_outgoing_message_is_refused(codec, action, lines, basis, problem) -> None:
    with pytest.raises(OutgoingInvalid, match=problem):
        codec.encode(order(action, person(1), lines=lines, basis=basis))


def _answer_to(envelope: Envelope, *, key: str | None = None, digest: str | None = None, code: str = "0000",
               body: str = "<Data><CXJG/></Data>") -> bytes:
    key = envelope.message_id if key is None else key
    digest = xml.digest(xml.parse(envelope.body)) if digest is None else digest
    return (f'<Message xmlns="{NS}"><Head><CXQQDH>{key}</CXQQDH><CREATETIME>2026-01-01T00:00:00Z</CREATETIME>'
            f"<QQSHA256>{digest}</QQSHA256><RESPONSECODE>{code}</RESPONSECODE><RESPONSEINFO>x</RESPONSEINFO>"
            f"</Head>{body if code == '0000' else ''}</Message>").encode()


def test_answer_binding_and_error_codes(codec) -> None:
    envelope = codec.encode(order("inquiry", person(1)))
    assert codec.decode(Reply(200, _answer_to(envelope)), envelope).assets == []
    with pytest.raises(AnswerNotBound, match="request key 'd-2'"):
        codec.decode(Reply(200, _answer_to(envelope, key="d-2")), envelope)
    with pytest.raises(AnswerNotBound, match="QQSHA256"):
        codec.decode(Reply(200, _answer_to(envelope, digest="0" * 64)), envelope)
    with pytest.raises(AgencyUnavailable, match="code 1000"):
        codec.decode(Reply(200, _answer_to(envelope, code="1000")), envelope)
    for code in ("2000", "2010", "2040"):
        with pytest.raises(AgencyRefused, match=f"code {code}"):
            codec.decode(Reply(200, _answer_to(envelope, code=code)), envelope)
    with pytest.raises(IncomingInvalid, match="Data/CXJG"):
        codec.decode(Reply(200, _answer_to(envelope, body="<Data><KZJG><KZ><BDCDYH>330102289189GB61668F00520003"
                                                          "</BDCDYH><KZZT>1</KZZT></KZ></KZJG></Data>")), envelope)


def test_an_invalid_answer_is_incoming_invalid_with_its_line(codec) -> None:
    envelope = codec.encode(order("inquiry", person(1)))
    raw = _answer_to(envelope, body="<Data>\n<CXJG>\n<FW><BDCDYH>bad</BDCDYH></FW></CXJG></Data>")
    with pytest.raises(IncomingInvalid, match=r"line 3") as invalid:
        codec.decode(Reply(200, raw), envelope)
    assert invalid.value.raw == raw


@pytest.mark.parametrize(
    "hostile",
    [
        b'<!DOCTYPE m [<!ENTITY x SYSTEM "file:///etc/passwd">]><Message xmlns="%s">&x;</Message>',
        b'<!DOCTYPE m [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
        b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><Message xmlns="%s">&c;</Message>',
        b'<!DOCTYPE Message SYSTEM "http://127.0.0.1:9/evil.dtd"><Message xmlns="%s"/>',
    ],
    ids=["external-entity", "billion-laughs", "external-dtd"],
)
def test_xml_with_a_dtd_is_refused_without_expansion(codec, registry, hostile: bytes) -> None:
    raw = hostile.replace(b"%s", NS.encode())
    envelope = codec.encode(order("inquiry", person(1)))
    with pytest.raises(IncomingInvalid, match="DOCTYPE") as refused:
        codec.decode(Reply(200, raw), envelope)
    assert refused.value.raw == raw
    # The registry refuses it too, with an error answer instead of a crash.
    answer = xml.parse(registry.handle(raw))
    assert answer.findtext(f"{{{NS}}}Head/{{{NS}}}RESPONSECODE") == "2040"
    assert "DOCTYPE" in answer.findtext(f"{{{NS}}}Head/{{{NS}}}ErrorMSG")


def test_the_registry_answers_an_invalid_request_with_2040_naming_the_line(codec, registry) -> None:
    envelope = codec.encode(order("inquiry", person(1)))
    root = xml.parse(envelope.body)
    root.find(f"{{{NS}}}Data/{{{NS}}}CXQQ/{{{NS}}}ZJZL").text = "42"
    bad = Envelope(envelope.message_id, envelope.operation, etree.tostring(root), envelope.media_type)
    with pytest.raises(AgencyRefused, match=r"code 2040: .*line 1.*ZJZL"):
        codec.decode(Reply(200, registry.handle(bad.body)), bad)
    assert registry.counters.invalid == 1
