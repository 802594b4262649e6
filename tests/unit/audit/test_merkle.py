"""The Merkle tree against RFC 9162's definitions, computed the slow way from the
leaves: roots, inclusion and consistency proofs for every index and size pair up
to a few dozen leaves, and the verifiers refusing what does not hold."""

from __future__ import annotations

import hashlib

import pytest

from audit.merkle import (
    ProofError, appended_nodes, consistency_path, inclusion_path, leaf_hash, node_hash, right_edge, root_of, tree_root,
    verify_consistency, verify_inclusion,
)

LEAVES = [leaf_hash(f"event {i}".encode()) for i in range(40)]


def _split(n):
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def rfc_path(m, leaves):
    """PATH(m, D[n]) exactly as RFC 9162 2.1.3.1 writes it."""
    n = len(leaves)
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return rfc_path(m, leaves[:k]) + [root_of(leaves[k:])]
    return rfc_path(m - k, leaves[k:]) + [root_of(leaves[:k])]


def rfc_subproof(m, leaves, whole):
    n = len(leaves)
    if m == n:
        return [] if whole else [root_of(leaves)]
    k = _split(n)
    if m <= k:
        return rfc_subproof(m, leaves[:k], whole) + [root_of(leaves[k:])]
    return rfc_subproof(m - k, leaves[k:], False) + [root_of(leaves[:k])]


def stored(leaves):
    """The perfect subtrees as the sequencer stores them, built by appending in uneven batches."""
    nodes, size, batches = {}, 0, [1, 2, 3, 5, 8, 13, 8]
    while size < len(leaves):
        batch = leaves[size:size + batches[len(nodes) % len(batches)]]
        for level, index, digest in appended_nodes(lambda lv, ix: nodes[(lv, ix)], size, batch):
            nodes[(level, index)] = digest
        size += len(batch)
    return lambda level, index: nodes[(level, index)]


READ = stored(LEAVES)


def test_hashes_are_the_rfcs_domain_separated_sha256():
    assert leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert node_hash(b"a", b"b") == hashlib.sha256(b"\x01ab").digest()
    assert root_of([]) == hashlib.sha256(b"").digest()
    assert root_of(LEAVES[:3]) == node_hash(node_hash(LEAVES[0], LEAVES[1]), LEAVES[2])


@pytest.mark.parametrize("size", range(1, 41))
def test_roots_and_inclusion_proofs_from_stored_nodes_match_the_definition(size):
    root = root_of(LEAVES[:size])
    assert tree_root(READ, size) == root
    for index in range(size):
        path = inclusion_path(READ, index, size)
        assert path == rfc_path(index, LEAVES[:size])
        assert verify_inclusion(LEAVES[index], index, size, path, root)
        other = LEAVES[(index + 1) % 40]
        assert not verify_inclusion(other, index, size, path, root) or size == 1 and other == LEAVES[index]
        assert not verify_inclusion(LEAVES[index], index, size * 2 + 1, path, root)  # a size of another shape
        if size > 1:
            assert not verify_inclusion(LEAVES[index], (index + 1) % size, size, path, root)  # wrong place


@pytest.mark.parametrize("second", range(1, 33))
def test_consistency_proofs_match_the_definition_and_verify(second):
    second_root = root_of(LEAVES[:second])
    for first in range(1, second + 1):
        proof = consistency_path(READ, first, second)
        assert proof == rfc_subproof(first, LEAVES[:second], True)
        first_root = root_of(LEAVES[:first])
        assert verify_consistency(first, second, first_root, second_root, proof)
        if first < second:
            assert not verify_consistency(first, second, root_of(LEAVES[1:first + 1]), second_root, proof)
            assert not verify_consistency(first, second * 2 + 1, first_root, second_root, proof)  # another shape
            assert not verify_consistency(first, second, first_root, root_of(LEAVES[:second - 1] + [LEAVES[39]]),
                                          proof)


def test_proofs_refuse_sizes_the_tree_cannot_have():
    with pytest.raises(ProofError, match="index 5"):
        inclusion_path(READ, 5, 5)
    with pytest.raises(ProofError, match="from=0"):
        consistency_path(READ, 0, 3)
    assert not verify_inclusion(LEAVES[0], 0, 0, [], LEAVES[0])
    assert not verify_consistency(0, 3, b"", b"", [])
    assert not verify_consistency(2, 2, LEAVES[0], LEAVES[1], [])


@pytest.mark.parametrize("size", range(0, 33))
def test_appending_reads_only_the_right_edge(size):
    """The sequencer fetches ``right_edge(size)`` in one query and nothing else."""
    stored = {(level, index): digest for level, index, digest in appended_nodes(lambda *_: b"", 0, LEAVES[:size])}
    edge = set(right_edge(size))
    read_outside: list[tuple[int, int]] = []

    def read(level, index):
        if (level, index) not in edge:
            read_outside.append((level, index))
        return stored[(level, index)]

    for more in (1, 2, 7):
        nodes = appended_nodes(read, size, LEAVES[size:size + more])
        whole = {**stored, **{(lv, ix): d for lv, ix, d in nodes}}
        assert tree_root(lambda lv, ix: whole[(lv, ix)], size + more) == root_of(LEAVES[:size + more])
    assert not read_outside
