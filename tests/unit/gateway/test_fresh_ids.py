"""progress.fresh_ids: the asset rows' ids made from one read of randomness are
what ``new_id`` (``str(uuid.uuid4())``) makes: canonical text of version 4,
RFC 4122 variant UUIDs, all different."""

from __future__ import annotations

import uuid

from gateway.deliveries.progress import fresh_ids


def test_ids_are_canonical_random_uuids_each_different():
    ids = fresh_ids(2000)
    assert len(ids) == 2000 == len(set(ids))
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text  # lower-case hex, dashes where uuid puts them
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_the_version_and_variant_bits_are_set_whatever_the_random_bytes(monkeypatch):
    import gateway.deliveries.progress as progress

    for byte in (b"\x00", b"\xff", b"\x5a"):
        monkeypatch.setattr(progress.os, "urandom", lambda n, b=byte: b * n)
        (text,) = fresh_ids(1)
        assert text == str(uuid.UUID(bytes=byte * 16, version=4))


def test_none_asked_none_made():
    assert fresh_ids(0) == []
