"""RFC 9162 tree hashes and consistency proofs, against the RFC's recursive definition."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.merkle import (
    EMPTY_ROOT,
    TreeBuilder,
    consistency_proof,
    leaf_hash,
    node_hash,
    tree_root,
    verify_consistency,
)


def mth(leaves: list[bytes]) -> bytes:
    """MTH of RFC 9162, section 2.1.1, written as the RFC says."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = 1 << ((n - 1).bit_length() - 1)
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


LEAVES = [leaf_hash(f"{i:064x} atomic-host/composes/{i}.json\n".encode()) for i in range(33)]


def test_hashes_are_domain_separated() -> None:
    assert leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert node_hash(b"a", b"b") == hashlib.sha256(b"\x01ab").digest()
    assert tree_root([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()


def test_every_prefix_root_is_the_rfcs() -> None:
    builder = TreeBuilder()
    for n, leaf in enumerate(LEAVES, start=1):
        builder.append(leaf)
        assert builder.root() == mth(LEAVES[:n])
        resumed = TreeBuilder.resume(builder.compact_range())
        assert resumed.size == n and resumed.root() == builder.root()


@given(st.integers(1, 33), st.data())
def test_consistency_proofs_verify_and_bind_both_roots(new: int, data: st.DataObject) -> None:
    old = data.draw(st.integers(0, new))
    proof = consistency_proof(LEAVES[:new], old)
    old_root, new_root = mth(LEAVES[:old]), mth(LEAVES[:new])
    assert verify_consistency(old, new, old_root, new_root, proof)
    if 0 < old < new:
        other = mth(LEAVES[1 : old + 1])
        assert not verify_consistency(old, new, other, new_root, proof)
        assert not verify_consistency(old, new, old_root, mth(LEAVES[1 : new + 1]), proof)


@pytest.mark.parametrize(("old", "new"), [(5, 4), (-1, 3)])
def test_a_shrinking_tree_is_never_consistent(old: int, new: int) -> None:
    assert not verify_consistency(old, new, EMPTY_ROOT, EMPTY_ROOT, [])
    with pytest.raises(ValueError, match="old size"):
        consistency_proof(LEAVES[:new] if new >= 0 else [], old)
