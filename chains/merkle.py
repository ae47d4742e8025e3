"""Merkle tree log of RFC 9162 (Certificate Transparency 2.0), section 2.1.

Leaf hash SHA-256(0x00 || data), node hash SHA-256(0x01 || left || right); a tree of n leaves splits
at k, the largest power of two below n, and an odd last node is never duplicated. The empty tree
hashes to SHA-256(""). Every perfect subtree is aligned: it covers leaves [j*2**l, (j+1)*2**l) and is
addressed as node (level l, index j). A store that keeps those nodes answers any proof with
O(log^2 n) lookups (`range_hash`); `Frontier` appends leaves and emits the nodes they complete.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

__all__ = [
    "EMPTY_ROOT",
    "Frontier",
    "NodeLookup",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "range_hash",
    "root_from_inclusion",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

# node(level, index) -> hash of the perfect subtree over leaves [index << level, (index + 1) << level)
NodeLookup = Callable[[int, int], bytes]


def leaf_hash(data: bytes) -> bytes:
    """MTH({d}) = SHA-256(0x00 || d)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def range_hash(lo: int, hi: int, node: NodeLookup) -> bytes:
    """MTH(D[lo:hi]) for a subtree that RFC 9162's recursion reaches (lo aligned to its splits)."""
    n = hi - lo
    if n <= 0:
        raise ValueError(f"empty range [{lo}, {hi})")
    if n & (n - 1) == 0 and lo % n == 0:
        level = n.bit_length() - 1
        return node(level, lo >> level)
    k = _split(n)
    return node_hash(range_hash(lo, lo + k, node), range_hash(lo + k, hi, node))


def _check_size(size: int, what: str) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError(f"{what} must be a non-negative int, got {size!r}")


def inclusion_proof(index: int, size: int, node: NodeLookup) -> list[bytes]:
    """PATH(index, D[size]): the audit path of leaf `index` in the tree of the first `size` leaves."""
    _check_size(index, "leaf index")
    _check_size(size, "tree size")
    if index >= size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    path: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:  # descend from the root, collecting siblings top-down
        k = _split(hi - lo)
        if index < lo + k:
            path.append(range_hash(lo + k, hi, node))
            hi = lo + k
        else:
            path.append(range_hash(lo, lo + k, node))
            lo = lo + k
    path.reverse()
    return path


def consistency_proof(size1: int, size2: int, node: NodeLookup) -> list[bytes]:
    """PROOF(size1, D[size2]) of RFC 9162 section 2.1.4.1 (empty when size1 is 0 or size2)."""
    _check_size(size1, "first tree size")
    _check_size(size2, "second tree size")
    if size1 > size2:
        raise ValueError(f"first tree size {size1} exceeds second tree size {size2}")
    if size1 == 0 or size1 == size2:
        return []
    path: list[bytes] = []
    lo, hi, m, complete = 0, size2, size1, True  # SUBPROOF(m, D[lo:hi], complete)
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            path.append(range_hash(lo + k, hi, node))
            hi = lo + k
        else:
            path.append(range_hash(lo, lo + k, node))
            lo, m, complete = lo + k, m - k, False
    if not complete:
        path.append(range_hash(lo, hi, node))
    path.reverse()
    return path


def _is_hash(value: object) -> bool:
    return isinstance(value, (bytes, bytearray)) and len(value) == HASH_SIZE


def root_from_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes]) -> bytes | None:
    """The root that `path` proves for `leaf` at `index` (RFC 9162 2.1.3.2), or None if malformed."""
    if not (isinstance(index, int) and isinstance(size, int) and 0 <= index < size):
        return None
    if not _is_hash(leaf) or not all(_is_hash(p) for p in path):
        return None
    fn, sn, r = index, size - 1, bytes(leaf)
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return r if sn == 0 else None


def verify_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes], root: bytes) -> bool:
    """True when `path` proves leaf hash `leaf` is leaf `index` of the tree of `size` with `root`."""
    return _is_hash(root) and root_from_inclusion(index, size, leaf, path) == bytes(root)


def verify_consistency(size1: int, size2: int, root1: bytes, root2: bytes,
                       path: Sequence[bytes]) -> bool:
    """True when `path` proves the tree (size1, root1) is a prefix of (size2, root2), RFC 9162 2.1.4.2."""
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in (size1, size2)):
        return False
    if not (_is_hash(root1) and _is_hash(root2)) or not all(_is_hash(p) for p in path):
        return False
    if size1 < 0 or size2 < size1:
        return False
    if size1 == size2:
        return not path and bytes(root1) == bytes(root2)
    if size1 == 0:
        return not path
    if not path:
        return False
    nodes = list(path)
    if size1 & (size1 - 1) == 0:  # first is a power of two: its root is a node of the second tree
        nodes.insert(0, bytes(root1))
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = nodes[0]
    for c in nodes[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == bytes(root1) and sr == bytes(root2)


class Frontier:
    """The right edge of a growing tree: one perfect subtree root per set bit of `size`.

    `append` returns the nodes (level, index, hash) that the new leaf completes, level 0 first, so a
    store that keeps them can serve proofs; `root()` folds the peaks right to left into MTH(D[size]).
    """

    __slots__ = ("peaks", "size")

    def __init__(self, size: int = 0, peaks: Sequence[bytes] = ()) -> None:
        if len(peaks) != size.bit_count():
            raise ValueError(f"a tree of size {size} has {size.bit_count()} peaks, got {len(peaks)}")
        self.size = size
        self.peaks = list(peaks)  # left to right, i.e. largest subtree first

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        index = self.size
        created = [(0, index, leaf)]
        h, level = leaf, 0
        while index >> level & 1:  # a set bit at `level` means a left sibling waits on the edge
            h = node_hash(self.peaks.pop(), h)
            level += 1
            created.append((level, index >> level, h))
        self.peaks.append(h)
        self.size += 1
        return created

    def root(self) -> bytes:
        if not self.peaks:
            return EMPTY_ROOT
        acc = self.peaks[-1]
        for peak in reversed(self.peaks[:-1]):
            acc = node_hash(peak, acc)
        return acc

    def copy(self) -> Frontier:
        return Frontier(self.size, self.peaks)
