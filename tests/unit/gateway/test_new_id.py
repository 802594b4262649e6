"""Row ids are UUID version 7: valid UUIDs, ordered by the millisecond they were made
(so one transaction's rows share the right edge of every id index), unique within one;
``new_ids`` (the answer recorder's asset rows) makes the same from one read of randomness."""

from __future__ import annotations

import time
import uuid

from gateway.timeutil import new_id, new_ids


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


def test_many_ids_at_once_are_canonical_version_7_uuids_each_different():
    ids = new_ids(2000)
    assert len(ids) == 2000 == len(set(ids))
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text  # lower-case hex, dashes where uuid puts them
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122


def test_the_version_and_variant_bits_are_set_whatever_the_random_bytes(monkeypatch):
    import gateway.timeutil as timeutil

    monkeypatch.setattr(timeutil.time, "time_ns", lambda: 0x0123456789AB * 1_000_000)
    for byte in (b"\x00", b"\xff", b"\x5a"):
        monkeypatch.setattr(timeutil.os, "urandom", lambda n, b=byte: b * n)
        (text,) = new_ids(1)
        parsed, made_of = uuid.UUID(text), 0x0123456789AB << 80 | int.from_bytes(byte * 10, "big")
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122 and text == new_id()
        fixed_bits = 0xF << 76 | 0x3 << 62  # the version's and the variant's: every other bit as made
        assert parsed.int & ~fixed_bits == made_of & ~fixed_bits and parsed.int >> 80 == 0x0123456789AB


def test_none_asked_none_made():
    assert new_ids(0) == []
