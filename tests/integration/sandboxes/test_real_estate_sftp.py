"""Real estate end to end over SFTP: RealEstateCodec -> SftpTransport -> SftpSandbox
(paramiko's server side) -> BatchAgencyProcessor -> RealEstateRegistry and back."""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Iterator

import paramiko
import pytest

from adapters.codecs.real_estate import RealEstateCodec
from adapters.errors import OutgoingInvalid
from adapters.interfaces import AgencyAnswer, BatchRecord, ControlLine, DeliveryOrder, Envelope, InboundBatch, Reply, SubjectRef
from adapters.transports.sftp import SftpTransport
from sandboxes.real_estate import RealEstateRegistry
from sandboxes.server import FaultKnobs
from sandboxes.sftp_server import BatchAgencyProcessor, SftpSandbox, generate_ed25519_key, public_key_line
from schemas.canonical import AssetRecordSchema, ControlOutcomeSchema
from schemas.identifiers import resident_id_check_digit
from gateway.timeutil import court_today

IN_A_YEAR = court_today() + timedelta(days=365)


def person(n: int) -> SubjectRef:
    first = f"33010219800101{n:03d}"
    return SubjectRef("person", "张三", first + resident_id_check_digit(first))


def order(action: str, subject: SubjectRef, message_id: str, lines: tuple[ControlLine, ...] = ()) -> DeliveryOrder:
    return DeliveryOrder(
        message_id=message_id, action=action, categories=("real_estate",), subject=subject,
        case_number="(2024)浙0102执1234号", court_code="330102", officer="officer.wang", lines=lines,
        legal_basis_kind="ruling", legal_basis_number="(2024)浙0102执1234号之一",
    )


class Agency:
    """One running real-estate agency over SFTP, and a gateway-side client for it."""

    def __init__(self, tmp: Path, knobs: FaultKnobs | None = None):
        generate_ed25519_key(tmp / "client_key")
        client_line = public_key_line(paramiko.PKey.from_path(tmp / "client_key"))
        self.registry = RealEstateRegistry(seed=0)
        self.server = SftpSandbox(tmp / "root", tmp / "host_key", [client_line]).start()
        self.folder = tmp / "root" / "real-estate"
        self.processor = BatchAgencyProcessor(self.folder, self.registry.handle, knobs, poll_interval=0.02).start()
        self.transport = SftpTransport(
            f"sftp://gateway@127.0.0.1:{self.server.port}/real-estate", timeout_seconds=10,
            host_key=self.server.host_key_line, client_key=str(tmp / "client_key"),
        )
        self.codec = RealEstateCodec()
        self.sent: dict[str, Envelope] = {}  # by message id: a resend sends the bytes kept, as the gateway does

    def wait_for_batches(self, count: int = 1, timeout: float = 20) -> list[InboundBatch]:
        deadline = time.monotonic() + timeout
        batches: list[InboundBatch] = []
        while len(batches) < count:
            assert time.monotonic() < deadline, f"only {len(batches)} of {count} result files within {timeout} s"
            for batch in self.transport.receive():
                self.transport.settle(batch)
                batches.append(batch)
            time.sleep(0.02)
        return batches

    def exchange(self, orders: list[DeliveryOrder]) -> dict[str, AgencyAnswer]:
        """One batch file for the orders (one action), decoded answers by message id."""
        # Encoded once per message id (the request carries its CREATETIME to the second:
        # encoded again a second later it is other bytes, which the agency's stored answer
        # to the first is not bound to).
        envelopes = {o.message_id: self.sent.get(o.message_id) or self.codec.encode(o) for o in orders}
        self.sent.update(envelopes)
        operation = {e.operation for e in envelopes.values()}.pop()
        self.transport.send_batch(operation, [BatchRecord(e.message_id, e.body) for e in envelopes.values()])
        [batch] = self.wait_for_batches()
        assert batch.problem is None
        return {r.message_id: self.codec.decode(Reply(200, r.body), envelopes[r.message_id]) for r in batch.records}

    def stop(self) -> None:
        self.transport.close()
        self.processor.stop()
        self.server.stop()


@pytest.fixture
def agency(tmp_path: Path) -> Iterator[Agency]:
    running = Agency(tmp_path)
    yield running
    running.stop()


def test_inquiries_for_several_subjects_in_one_file(agency: Agency) -> None:
    subjects = [person(n) for n in range(1, 9)]
    answers = agency.exchange([order("inquiry", s, f"d-{i}") for i, s in enumerate(subjects)])

    assert sorted(answers) == [f"d-{i}" for i in range(len(subjects))]
    for i, subject in enumerate(subjects):
        held = agency.registry.holdings(subject.id_number, subject.name)
        assert [a["identifier"] for a in answers[f"d-{i}"].assets] == list(held.units)
        for asset in answers[f"d-{i}"].assets:
            AssetRecordSchema().load(asset)
    assert any(not a.assets for a in answers.values()) and any(a.assets for a in answers.values())
    assert agency.processor.counters.files_answered == 1 and agency.processor.counters.records_answered == 8
    assert sorted(p.name for p in (agency.folder / "done").iterdir())[0].startswith("inquiry_")


def test_seal_queue_renew_release_round_trips(agency: Agency) -> None:
    subjects = [person(n) for n in range(1, 60)]
    held = {s.id_number: agency.registry.holdings(s.id_number, s.name) for s in subjects}
    with_free = next(s for s in subjects if len(held[s.id_number].titles) > len(held[s.id_number].seals))
    with_busy = next(s for s in subjects if held[s.id_number].seals and s != with_free)
    free = next(t.unit for t in held[with_free.id_number].titles if not agency.registry.seals_on(t.unit))
    busy = held[with_busy.id_number].seals[0].unit

    sealed = agency.exchange([
        order("seal", with_free, "s-1", (ControlLine(free, until=IN_A_YEAR),)),
        order("seal", with_busy, "s-2", (ControlLine(busy, until=IN_A_YEAR),)),
    ])
    controlled = ControlOutcomeSchema().load(sealed["s-1"].controls[0])
    queued = ControlOutcomeSchema().load(sealed["s-2"].controls[0])
    assert controlled["outcome"] == "controlled" and controlled["until"] == IN_A_YEAR
    assert queued["outcome"] == "queued" and queued["queue_position"] >= 2 and queued["ahead"]

    later = IN_A_YEAR + timedelta(days=100)
    renewed = agency.exchange([order("renew", with_free, "r-1", (
        ControlLine(free, until=later, original_reference=controlled["agency_reference"]),))])
    assert renewed["r-1"].controls[0]["until"] == later.isoformat()

    released = agency.exchange([order("release", with_free, "x-1", (
        ControlLine(free, original_reference=controlled["agency_reference"]),))])
    assert ControlOutcomeSchema().load(released["x-1"].controls[0])["outcome"] == "released"
    after = agency.exchange([order("inquiry", with_free, "q-1")])
    asset = next(a for a in after["q-1"].assets if a["identifier"] == free)
    assert asset["details"]["seals"] == []


def test_a_resent_message_is_answered_again_without_a_second_effect(agency: Agency) -> None:
    subject = next(person(n) for n in range(1, 60)
                   if any(not agency.registry.seals_on(t.unit)
                          for t in agency.registry.holdings(person(n).id_number, "张三").titles))
    free = next(t.unit for t in agency.registry.holdings(subject.id_number, subject.name).titles
                if not agency.registry.seals_on(t.unit))
    seal = order("seal", subject, "dup-1", (ControlLine(free, until=IN_A_YEAR),))
    first = agency.exchange([seal])["dup-1"]
    second = agency.exchange([seal])["dup-1"]  # the same delivery on a later attempt
    assert first.raw == second.raw and first.controls[0]["outcome"] == "controlled"
    assert agency.registry.counters.duplicates == 1 and agency.registry.counters.sealed == 1
    assert len(agency.registry.seals_on(free)) == 1


def test_an_invalid_outgoing_message_is_never_sent(agency: Agency) -> None:
    with pytest.raises(OutgoingInvalid):
        agency.codec.encode(replace(order("seal", person(1), "bad-1"), lines=()))
    assert list((agency.folder / "inbox").iterdir()) == []
    assert agency.transport.connections_opened == 0


@pytest.mark.parametrize("corruption", ["checksum", "count"])
def test_a_corrupt_result_file_is_quarantined_and_answers_nothing(agency: Agency, corruption: str) -> None:
    agency.processor.corrupt_next(corruption)
    agency.transport.send_batch("inquiry", [BatchRecord("c-1", agency.codec.encode(order("inquiry", person(1), "c-1")).body)])
    [batch] = agency.wait_for_batches()
    assert batch.problem and batch.records == ()
    assert sorted(p.name.endswith(".chk") for p in (agency.folder / "quarantine").iterdir()) == [False, True]
    assert agency.processor.counters.corrupt_written == 1


def test_a_request_file_failing_its_checksum_is_rejected_unanswered(agency: Agency) -> None:
    inbox = agency.folder / "inbox"
    (inbox / "inquiry_x.req").write_bytes(b"m-1\t<x/>\n")
    (inbox / "inquiry_x.req.chk").write_text(f"records=1\nsha256={hashlib.sha256(b'other').hexdigest()}\n")
    deadline = time.monotonic() + 5
    while agency.processor.counters.files_rejected == 0:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert sorted(p.name for p in (agency.folder / "rejected").iterdir()) == ["inquiry_x.req", "inquiry_x.req.chk"]
    assert list((agency.folder / "outbox").iterdir()) == []


def test_which_sent_files_the_agency_has_lost(agency: Agency) -> None:
    """missing(): a file answered (collected to done/ or quarantine/, or still in
    outbox/) or still waiting in inbox/ is not lost; one that is neither is."""
    def send(n: int) -> str:
        return agency.transport.send_batch(
            "inquiry", [BatchRecord(f"m-{n}", agency.codec.encode(order("inquiry", person(n), f"m-{n}")).body)])

    collected = send(1)
    agency.wait_for_batches()  # answered, moved to done/
    agency.processor.corrupt_next("checksum")
    quarantined = send(2)
    agency.wait_for_batches()  # answered corrupt, moved to quarantine/
    uncollected = send(3)
    deadline = time.monotonic() + 10
    while not (agency.folder / "outbox" / uncollected.replace(".req", ".res.chk")).exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    agency.processor.stop()  # the agency stops taking files
    waiting, lost = send(4), send(5)
    for name in (lost, lost + ".chk"):
        (agency.folder / "inbox" / name).unlink()
    names = [collected, quarantined, uncollected, waiting, lost, "not-a-request.txt"]
    assert agency.transport.missing(names) == [lost]
    assert agency.transport.missing([waiting]) == [] and agency.transport.missing([]) == []


def test_a_file_failing_at_the_agency_is_answered_later(tmp_path: Path) -> None:
    running = Agency(tmp_path, FaultKnobs(failure_rate=0.7, seed=3))
    try:
        answers = running.exchange([order("inquiry", person(n), f"f-{n}") for n in range(1, 4)])
        assert sorted(answers) == ["f-1", "f-2", "f-3"]
        assert running.processor.counters.failures_injected >= 1  # seed 3 fails the first draws
    finally:
        running.stop()


def test_the_agency_waits_its_latency_before_answering(tmp_path: Path) -> None:
    running = Agency(tmp_path, FaultKnobs(latency_seconds=0.5))
    try:
        started = time.monotonic()
        answers = running.exchange([order("inquiry", person(1), "l-1")])
        assert "l-1" in answers and time.monotonic() - started >= 0.5
    finally:
        running.stop()


def test_ten_thousand_inquiries_in_one_file(agency: Agency, capsys: pytest.CaptureFixture[str]) -> None:
    orders = [order("inquiry", person(n % 997 + 1), f"b-{n}") for n in range(10_000)]
    started = time.perf_counter()
    envelopes = [agency.codec.encode(o) for o in orders]
    encoded = time.perf_counter()
    agency.transport.send_batch("inquiry", [BatchRecord(e.message_id, e.body) for e in envelopes])
    [batch] = agency.wait_for_batches(timeout=60)
    received = time.perf_counter()
    by_id: dict[str, Envelope] = {e.message_id: e for e in envelopes}
    answers = [agency.codec.decode(Reply(200, r.body), by_id[r.message_id]) for r in batch.records]
    decoded = time.perf_counter()
    assert len(answers) == 10_000 and batch.problem is None
    with capsys.disabled():
        print(f"\n10,000-record real-estate batch: encode {encoded - started:.2f} s, "
              f"SFTP + registry round trip {received - encoded:.2f} s, decode {decoded - received:.2f} s, "
              f"total {decoded - started:.2f} s")
    assert decoded - started < 30


def test_a_file_renamed_while_a_folder_is_listed_is_left_out_not_an_error(tmp_path: Path, monkeypatch) -> None:
    """The agency writes "X.res.part" then renames it: a listing between its readdir and
    its stat must not fail whole (the gateway would read "no outbox/ folder")."""
    from sandboxes import sftp_server

    (tmp_path / "outbox").mkdir()
    for name in ("a.res", "b.res.part"):
        (tmp_path / "outbox" / name).write_bytes(b"x")
    real_stat = os.stat

    def stat_after_rename(path, *args, **kwargs):
        if str(path).endswith(".part"):
            raise FileNotFoundError(2, "renamed meanwhile", str(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(sftp_server.os, "stat", stat_after_rename)
    listing = sftp_server._RootedSftp(None, root=tmp_path).list_folder("/outbox")
    assert [a.filename for a in listing] == ["a.res"]
