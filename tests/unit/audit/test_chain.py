"""audit.chain: the pure hash chain (encoding, hashing, verification)."""

from __future__ import annotations

import copy
import hashlib
import json
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings, strategies as st

from audit.chain import (
    GENESIS_HASH,
    HASHED_FIELDS,
    canonical_bytes,
    event_hash,
    format_time,
    verify_chain,
)

T0 = datetime(2026, 11, 23, 10, 0, 0, 123456, tzinfo=timezone.utc)


def make_event(seq: int, **changes) -> dict:
    event = {
        "seq": seq,
        "at": T0 + timedelta(seconds=seq),
        "actor_sub": f"officer.{seq}",
        "actor_role": "court_officer",
        "actor_court": "330102",
        "actor_agency": None,
        "action": "request.submit",
        "outcome": "ok",
        "case_number": "(2024)浙0102执1234号",
        "subject_hash": hashlib.sha256(f"subject-{seq}".encode()).hexdigest(),
        "subject_masked": "1101**********002X",
        "request_id": f"req-{seq}",
        "delivery_id": None,
        "details": {"categories": ["identity", "vehicle"], "n": seq},
    }
    event.update(changes)
    return event


def build_chain(n: int, *, start_seq: int = 1, start_hash: str = GENESIS_HASH) -> list[dict]:
    chain, prev = [], start_hash
    for seq in range(start_seq, start_seq + n):
        event = make_event(seq)
        event["prev_hash"] = prev
        event["hash"] = event_hash(event, prev)
        prev = event["hash"]
        chain.append(event)
    return chain


# --- a sound chain ------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 10])
def test_sound_chain_verifies_with_count_and_head(n: int) -> None:
    chain = build_chain(n)
    report = verify_chain(chain)
    assert report.ok is True
    assert report.events_checked == n
    assert report.head_seq == n
    assert report.head_hash == chain[-1]["hash"]
    assert report.first_bad_seq is None
    assert report.problem is None


def test_empty_chain_is_ok_at_genesis() -> None:
    report = verify_chain([])
    assert (report.ok, report.events_checked, report.head_seq, report.head_hash) == (True, 0, 0, GENESIS_HASH)


def test_first_event_links_to_genesis_and_each_event_to_the_one_before() -> None:
    chain = build_chain(4)
    assert chain[0]["prev_hash"] == GENESIS_HASH == "0" * 64
    for before, after in zip(chain, chain[1:]):
        assert after["prev_hash"] == before["hash"]
    assert len({e["hash"] for e in chain}) == 4


def test_segment_verifies_from_a_given_start() -> None:
    chain = build_chain(6)
    report = verify_chain(chain[3:], start_seq=4, start_hash=chain[2]["hash"])
    assert (report.ok, report.events_checked, report.head_seq, report.head_hash) == (True, 3, 6, chain[-1]["hash"])
    # The same segment against the wrong starting hash does not link.
    bad = verify_chain(chain[3:], start_seq=4, start_hash=GENESIS_HASH)
    assert (bad.ok, bad.first_bad_seq) == (False, 4)


def test_hash_is_sha256_of_canonical_bytes() -> None:
    event = make_event(1)
    raw = canonical_bytes(event, GENESIS_HASH)
    assert event_hash(event, GENESIS_HASH) == hashlib.sha256(raw).hexdigest()
    decoded = json.loads(raw.decode("utf-8"))
    assert set(decoded) == set(HASHED_FIELDS) | {"prev_hash"}
    assert decoded["prev_hash"] == GENESIS_HASH
    assert decoded["at"] == "2026-11-23T10:00:01.123456Z"


def test_stored_extra_fields_are_not_hashed() -> None:
    event = make_event(1)
    with_extra = {**event, "id": 99, "hash": "x" * 64, "prev_hash": "y" * 64}
    assert event_hash(event, GENESIS_HASH) == event_hash(with_extra, GENESIS_HASH)


def test_prev_hash_is_part_of_the_hash() -> None:
    event = make_event(1)
    assert event_hash(event, GENESIS_HASH) != event_hash(event, "1" * 64)


# --- tampering ----------------------------------------------------------------


@pytest.mark.parametrize("field", ["actor_sub", "outcome", "case_number", "subject_masked", "details", "at", "delivery_id"])
def test_edited_field_is_detected_at_that_event(field: str) -> None:
    chain = build_chain(6)
    k = 4
    replacement = {
        "actor_sub": "someone.else",
        "outcome": "denied",
        "case_number": "(2024)浙0102执9999号",
        "subject_masked": "1101**********0000",
        "details": {"categories": ["identity"], "n": k},
        "at": T0 + timedelta(days=1),
        "delivery_id": "d-1",
    }[field]
    chain[k - 1][field] = replacement
    report = verify_chain(chain)
    assert report.ok is False
    assert report.first_bad_seq == k
    assert report.events_checked == k - 1
    assert report.head_seq == k - 1
    assert report.head_hash == chain[k - 2]["hash"]
    assert report.problem == f"event {k} was altered: its content does not match its hash"


def test_edit_with_recomputed_own_hash_breaks_the_next_link() -> None:
    chain = build_chain(6)
    k = 3
    chain[k - 1]["outcome"] = "denied"
    chain[k - 1]["hash"] = event_hash(chain[k - 1], chain[k - 1]["prev_hash"])
    report = verify_chain(chain)
    assert (report.ok, report.first_bad_seq, report.events_checked) == (False, k + 1, k)
    assert "does not link" in report.problem


def test_deleted_middle_event_is_detected() -> None:
    chain = build_chain(6)
    del chain[2]  # event 3
    report = verify_chain(chain)
    assert report.ok is False
    assert report.first_bad_seq == 3
    assert report.events_checked == 2
    assert report.head_seq == 2
    assert report.problem == "event 3 is missing: found event 4 in its place"


def test_deleted_first_event_is_detected() -> None:
    chain = build_chain(3)
    report = verify_chain(chain[1:])
    assert (report.ok, report.first_bad_seq, report.events_checked) == (False, 1, 0)
    assert "missing" in report.problem


def test_deleted_and_renumbered_event_breaks_the_link() -> None:
    chain = build_chain(6)
    del chain[2]
    for event in chain[2:]:
        event["seq"] -= 1
    report = verify_chain(chain)
    assert (report.ok, report.first_bad_seq) == (False, 3)
    assert "does not link to event 2" in report.problem


def test_inserted_forged_event_with_valid_own_hash_is_detected() -> None:
    """A forger can build an event that links to event k-1 with a correct hash of
    its own, but without re-chaining what follows, the original event k no longer
    fits: verification stops right after the forgery."""
    chain = build_chain(6)
    k = 3
    forged = make_event(k, outcome="forged", actor_sub="intruder")
    forged["prev_hash"] = chain[k - 2]["hash"]
    forged["hash"] = event_hash(forged, forged["prev_hash"])
    chain.insert(k - 1, forged)
    report = verify_chain(chain)
    assert report.ok is False
    assert report.first_bad_seq == k + 1
    assert report.events_checked == k
    assert report.problem == f"event {k + 1} is out of order or duplicated: found event {k} in its place"


def test_inserted_forged_event_with_later_events_renumbered_is_detected() -> None:
    chain = build_chain(6)
    k = 3
    forged = make_event(k, outcome="forged")
    forged["prev_hash"] = chain[k - 2]["hash"]
    forged["hash"] = event_hash(forged, forged["prev_hash"])
    chain.insert(k - 1, forged)
    for event in chain[k:]:
        event["seq"] += 1  # renumbered but not re-hashed
    report = verify_chain(chain)
    assert (report.ok, report.first_bad_seq) == (False, k + 1)
    assert "does not link" in report.problem


def test_inserted_forged_event_with_bad_link_is_detected_at_itself() -> None:
    chain = build_chain(5)
    forged = make_event(3, outcome="forged")
    forged["prev_hash"] = "f" * 64
    forged["hash"] = event_hash(forged, forged["prev_hash"])
    chain[2] = forged
    report = verify_chain(chain)
    assert (report.ok, report.first_bad_seq, report.events_checked) == (False, 3, 2)
    assert report.problem == "event 3 does not link to event 2: its prev_hash is not that event's hash"


def test_swapped_events_are_detected() -> None:
    chain = build_chain(6)
    chain[1], chain[4] = chain[4], chain[1]  # events 2 and 5
    report = verify_chain(chain)
    assert report.ok is False
    assert report.first_bad_seq == 2
    assert report.events_checked == 1
    assert report.problem == "event 2 is missing: found event 5 in its place"


def test_swapped_neighbours_are_detected() -> None:
    chain = build_chain(6)
    chain[3], chain[2] = chain[2], chain[3]  # 1 2 4 3 5 6
    report = verify_chain(chain)
    assert (report.ok, report.first_bad_seq) == (False, 3)
    assert "missing: found event 4" in report.problem


def test_swapped_contents_keeping_sequence_numbers_are_detected() -> None:
    chain = build_chain(6)
    a, b = chain[1], chain[2]
    for field in HASHED_FIELDS:
        if field != "seq":
            a[field], b[field] = b[field], a[field]
    report = verify_chain(chain)
    assert (report.ok, report.first_bad_seq) == (False, 2)
    assert "altered" in report.problem


def test_duplicated_event_is_detected() -> None:
    chain = build_chain(6)
    chain.insert(3, copy.deepcopy(chain[2]))  # 1 2 3 3 4 5 6
    report = verify_chain(chain)
    assert report.ok is False
    assert report.first_bad_seq == 4
    assert report.events_checked == 3
    assert report.head_hash == chain[2]["hash"]
    assert report.problem == "event 4 is out of order or duplicated: found event 3 in its place"


@pytest.mark.parametrize("keep", [0, 1, 3, 5])
def test_truncated_tail_is_not_detectable_without_checkpoints(keep: int) -> None:
    """Known limit: removing the newest events leaves a chain that is sound on its
    own. Only an external record of the head (signed checkpoints) can tell; until
    then verify_chain says ok, with fewer events and an older head."""
    chain = build_chain(6)
    full = verify_chain(chain)
    report = verify_chain(chain[:keep])
    assert report.ok is True
    assert report.events_checked == keep
    assert report.head_seq == keep
    assert report.head_hash == (chain[keep - 1]["hash"] if keep else GENESIS_HASH)
    assert (report.head_seq, report.head_hash) != (full.head_seq, full.head_hash)


# --- canonical encoding ---------------------------------------------------------


def test_key_order_of_details_does_not_change_the_hash() -> None:
    one = make_event(1, details={"a": 1, "b": {"x": [1, 2], "y": "z"}, "c": None})
    two = make_event(1, details={"c": None, "b": {"y": "z", "x": [1, 2]}, "a": 1})
    assert list(one["details"]) != list(two["details"])
    assert canonical_bytes(one, GENESIS_HASH) == canonical_bytes(two, GENESIS_HASH)
    assert event_hash(one, GENESIS_HASH) == event_hash(two, GENESIS_HASH)


def test_details_values_do_change_the_hash() -> None:
    one = make_event(1, details={"a": [1, 2]})
    two = make_event(1, details={"a": [2, 1]})
    assert event_hash(one, GENESIS_HASH) != event_hash(two, GENESIS_HASH)


def test_naive_and_utc_aware_times_hash_the_same() -> None:
    aware = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone.utc)
    naive = aware.replace(tzinfo=None)
    assert format_time(naive) == format_time(aware) == "2026-01-02T03:04:05.000006Z"
    assert event_hash(make_event(1, at=naive), GENESIS_HASH) == event_hash(make_event(1, at=aware), GENESIS_HASH)


def test_other_offsets_are_converted_to_utc() -> None:
    beijing = timezone(timedelta(hours=8))
    local = datetime(2026, 1, 2, 11, 4, 5, tzinfo=beijing)
    assert format_time(local) == "2026-01-02T03:04:05.000000Z"
    utc = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert event_hash(make_event(1, at=local), GENESIS_HASH) == event_hash(make_event(1, at=utc), GENESIS_HASH)


def test_microseconds_are_significant() -> None:
    a = datetime(2026, 1, 2, 3, 4, 5, 1, tzinfo=timezone.utc)
    b = datetime(2026, 1, 2, 3, 4, 5, 2, tzinfo=timezone.utc)
    assert event_hash(make_event(1, at=a), GENESIS_HASH) != event_hash(make_event(1, at=b), GENESIS_HASH)


def test_chinese_text_is_encoded_as_utf8_not_escaped() -> None:
    event = make_event(1, case_number="(2024)浙0102执1234号", details={"place": "杭州市西湖区"})
    raw = canonical_bytes(event, GENESIS_HASH)
    assert "浙0102执1234号".encode("utf-8") in raw
    assert "杭州市西湖区".encode("utf-8") in raw
    assert b"\\u" not in raw
    assert b", " not in raw and b": " not in raw  # no spaces


# --- property: any single-field change is detected ------------------------------

N_EVENTS = 5

_text = st.text(max_size=20)
_json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), _text)
_details = st.dictionaries(st.text(max_size=8), st.one_of(_json_scalar, st.lists(_json_scalar, max_size=3)), max_size=4)
_aware_time = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(timezone.utc)
)


def _new_value_strategy(field: str):
    if field == "seq":
        return st.integers(-5, 50)
    if field == "at":
        return _aware_time
    if field == "details":
        return _details
    if field in ("prev_hash", "hash"):
        return st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
    return st.one_of(st.none(), _text)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_single_field_change_is_detected(data) -> None:
    chain = build_chain(N_EVENTS)
    index = data.draw(st.integers(0, N_EVENTS - 1), label="index")
    field = data.draw(st.sampled_from(HASHED_FIELDS + ("prev_hash", "hash")), label="field")
    old = chain[index][field]
    new = data.draw(_new_value_strategy(field).filter(lambda v: v != old or type(v) is not type(old)), label="new")
    chain[index][field] = new
    report = verify_chain(chain)
    assert report.ok is False
    assert report.first_bad_seq == index + 1
    assert report.events_checked == index
    assert report.problem


# --- the fast encoding is the reference encoding ----------------------------------


_any_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=False, allow_infinity=False),
              st.text(max_size=12)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_fast_canonical_bytes_equal_the_reference(data) -> None:
    """canonical_bytes lays the JSON out from a template; the bytes must be exactly
    those of json.dumps over the whole mapping, or old chains would stop verifying."""
    from audit.chain import canonical_bytes_reference

    event = {name: data.draw(st.one_of(st.none(), st.text(max_size=10), st.integers(-5, 5)), label=name)
             for name in HASHED_FIELDS}
    event["seq"] = data.draw(st.integers(0, 2**62), label="seq")
    event["at"] = data.draw(st.one_of(_aware_time, st.text(max_size=30)), label="at")
    event["details"] = data.draw(st.dictionaries(st.text(max_size=8), _any_json, max_size=4), label="details")
    prev = data.draw(st.text(alphabet="0123456789abcdef", min_size=64, max_size=64), label="prev")
    assert canonical_bytes(event, prev) == canonical_bytes_reference(event, prev)


def test_the_fast_event_mac_is_hmac_sha256():
    import hmac as std_hmac

    from audit.chain import event_mac, event_mac_function

    for key in (b"k" * 32, b"short", b"x" * 100):
        fast = event_mac_function(key)
        for digest in ("0" * 64, "ab" * 32):
            assert fast(digest) == event_mac(key, digest) == std_hmac.new(key, digest.encode(), "sha256").hexdigest()


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_one_encoding_of_the_content_gives_the_leaf_and_the_chain_hash(data) -> None:
    """An event being appended is encoded once (audit/store.py) for its leaf and its
    chain hash: both must be exactly those of leaf_bytes and event_hash."""
    from audit.chain import (LEAF_FIELDS, CanonicalJSONText, canonical_json, content_hash, content_leaf_bytes,
                             encoded_content, leaf_bytes)

    event = {name: data.draw(st.one_of(st.none(), st.text(max_size=10)), label=name) for name in HASHED_FIELDS}
    event["seq"] = data.draw(st.integers(1, 2**62), label="seq")
    event["at"] = format_time(data.draw(_aware_time, label="at"))
    details = data.draw(st.dictionaries(st.text(max_size=8), _any_json, max_size=4), label="details")
    event["details"] = CanonicalJSONText(canonical_json(details))
    prev = data.draw(st.text(alphabet="0123456789abcdef", min_size=64, max_size=64), label="prev")
    encoded = encoded_content(tuple(str.__str__(event["details"]) if name == "details" else event[name]
                                    for name in LEAF_FIELDS))
    assert content_leaf_bytes(encoded) == leaf_bytes({**event, "details": details})
    assert content_hash(encoded, event["seq"], prev) == event_hash({**event, "details": details}, prev)


def test_the_fast_hmac_is_hmac_sha256():
    import hmac as std_hmac

    from audit.chain import hmac_sha256_function

    for key in (b"k" * 32, b"short", b"x" * 100):
        for message in (b"", "330102198703151157".encode(), "名字".encode()):
            assert hmac_sha256_function(key)(message) == std_hmac.new(key, message, "sha256").hexdigest()
