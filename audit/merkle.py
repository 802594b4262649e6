"""The audit log's Merkle tree (RFC 9162 section 2.1), as pure functions.

Leaves are the events in sequence order (leaf index = seq - 1); a leaf's hash is
SHA-256(0x00 || leaf bytes), an inner node's SHA-256(0x01 || left || right), so a
leaf can never pass for a node. The signed checkpoint covers the tree's size and
root (audit/checkpoints.py): with an inclusion proof anyone holding a checkpoint
can check that one event is in the log, and with a consistency proof that a later
checkpoint's tree extends an earlier one's (nothing rewritten, nothing removed).

Storage keeps only the hashes of *perfect* subtrees: node (level, index) is the
root of leaves [index * 2**level, (index + 1) * 2**level). Any range the RFC's
recursions ask for starts on a multiple of its own largest power of two, so it is
a few perfect subtrees joined: ``range_hash`` reads O(log n) of them.
"""

from __future__ import annotations

import hashlib
from typing import Callable, Iterable, Sequence

# Reads the hash of the perfect subtree (level, index); raises KeyError if absent.
NodeReader = Callable[[int, int], bytes]

_sha256 = hashlib.sha256


class ProofError(ValueError):
    """A proof asked for sizes or an index the tree does not have; the message says which."""


def leaf_hash(leaf: bytes) -> bytes:
    return _sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH over leaf hashes held in memory (the definition; tests and migrations)."""
    n = len(leaf_hashes)
    if n == 0:
        return _sha256(b"").digest()
    if n == 1:
        return leaf_hashes[0]
    k = _split(n)
    return node_hash(root_of(leaf_hashes[:k]), root_of(leaf_hashes[k:]))


def range_hash(read: NodeReader, start: int, end: int) -> bytes:
    """MTH(D[start:end]) from stored perfect subtrees."""
    n = end - start
    if n <= 0:
        return _sha256(b"").digest()
    if n & (n - 1) == 0 and start % n == 0:
        return read(n.bit_length() - 1, start // n)
    k = _split(n)
    return node_hash(range_hash(read, start, start + k), range_hash(read, start + k, end))


def tree_root(read: NodeReader, size: int) -> bytes:
    return range_hash(read, 0, size)


def inclusion_path(read: NodeReader, index: int, size: int) -> list[bytes]:
    """PATH(index, D[0:size]) of RFC 9162 2.1.3.1, leaf-side first."""
    if not 0 <= index < size:
        raise ProofError(f"event index {index} is not in a tree of {size} events")
    path: list[bytes] = []

    def walk(m: int, start: int, end: int) -> None:
        n = end - start
        if n <= 1:
            return
        k = _split(n)
        if m < k:
            walk(m, start, start + k)
            path.append(range_hash(read, start + k, end))
        else:
            walk(m - k, start + k, end)
            path.append(range_hash(read, start, start + k))

    walk(index, 0, size)
    return path


def consistency_path(read: NodeReader, first: int, second: int) -> list[bytes]:
    """PROOF(first, D[0:second]) of RFC 9162 2.1.4.1."""
    if not 0 < first <= second:
        raise ProofError(f"a consistency proof needs 0 < from <= to, not from={first} to={second}")
    path: list[bytes] = []

    def subproof(m: int, start: int, end: int, whole: bool) -> None:
        n = end - start
        if m == n:
            if not whole:
                path.append(range_hash(read, start, end))
            return
        k = _split(n)
        if m <= k:
            subproof(m, start, start + k, whole)
            path.append(range_hash(read, start + k, end))
        else:
            subproof(m - k, start + k, end, False)
            path.append(range_hash(read, start, start + k))

    subproof(first, 0, second, True)
    return path


def verify_inclusion(leaf: bytes, index: int, size: int, path: Iterable[bytes], root: bytes) -> bool:
    """RFC 9162 2.1.3.2: whether ``leaf`` (a leaf hash) is at ``index`` of the tree of ``size`` with ``root``."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes,
                       path: Sequence[bytes]) -> bool:
    """RFC 9162 2.1.4.2: whether the tree of ``second`` leaves extends the one of ``first``."""
    if not 0 < first <= second:
        return False
    if first == second:
        return len(path) == 0 and first_root == second_root
    path = list(path)
    if not path:
        return False
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_root and sr == second_root


def right_edge(size: int) -> list[tuple[int, int]]:
    """The perfect subtrees (level, index) a tree of ``size`` leaves ends with, one
    per set bit of ``size``: the only nodes ``appended_nodes`` reads, so a caller can
    fetch them all in one query."""
    return [(level, (size >> level) - 1) for level in range(size.bit_length()) if size >> level & 1]


def appended_nodes(read: NodeReader, size: int, new_leaves: Sequence[bytes]) -> list[tuple[int, int, bytes]]:
    """The perfect subtrees (level, index, hash) completed by appending ``new_leaves``
    to a tree of ``size`` leaves, the leaves themselves (level 0) included. Reads
    only the right edge of the old tree (the left siblings still waiting for a pair)."""
    made: dict[tuple[int, int], bytes] = {}

    def get(level: int, index: int) -> bytes:
        found = made.get((level, index))
        return found if found is not None else read(level, index)

    out: list[tuple[int, int, bytes]] = []
    for offset, leaf in enumerate(new_leaves):
        index, level, digest = size + offset, 0, leaf
        made[(0, index)] = digest
        out.append((0, index, digest))
        while index & 1:  # a right child: its parent is now complete
            digest = node_hash(get(level, index - 1), digest)
            level, index = level + 1, index >> 1
            made[(level, index)] = digest
            out.append((level, index, digest))
    return out
