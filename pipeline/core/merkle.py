"""RFC 9162 Merkle tree hashes: tree heads over the log index, and consistency proofs.

Pure functions, no I/O. A leaf is ``SHA-256(0x00 || entry)``, an inner node
``SHA-256(0x01 || left || right)``; a tree of ``n > 1`` leaves splits at ``k``, the
largest power of two smaller than ``n`` (RFC 9162, section 2.1.1). The tree of no leaves
hashes to ``SHA-256()``.

:class:`TreeBuilder` appends leaves one at a time and gives the root of every prefix on
the way (its state is the compact range: one perfect subtree per set bit of the size), so
checking many tree heads against one index costs one pass. :func:`consistency_proof` and
:func:`verify_consistency` are RFC 9162's section 2.1.4, for a reader that keeps only a
tree head and not the whole index (a mirror, or a site verifier).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(entry: bytes) -> bytes:
    """The hash of one leaf: ``SHA-256(0x00 || entry)``."""
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an inner node: ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (``n > 1``)."""
    return 1 << ((n - 1).bit_length() - 1)


class TreeBuilder:
    """The Merkle tree of a growing list of leaves; :meth:`root` of the leaves so far."""

    def __init__(self) -> None:
        self.size = 0
        self._stack: list[tuple[int, bytes]] = []  # (leaves, hash) of perfect subtrees

    def append(self, leaf: bytes) -> None:
        """Add one leaf (its :func:`leaf_hash`)."""
        count, node = 1, leaf
        while self._stack and self._stack[-1][0] == count:
            left = self._stack.pop()[1]
            count, node = count * 2, node_hash(left, node)
        self._stack.append((count, node))
        self.size += 1

    def compact_range(self) -> list[tuple[int, bytes]]:
        """The state: (leaves, hash) of each perfect subtree, largest first."""
        return list(self._stack)

    @classmethod
    def resume(cls, compact_range: Sequence[tuple[int, bytes]]) -> TreeBuilder:
        """A builder in the state :meth:`compact_range` gave."""
        builder = cls()
        builder._stack = list(compact_range)
        builder.size = sum(n for n, _ in compact_range)
        return builder

    def root(self) -> bytes:
        """The tree hash of the leaves appended so far."""
        if not self._stack:
            return EMPTY_ROOT
        node = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            node = node_hash(left, node)
        return node


def tree_root(leaves: Sequence[bytes]) -> bytes:
    """The tree hash of ``leaves`` (each a :func:`leaf_hash`)."""
    builder = TreeBuilder()
    for leaf in leaves:
        builder.append(leaf)
    return builder.root()


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """RFC 9162's proof that the tree of ``leaves[:old_size]`` is a prefix of ``leaves``.

    Raises:
        ValueError: ``old_size`` is not between 0 and ``len(leaves)``.
    """
    if not 0 <= old_size <= len(leaves):
        raise ValueError(f"old size {old_size} not in 0..{len(leaves)}")
    if old_size in (0, len(leaves)):
        return []
    return _subproof(old_size, list(leaves), complete=True)


def _subproof(m: int, leaves: list[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [tree_root(leaves)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, leaves[:k], complete), tree_root(leaves[k:])]
    return [*_subproof(m - k, leaves[k:], False), tree_root(leaves[:k])]


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Whether ``proof`` shows the tree (``old_size``, ``old_root``) is a prefix of the tree
    (``new_size``, ``new_root``) (RFC 9162, section 2.1.4.2)."""
    if not 0 <= old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is the first node
        path.insert(0, old_root)
    if not path:
        return False
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == old_root and sr == new_root
