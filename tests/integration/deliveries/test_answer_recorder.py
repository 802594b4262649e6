"""The answer recorder: answers handed in from many delivery threads are recorded a
batch per transaction, each thread learns its own outcome, and one answer that fails
its batch is recorded apart from the others (which still land).

``progress.record_answers`` is replaced by a stand-in that notes each batch: what is
under test is the grouping, the fallback and the hand-back, on the app's real
database transactions."""

import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest

from gateway.deliveries import recorder as recorder_module
from gateway.deliveries.recorder import AnswerRecorder


class _Recording:
    def __init__(self):
        self.batches: list[list[str]] = []
        self.first_entered, self.let_first_go = threading.Event(), threading.Event()

    def __call__(self, session, answers, *, audit, now, settled=None, **_):
        ids = [delivery_id for delivery_id, *_ in answers]
        self.batches.append(ids)
        if len(self.batches) == 1:  # hold the first batch so that the others queue up behind it
            self.first_entered.set()
            assert self.let_first_go.wait(10)
        if "bad" in ids:
            raise ValueError("an answer this stand-in refuses")
        for delivery_id in ids:
            if settled is not None:
                settled[delivery_id] = "duplicate_discarded" if delivery_id.startswith("dup") else "answered"
        return sum(1 for i in ids if not i.startswith("dup"))


def _answer():
    return SimpleNamespace(raw=b"{}")


def test_answers_from_many_threads_are_recorded_a_batch_per_transaction(app, monkeypatch):
    recording = _Recording()
    monkeypatch.setattr(recorder_module.progress, "record_answers", recording)
    recorder = AnswerRecorder(app.extensions["db"], app.extensions["audit"]).start()
    ids = ["first"] + [f"d{n}" for n in range(7)] + ["dup1"]
    try:
        with ThreadPoolExecutor(max_workers=len(ids)) as pool:
            first = pool.submit(recorder.record, "first", None, _answer())
            assert recording.first_entered.wait(10)
            rest = {i: pool.submit(recorder.record, i, None, _answer()) for i in ids[1:]}
            while recorder._queue.qsize() < len(rest):  # every thread has handed its answer in
                threading.Event().wait(0.01)
            recording.let_first_go.set()
            outcomes = {"first": first.result(10), **{i: f.result(10) for i, f in rest.items()}}
    finally:
        recorder.stop()
    assert recording.batches == [["first"], ids[1:]]  # one transaction for the eight that waited
    assert recorder.batches == 2
    assert outcomes == {i: not i.startswith("dup") for i in ids}
    assert not recorder.running


def test_an_answer_that_fails_its_batch_is_recorded_alone_and_the_others_land(app, monkeypatch):
    recording = _Recording()
    monkeypatch.setattr(recorder_module.progress, "record_answers", recording)
    recorder = AnswerRecorder(app.extensions["db"], app.extensions["audit"]).start()
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            first = pool.submit(recorder.record, "first", None, _answer())
            assert recording.first_entered.wait(10)
            rest = {i: pool.submit(recorder.record, i, None, _answer()) for i in ("a", "bad", "b")}
            while recorder._queue.qsize() < len(rest):
                threading.Event().wait(0.01)
            recording.let_first_go.set()
            assert first.result(10) is True
            assert rest["a"].result(10) is True and rest["b"].result(10) is True
            with pytest.raises(ValueError, match="refuses"):
                rest["bad"].result(10)  # raised in its own delivery thread, which records an internal fault
    finally:
        recorder.stop()
    assert recording.batches[1] == ["a", "bad", "b"]
    assert sorted(map(tuple, recording.batches[2:])) == [("a",), ("b",), ("bad",)]


def test_a_recorder_not_started_records_each_answer_at_once(app, monkeypatch):
    recording = _Recording()
    recording.let_first_go.set()
    monkeypatch.setattr(recorder_module.progress, "record_answers", recording)
    recorder = AnswerRecorder(app.extensions["db"], app.extensions["audit"])
    assert recorder.record("d1", None, _answer()) is True
    assert recorder.record("dup1", None, _answer()) is False
    assert recording.batches == [["d1"], ["dup1"]] and recorder.batches == 0


class _Backends:
    """A stand-in that notes which PostgreSQL backend (connection) recorded each batch."""

    def __init__(self):
        self.pids: list[int] = []

    def __call__(self, session, answers, *, audit, now, settled=None, **_):
        import sqlalchemy as sa

        self.pids.append(session.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())
        for delivery_id, *_rest in answers:
            if settled is not None:
                settled[delivery_id] = "answered"
        return len(answers)


def test_on_postgresql_batches_share_one_connection_and_a_broken_one_is_replaced(app, monkeypatch):
    """The recorder keeps its connection between batches (no pool checkout and ping
    per batch); when that connection dies, the batch is recorded through the pool
    and the next batch opens a new connection."""
    import sqlalchemy as sa

    db = app.extensions["db"]
    if db.dialect != "postgresql":
        pytest.skip("SQLite batches go through db.transaction and its write gate")
    backends = _Backends()
    monkeypatch.setattr(recorder_module.progress, "record_answers", backends)
    recorder = AnswerRecorder(db, app.extensions["audit"]).start()
    try:
        assert recorder.record("a", None, _answer()) is True
        assert recorder.record("b", None, _answer()) is True
        held = backends.pids[0]
        assert backends.pids == [held, held]
        with db.engine.connect() as other:
            assert other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": held}).scalar_one()
        assert recorder.record("c", None, _answer()) is True  # its batch failed on the dead connection: recorded alone
        assert recorder.record("d", None, _answer()) is True
    finally:
        recorder.stop()
    assert len(backends.pids) == 4 and held not in backends.pids[2:]
    assert recorder.batches == 3  # a, b and d in batches; c alone
    assert recorder._held is None  # closed when the recorder stopped
