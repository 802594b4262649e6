"""Row ids are UUID version 7: valid UUIDs, ordered by the millisecond they were made
(so one transaction's rows share the right edge of every id index), unique within one."""

from __future__ import annotations

import time
import uuid

from gateway.timeutil import new_id


def test_ids_are_version_7_uuids_with_the_rfc_variant():
    for value in (new_id() for _ in range(200)):
        parsed = uuid.UUID(value)
        assert str(parsed) == value and parsed.version == 7 and parsed.variant == uuid.RFC_4122


def test_ids_carry_the_millisecond_and_sort_by_it():
    before = time.time_ns() // 1_000_000
    first = new_id()
    time.sleep(0.002)
    second = new_id()
    after = time.time_ns() // 1_000_000
    stamps = [uuid.UUID(v).int >> 80 for v in (first, second)]
    assert before <= stamps[0] < stamps[1] <= after
    assert first < second  # as text too: the order SQLite and PostgreSQL index them in


def test_ids_made_in_the_same_millisecond_differ():
    assert len({new_id() for _ in range(10_000)}) == 10_000
