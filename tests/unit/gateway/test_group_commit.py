"""gateway/requests/group_commit.py with a real Database (both backends) and a small
table: the threads of a process writing at once share transactions (fewer batches
than items, never more than max_batch in one), every item committed; an item refused
with a GatewayError gets its own error while the rest of its batch commits; a batch
whose transaction fails (a duplicate key) is written again item by item, so only the
duplicate's caller sees IntegrityError; a batch of one raises its error as it is."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from gateway.db import Database
from gateway.errors import Conflict, GatewayError
from gateway.requests.group_commit import GroupCommit

metadata = sa.MetaData()
ITEMS = sa.Table("group_commit_items", metadata,
                 sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                 sa.Column("tag", sa.String(32), nullable=False))


@dataclass(frozen=True)
class Item:
    id: int
    tag: str = "ok"  # "refuse": a GatewayError before writing; "boom": a RuntimeError after writing


class Harness:
    """A GroupCommit over ITEMS, recording each transaction's items and whether it committed."""

    def __init__(self, db: Database, max_batch: int = 32, hold_seconds: float = 0.0):
        self.db, self.hold_seconds = db, hold_seconds
        self.transactions: list[dict[str, Any]] = []
        self.calls: list[int] = []  # write_one's items, every call
        self.refusals: dict[int, GatewayError] = {}
        self.blocker_entered, self.blocker_release = threading.Event(), threading.Event()
        self._current: dict[int, dict[str, Any]] = {}
        self.group = GroupCommit(self.transaction, self.write_one, max_batch=max_batch)

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        record: dict[str, Any] = {"items": [], "committed": False}
        self.transactions.append(record)
        with self.db.connection_transaction() as connection:
            self._current[id(connection)] = record
            yield connection
        record["committed"] = True

    def write_one(self, connection: sa.Connection, item: Item) -> None:
        self.calls.append(item.id)
        if item.tag == "refuse":
            error = self.refusals[item.id] = Conflict(f"item {item.id} refused")
            raise error
        if item.tag == "block":  # holds the batch (and the write lock) until released
            self.blocker_entered.set()
            assert self.blocker_release.wait(10)
        connection.execute(sa.insert(ITEMS), {"id": item.id, "tag": item.tag})
        self._current[id(connection)]["items"].append((item.id, item.tag))
        if item.tag == "boom":
            raise RuntimeError(f"item {item.id} failed after writing")
        if self.hold_seconds:
            time.sleep(self.hold_seconds)

    def write(self, item: Item) -> BaseException | None:
        try:
            self.group.write(item)
            return None
        except Exception as exc:  # noqa: BLE001 (the outcome under test)
            return exc

    def one_batch_after_a_blocker(self, items: list[Item]) -> list[BaseException | None]:
        """A first batch held open while ``items`` queue, so that they are the next batch, together."""
        outcomes: list[BaseException | None] = [None] * len(items)
        blocker = threading.Thread(target=self.write, args=(Item(0, "block"),))
        blocker.start()
        assert self.blocker_entered.wait(10)

        def run(i: int) -> None:
            outcomes[i] = self.write(items[i])

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(items))]
        for thread in threads:
            thread.start()
        time.sleep(0.3)  # every one of them queued behind the blocker's batch
        self.blocker_release.set()
        for thread in [blocker, *threads]:
            thread.join(20)
            assert not thread.is_alive()
        return outcomes

    def rows(self) -> dict[int, str]:
        with self.db.reading_connection() as connection:
            return dict(connection.execute(sa.select(ITEMS.c.id, ITEMS.c.tag)).all())


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    metadata.drop_all(database.engine)
    metadata.create_all(database.engine)
    yield database
    metadata.drop_all(database.engine)
    database.dispose()


THREADS = 24


@pytest.mark.parametrize("max_batch", [32, 5])
def test_threads_writing_at_once_share_transactions_and_every_item_commits(db, max_batch):
    harness = Harness(db, max_batch=max_batch, hold_seconds=0.01)  # each write holds the transaction a little
    barrier = threading.Barrier(THREADS)
    outcomes: list[Any] = [object()] * THREADS

    def run(i: int) -> None:
        barrier.wait(10)
        outcomes[i] = harness.write(Item(i))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert outcomes == [None] * THREADS
    assert harness.rows() == {i: "ok" for i in range(THREADS)}
    assert harness.group.written == THREADS
    assert harness.group.batches == len(harness.transactions)  # no batch written again
    assert harness.group.batches <= THREADS // 2, [t["items"] for t in harness.transactions]
    assert all(t["committed"] for t in harness.transactions)
    sizes = [len(t["items"]) for t in harness.transactions]
    assert sum(sizes) == THREADS and max(sizes) <= max_batch and max(sizes) > 1
    assert sorted(harness.calls) == list(range(THREADS))  # each written once


def test_a_gateway_error_is_raised_to_its_own_caller_and_the_rest_of_the_batch_commits(db):
    harness = Harness(db)
    items = [Item(1), Item(2, "refuse"), Item(3), Item(4)]
    outcomes = harness.one_batch_after_a_blocker(items)
    assert outcomes[1] is harness.refusals[2]  # its own error, as raised
    assert outcomes[0] is None and outcomes[2] is None and outcomes[3] is None
    assert harness.rows() == {0: "block", 1: "ok", 3: "ok", 4: "ok"}
    # One transaction for the four: the refusal did not undo the others nor make them run again.
    assert [(sorted(t["items"]), t["committed"]) for t in harness.transactions] == [
        ([(0, "block")], True), ([(1, "ok"), (3, "ok"), (4, "ok")], True)]
    assert sorted(harness.calls) == [0, 1, 2, 3, 4]
    assert (harness.group.batches, harness.group.written) == (2, 5)


def test_a_duplicate_key_in_a_batch_fails_only_its_own_caller(db):
    """Item 100 is already stored: the batch's transaction fails with IntegrityError,
    nothing of it is kept, and each item is written again alone: the duplicate's
    caller gets IntegrityError, the refused one its GatewayError, the failing one its
    RuntimeError, the others commit."""
    harness = Harness(db)
    with db.connection_transaction() as connection:
        connection.execute(sa.insert(ITEMS), {"id": 100, "tag": "first"})
    items = [Item(1), Item(100, "again"), Item(2), Item(3, "refuse"), Item(5, "boom"), Item(4)]
    outcomes = harness.one_batch_after_a_blocker(items)
    assert isinstance(outcomes[1], IntegrityError)
    assert isinstance(outcomes[3], Conflict) and isinstance(outcomes[4], RuntimeError)
    assert outcomes[0] is None and outcomes[2] is None and outcomes[5] is None
    assert harness.rows() == {0: "block", 100: "first", 1: "ok", 2: "ok", 4: "ok"}
    batch = harness.transactions[1]
    assert batch["committed"] is False and len(harness.transactions) == 2 + len(items)  # then one each
    alone = harness.transactions[2:]
    assert [t["committed"] for t in alone] == [True, False, True, False, False, True]
    assert (harness.group.batches, harness.group.written) == (2, 7)


def test_two_items_with_one_key_in_a_batch_commit_one_and_fail_the_other(db):
    harness = Harness(db)
    outcomes = harness.one_batch_after_a_blocker([Item(1, "a"), Item(1, "b"), Item(2)])
    assert outcomes[2] is None
    failed = [i for i, outcome in enumerate(outcomes[:2]) if outcome is not None]
    assert len(failed) == 1 and isinstance(outcomes[failed[0]], IntegrityError)
    kept = "ab"[1 - failed[0]]
    assert harness.rows() == {0: "block", 1: kept, 2: "ok"}


def test_a_batch_of_one_raises_its_error_and_the_next_write_goes_on(db):
    harness = Harness(db)
    with pytest.raises(Conflict) as refused:
        harness.group.write(Item(1, "refuse"))
    assert refused.value is harness.refusals[1]
    with pytest.raises(RuntimeError, match="item 2 failed after writing"):
        harness.group.write(Item(2, "boom"))
    harness.group.write(Item(3))
    with pytest.raises(IntegrityError):
        harness.group.write(Item(3, "again"))
    harness.group.write(Item(4))
    assert harness.rows() == {3: "ok", 4: "ok"}  # item 2's row went with its transaction
    assert harness.calls == [1, 2, 3, 3, 4]  # a batch of one is not written twice
    assert (harness.group.batches, harness.group.written) == (5, 5)


def test_a_caller_returns_only_once_its_own_item_is_committed_when_more_than_a_batch_waits(db):
    """Thirty items queue behind a held batch with max_batch=2: they go in fifteen
    batches, oldest first. The thread that leads a batch is not always in it (the waiting
    wake in any order); it returns only
    once its own item has committed (it found it in a later batch, or led again),
    never after writing only the others'."""
    harness = Harness(db, max_batch=2)
    seen_at_return: dict[int, bool] = {}
    blocker = threading.Thread(target=harness.write, args=(Item(0, "block"),))
    blocker.start()
    assert harness.blocker_entered.wait(10)

    def run(i: int) -> None:
        assert harness.write(Item(i)) is None
        seen_at_return[i] = i in harness.rows()  # committed, as another connection sees it

    threads = [threading.Thread(target=run, args=(i,)) for i in range(1, 31)]
    for thread in threads:
        thread.start()
        time.sleep(0.01)  # in this order: 1 is the oldest
    harness.blocker_release.set()
    for thread in [blocker, *threads]:
        thread.join(20)
        assert not thread.is_alive()
    assert seen_at_return == {i: True for i in range(1, 31)}
    batches = [[i for i, _ in t["items"]] for t in harness.transactions if t["committed"]]
    assert batches == [[0], *([i, i + 1] for i in range(1, 31, 2))]
