"""Inclusion and consistency proofs of the audit log's Merkle tree: built from
the stored tree (for the API), and checked offline against signed checkpoints
(for `gateway audit verify --inclusion-proof / --consistency-proof`).

A proof document carries the checkpoint that signs its tree (when one does); an
offline check holds the proof's root against that checkpoint, whose signature
it checks with the checkpoint public keys, so a proof is worth what the
signature is. A proof whose tree no checkpoint signs proves nothing yet: the
check says so and fails.
"""

from __future__ import annotations

from typing import Any, Mapping

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from audit.chain import HASHED_FIELDS, leaf_bytes
from audit.checkpoint_store import head_seq, load_checkpoints
from audit.checkpoints import PublicKeys, checkpoint_record, has_tree, signature_problem
from audit.merkle import (
    ProofError, consistency_path, inclusion_path, leaf_hash, tree_root, verify_consistency, verify_inclusion,
)
from audit.sequencing import node_reader
from audit.store import event_rows

_EVENT_FIELDS = (*HASHED_FIELDS, "prev_hash", "hash")


def _signing_checkpoint(session: Session | Connection, size: int) -> dict[str, Any] | None:
    for checkpoint in reversed(load_checkpoints(session)):
        if has_tree(checkpoint) and int(checkpoint["tree_size"]) == size:
            return checkpoint_record(checkpoint)
    return None


def newest_signed_size(session: Session | Connection) -> int | None:
    sizes = [int(c["tree_size"]) for c in load_checkpoints(session) if has_tree(c)]
    return max(sizes) if sizes else None


def inclusion_proof(session: Session | Connection, seq: int, tree_size: int | None = None) -> dict[str, Any]:
    """The proof that event ``seq`` is in the tree of ``tree_size`` events (default:
    the newest checkpoint's tree if it holds the event, else the whole log).
    ProofError names the argument that does not fit; LookupError if the event
    is not in the database (archived)."""
    size_now = head_seq(session)
    if tree_size is None:
        signed = newest_signed_size(session)
        tree_size = signed if signed is not None and signed >= seq else size_now
    if not 1 <= seq <= size_now:
        raise ProofError(f"event: the log has events 1..{size_now}, not {seq}")
    if not seq <= tree_size <= size_now:
        raise ProofError(f"tree_size: must be between the event ({seq}) and the log's size ({size_now}), not {tree_size}")
    rows = list(event_rows(session, after_seq=seq - 1, up_to_seq=seq))
    if not rows:
        raise LookupError(f"event {seq} is archived: its proof needs the archive file")
    event = {name: rows[0][name] for name in _EVENT_FIELDS}
    read = node_reader(session)
    return {"event": event, "leaf_index": seq - 1, "leaf_hash": read(0, seq - 1).hex(), "tree_size": tree_size,
            "root_hash": tree_root(read, tree_size).hex(),
            "audit_path": [h.hex() for h in inclusion_path(read, seq - 1, tree_size)],
            "checkpoint": _signing_checkpoint(session, tree_size)}


def consistency_proof(session: Session | Connection, first: int, second: int) -> dict[str, Any]:
    """The proof that the tree of ``second`` events extends the one of ``first``."""
    size_now = head_seq(session)
    if not 1 <= first:
        raise ProofError(f"from: must be at least 1, not {first}")
    if not first <= second <= size_now:
        raise ProofError(f"to: must be between from ({first}) and the log's size ({size_now}), not {second}")
    read = node_reader(session)
    return {"from": first, "to": second, "from_root": tree_root(read, first).hex(),
            "to_root": tree_root(read, second).hex(),
            "consistency_path": [h.hex() for h in consistency_path(read, first, second)],
            "from_checkpoint": _signing_checkpoint(session, first), "to_checkpoint": _signing_checkpoint(session, second)}


# --- offline checks -------------------------------------------------------------------

def _signed_root(document_checkpoint: Mapping[str, Any] | None, size: int, root: str,
                 known: list[Mapping[str, Any]], public_key: PublicKeys | None, what: str) -> str | None:
    """None if a checkpoint whose signature holds signs (size, root); else why not."""
    candidates = [c for c in [document_checkpoint, *known] if c and has_tree(c) and int(c["tree_size"]) == size]
    if not candidates:
        return f"{what}: no checkpoint signs a tree of {size} events, so its root {root} is vouched for by nothing"
    if public_key is None:
        return f"{what}: the checkpoint cannot be checked without the checkpoint public key"
    for checkpoint in candidates:
        problem = signature_problem(checkpoint, public_key)
        if problem:
            return f"{what}: {problem[1]}"
        if checkpoint["root_hash"] != root:
            return (f"{what}: the checkpoint signed at {checkpoint['signed_at']} signs root {checkpoint['root_hash']} "
                    f"for {size} events, not {root}")
    return None


def check_inclusion(document: Mapping[str, Any], public_key: PublicKeys | None,
                    checkpoints: list[Mapping[str, Any]] | None = None) -> tuple[bool, str]:
    """Recompute the event's leaf from its fields, walk the audit path to a root
    and hold that root against a signed checkpoint of the same tree size."""
    try:
        event, size, index = document["event"], int(document["tree_size"]), int(document["leaf_index"])
        path = [bytes.fromhex(h) for h in document["audit_path"]]
        root = bytes.fromhex(document["root_hash"])
        if int(event["seq"]) != index + 1:
            return False, f"leaf_index {index} is not the place of event {event['seq']}"
        leaf = leaf_hash(leaf_bytes(event))
    except (KeyError, TypeError, ValueError) as exc:
        return False, f"not an inclusion proof: {exc!r}"
    if leaf.hex() != document.get("leaf_hash"):
        return False, f"event {event['seq']}: its fields do not hash to the proof's leaf (the event was changed)"
    if not verify_inclusion(leaf, index, size, path, root):
        return False, f"event {event['seq']}: the audit path does not lead to root {root.hex()} of {size} events"
    unsigned = _signed_root(document.get("checkpoint"), size, root.hex(), checkpoints or [], public_key, "tree")
    if unsigned:
        return False, unsigned
    return True, f"event {event['seq']} is in the signed tree of {size} events (root {root.hex()})"


def check_consistency(document: Mapping[str, Any], public_key: PublicKeys | None,
                      checkpoints: list[Mapping[str, Any]] | None = None) -> tuple[bool, str]:
    """Check that the signed tree of ``to`` events extends the signed tree of ``from``."""
    try:
        first, second = int(document["from"]), int(document["to"])
        first_root, second_root = bytes.fromhex(document["from_root"]), bytes.fromhex(document["to_root"])
        path = [bytes.fromhex(h) for h in document["consistency_path"]]
    except (KeyError, TypeError, ValueError) as exc:
        return False, f"not a consistency proof: {exc!r}"
    if not verify_consistency(first, second, first_root, second_root, path):
        return False, f"the tree of {second} events does not extend the tree of {first} by this proof"
    for size, root, key in ((first, first_root, "from_checkpoint"), (second, second_root, "to_checkpoint")):
        unsigned = _signed_root(document.get(key), size, root.hex(), checkpoints or [], public_key, f"tree of {size}")
        if unsigned:
            return False, unsigned
    return True, f"the signed tree of {second} events extends the signed tree of {first}"
