"""Signed checkpoints of the chain head, as pure functions over plain data.

A hash chain on its own cannot show that its newest events were removed, nor
that someone rewrote it from some event on and recomputed every hash after:
both leave a chain that is sound in itself. A checkpoint is an Ed25519
signature over (seq, head hash, event count, signing time, key id); whoever
holds only the public key can then tell that the chain once reached ``seq``
with that head, so a shorter chain (truncation) or another hash at ``seq``
(rewriting) is caught.

The signed bytes are canonical JSON (sorted keys, no spaces, UTF-8) with a
``kind`` tag, so a checkpoint signature can never be replayed as some other
signed message.

Checkpoints are chained too (kind ``audit-checkpoint-v2``): each one also signs
its ``number`` (1, 2, 3, ... counting every checkpoint before it) and
``prev_checkpoint_hash``, the ``checkpoint_hash`` of the one before it. A
checkpoint deleted from among the others then breaks the next one's link; the
newest ones deleted are seen against a copy kept outside the database (the
checkpoint file, or what an auditor fetched from the API). Checkpoints written
before the chain (v1: no number) verify as before and sort first.

Since the sequencer (migration 0018) a checkpoint also signs the Merkle tree over
the events (kind ``audit-checkpoint-v3``): ``tree_size`` (= ``seq``) and
``root_hash`` (audit/merkle.py), the root that inclusion and consistency proofs
are checked against. v1 and v2 checkpoints keep verifying as they were signed.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Iterator, Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from audit.chain import GENESIS_HASH, ChainReport, format_time, verify_chain

CHECKPOINT_KIND = "audit-checkpoint-v1"
CHAINED_CHECKPOINT_KIND = "audit-checkpoint-v2"
TREE_CHECKPOINT_KIND = "audit-checkpoint-v3"


def public_key_id(public_key: Ed25519PublicKey) -> str:
    """First 16 hex digits of SHA-256 over the raw public key: names the key in each checkpoint."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the checkpoint public key must be an Ed25519 key")
    return key


def load_private_key(pem: bytes) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the checkpoint signing key must be an Ed25519 key")
    return key


def is_chained(checkpoint: Mapping[str, Any]) -> bool:
    return checkpoint.get("number") is not None


def has_tree(checkpoint: Mapping[str, Any]) -> bool:
    return checkpoint.get("tree_size") is not None


def signed_bytes(checkpoint: Mapping[str, Any]) -> bytes:
    signed_at = checkpoint["signed_at"]
    kind = CHAINED_CHECKPOINT_KIND if is_chained(checkpoint) else CHECKPOINT_KIND
    if is_chained(checkpoint) and has_tree(checkpoint):
        kind = TREE_CHECKPOINT_KIND
    fields: dict[str, Any] = {
        "kind": kind,
        "seq": int(checkpoint["seq"]),
        "head_hash": checkpoint["head_hash"],
        "event_count": int(checkpoint["event_count"]),
        "signed_at": format_time(signed_at) if isinstance(signed_at, datetime) else signed_at,
        "key_id": checkpoint["key_id"],
    }
    if is_chained(checkpoint):
        fields["number"] = int(checkpoint["number"])
        fields["prev_checkpoint_hash"] = checkpoint["prev_checkpoint_hash"]
        if has_tree(checkpoint):
            fields["tree_size"] = int(checkpoint["tree_size"])
            fields["root_hash"] = checkpoint["root_hash"]
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign_checkpoint(key: Ed25519PrivateKey, *, seq: int, head_hash: str, event_count: int,
                    signed_at: datetime, number: int | None = None,
                    prev_checkpoint_hash: str | None = None, tree_size: int | None = None,
                    root_hash: str | None = None) -> dict[str, Any]:
    """A checkpoint row: the fields, the key id and the base64 signature. With
    ``number`` (and the previous one's hash), a chained checkpoint; with
    ``tree_size`` and ``root_hash`` too, one that signs the Merkle tree."""
    checkpoint: dict[str, Any] = {"seq": seq, "head_hash": head_hash, "event_count": event_count,
                                  "signed_at": signed_at, "key_id": public_key_id(key.public_key())}
    if number is not None:
        checkpoint.update(number=number, prev_checkpoint_hash=prev_checkpoint_hash or GENESIS_HASH)
        if tree_size is not None:
            checkpoint.update(tree_size=tree_size, root_hash=root_hash)
    checkpoint["signature"] = base64.b64encode(key.sign(signed_bytes(checkpoint))).decode("ascii")
    return checkpoint


def checkpoint_hash(checkpoint: Mapping[str, Any]) -> str:
    """What the next checkpoint signs as ``prev_checkpoint_hash``: SHA-256 over this
    one's signed bytes and its signature."""
    return hashlib.sha256(signed_bytes(checkpoint) + b"\n" + checkpoint["signature"].encode("ascii")).hexdigest()


def checkpoint_record(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """A checkpoint as the API serves it and the checkpoint file holds it: every
    signed field (``signed_at`` as signed), the signature and its own hash."""
    signed_at = checkpoint["signed_at"]
    record = {name: checkpoint.get(name) for name in RECORD_FIELDS}
    record["signed_at"] = format_time(signed_at) if isinstance(signed_at, datetime) else signed_at
    record["checkpoint_hash"] = checkpoint_hash(checkpoint)
    return record


RECORD_FIELDS = ("seq", "head_hash", "event_count", "signed_at", "key_id", "signature", "number",
                 "prev_checkpoint_hash", "tree_size", "root_hash")


def in_chain_order(checkpoints: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The checkpoints once each (the same signature twice is one checkpoint: a
    copy from the file and from the database), unchained ones first by seq, then
    chained ones by number."""
    unique: dict[str, Mapping[str, Any]] = {}
    for checkpoint in checkpoints:
        unique.setdefault(checkpoint["signature"], checkpoint)
    old = sorted_checkpoints(c for c in unique.values() if not is_chained(c))
    return old + sorted((c for c in unique.values() if is_chained(c)), key=lambda c: int(c["number"]))


def checkpoint_chain_problem(ordered: list[Mapping[str, Any]]) -> tuple[int, str, str] | None:
    """Where the chain of checkpoints (``in_chain_order``, signatures already
    checked) breaks: (seq of the checkpoint, kind, message), or None.

    ``checkpoint_missing``: a number skipped or a link to a checkpoint that is not
    there (deleted); ``checkpoint_forked``: two checkpoints with one number (the
    database's newest deleted and the writer going on from an older one, seen
    with the outside copy); ``out_of_order``: a later checkpoint of an earlier head."""
    previous: Mapping[str, Any] | None = None
    for place, checkpoint in enumerate(ordered, 1):
        if is_chained(checkpoint):
            number, seq = int(checkpoint["number"]), int(checkpoint["seq"])
            if previous is not None and is_chained(previous) and int(previous["number"]) == number:
                return seq, "checkpoint_forked", (f"two checkpoints are number {number} (at events {previous['seq']} "
                                                  f"and {seq}): the database's checkpoints were cut back and written anew")
            if number != place:
                return seq, "checkpoint_missing", (f"checkpoint {number} (at event {seq}) is the {place}th found: "
                                                   f"{abs(number - place)} checkpoints before it were deleted")
            expected = checkpoint_hash(previous) if previous is not None else GENESIS_HASH
            if checkpoint["prev_checkpoint_hash"] != expected:
                return seq, "checkpoint_missing", (f"checkpoint {number} (at event {seq}) does not link to the "
                                                   "checkpoint before it: that one was deleted or replaced")
            if previous is not None and seq < int(previous["seq"]):
                return seq, "out_of_order", f"checkpoint {number} signs event {seq}, before its predecessor's head"
        previous = checkpoint
    return None


# The checkpoint public keys a verifier knows: one key, or every key the log was ever
# signed with by key id (a rotation keeps the retired keys: gateway keys rotate --checkpoint).
PublicKeys = Ed25519PublicKey | Mapping[str, Ed25519PublicKey]


def keyring(keys: Iterable[Ed25519PublicKey]) -> dict[str, Ed25519PublicKey]:
    return {public_key_id(k): k for k in keys}


def signature_problem(checkpoint: Mapping[str, Any], public_key: PublicKeys) -> tuple[str, str] | None:
    """``None`` if the checkpoint was signed by the private key of the public key it
    names (among ``public_key``) over exactly these fields; otherwise (kind, message)."""
    seq = checkpoint["seq"]
    known = public_key if isinstance(public_key, Mapping) else keyring([public_key])
    named = known.get(checkpoint["key_id"])
    if named is None:
        return "foreign_key", (f"checkpoint at event {seq} names key {checkpoint['key_id']}, "
                               f"not an audit checkpoint key ({', '.join(sorted(known))})")
    public_key = named
    try:
        public_key.verify(base64.b64decode(checkpoint["signature"], validate=True), signed_bytes(checkpoint))
    except (InvalidSignature, ValueError):
        return "bad_signature", f"checkpoint at event {seq}: the signature does not match its fields"
    if int(checkpoint["event_count"]) != int(seq):
        return "bad_signature", f"checkpoint at event {seq} counts {checkpoint['event_count']} events"
    if has_tree(checkpoint) and int(checkpoint["tree_size"]) != int(seq):
        return "bad_signature", f"checkpoint at event {seq} signs a tree of {checkpoint['tree_size']} events"
    return None


@dataclass(frozen=True)
class IntegrityReport:
    """The chain walk and the checkpoint check together."""

    chain: ChainReport
    checkpoints_checked: int
    last_checkpoint_seq: int | None
    # Whether each event's MAC was checked (it needs the event key: the server
    # and `gateway audit verify` next to the keys have it, an offline auditor not).
    macs_checked: bool = False
    # How many checkpoints came from a copy outside the database (0: none given).
    outside_checkpoints: int = 0
    # Sealing: whether every event is covered by a checkpoint or younger than the
    # bound; if not, how many events follow the newest checkpoint and when the
    # oldest of them was written. Not a break (``ok`` stays), but those events
    # could be cut without trace: the CLI exits 3 for it.
    sealed: bool = True
    unsealed_events: int = 0
    unsealed_since: str | None = None

    @property
    def ok(self) -> bool:
        return self.chain.ok

    def as_dict(self) -> dict[str, Any]:
        c = self.chain
        return {"ok": c.ok, "events_checked": c.events_checked, "head_seq": c.head_seq, "head_hash": c.head_hash,
                "first_bad_seq": c.first_bad_seq, "kind": c.kind, "problem": c.problem,
                "checkpoints_checked": self.checkpoints_checked, "last_checkpoint_seq": self.last_checkpoint_seq,
                "macs_checked": self.macs_checked, "outside_checkpoints": self.outside_checkpoints,
                "sealed": self.sealed, "unsealed_events": self.unsealed_events, "unsealed_since": self.unsealed_since}


def with_mac_verdict(report: IntegrityReport, *, macs_checked: bool) -> IntegrityReport:
    """The report with the chain's first MAC failure as its break, if the chain
    and checkpoints hold otherwise (a structural break says more precisely what
    was done, and comes first)."""
    chain = report.chain.with_mac_break() if macs_checked else report.chain
    return dataclasses.replace(report, chain=chain, macs_checked=macs_checked)


def sorted_checkpoints(checkpoints: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(checkpoints, key=lambda c: (int(c["seq"]), str(c["signed_at"])))


def signature_failure(marks: list[Mapping[str, Any]], public_key: PublicKeys | None, *,
                      start_seq: int, start_hash: str) -> IntegrityReport | None:
    """The first checkpoint whose signature does not hold, as a failed report; None if all hold."""
    if marks and public_key is None:
        report = ChainReport(False, 0, start_seq - 1, start_hash, int(marks[0]["seq"]),
                             f"{len(marks)} checkpoints cannot be checked without the checkpoint public key",
                             "no_public_key")
        return IntegrityReport(report, 0, None)
    if public_key is None:  # and no checkpoints: nothing to check
        return None
    for checkpoint in marks:
        problem = signature_problem(checkpoint, public_key)
        if problem:
            kind, message = problem
            report = ChainReport(False, 0, start_seq - 1, start_hash, int(checkpoint["seq"]), message, kind)
            return IntegrityReport(report, 0, None)
    return None


def hold_against_checkpoints(chain: ChainReport, marks: list[Mapping[str, Any]], hashes: Mapping[int, str], *,
                             start_seq: int) -> IntegrityReport:
    """Hold a walked chain against checkpoints whose signatures hold. ``hashes``
    gives the walked chain's hash at each checkpointed seq up to its head."""
    last_good_mark = start_seq - 1
    checked = 0
    for checkpoint in marks:
        seq = int(checkpoint["seq"])
        if seq < start_seq:
            checked += 1
            continue
        if seq > chain.head_seq:
            if chain.ok:  # the chain ends before a head that was signed: its tail is gone
                report = ChainReport(False, chain.events_checked, chain.head_seq, chain.head_hash, chain.head_seq + 1,
                                     f"the log ends at event {chain.head_seq} but a checkpoint signed at "
                                     f"{checkpoint['signed_at']} shows it reached event {seq}: "
                                     f"events {chain.head_seq + 1}..{seq} or more were removed", "truncated")
                return IntegrityReport(report, checked, seq)
            break  # the chain broke earlier; that break is the first one
        if hashes.get(seq) != checkpoint["head_hash"]:
            report = ChainReport(False, chain.events_checked, chain.head_seq, chain.head_hash, last_good_mark + 1,
                                 f"event {seq} has another hash than the checkpoint signed at {checkpoint['signed_at']}: "
                                 f"the log was rewritten after event {last_good_mark}", "rewritten")
            return IntegrityReport(report, checked, seq)
        last_good_mark, checked = seq, checked + 1
    return IntegrityReport(chain, checked, int(marks[-1]["seq"]) if marks else None)


def verify_with_checkpoints(
    events: Iterable[Mapping[str, Any]],
    checkpoints: Iterable[Mapping[str, Any]],
    public_key: PublicKeys | None,
    *,
    start_seq: int = 1,
    start_hash: str = GENESIS_HASH,
) -> IntegrityReport:
    """Walk the chain from ``start_seq`` and hold it against every checkpoint.

    Checkpoints below ``start_seq`` (their events archived) are checked for their
    signature only; the caller checks them against the archive. A break is
    reported at the earliest event it can be pinned to:

    * a bad or foreign signature: at the checkpoint's seq (the record of the head
      itself cannot be trusted);
    * a checkpointed head whose event has another hash: the chain was rewritten
      somewhere after the previous checkpoint that still matches;
    * a checkpoint past the last event: the events after the head were removed.

    ``public_key`` may be None only while there are no checkpoints yet.
    """
    marks = sorted_checkpoints(checkpoints)
    failed = signature_failure(marks, public_key, start_seq=start_seq, start_hash=start_hash)
    if failed:
        return failed
    wanted = {int(c["seq"]) for c in marks if int(c["seq"]) >= start_seq}
    seen: dict[int, str] = {}

    def remember(stream: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
        for event in stream:
            if event["seq"] in wanted:
                seen[event["seq"]] = event["hash"]
            yield event

    chain = verify_chain(remember(events), start_seq=start_seq, start_hash=start_hash)
    return hold_against_checkpoints(chain, marks, seen, start_seq=start_seq)
