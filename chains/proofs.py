"""Proofs about the public ledger's log, each checked against a tree head, never a bare root.

`InclusionProof.verify(head)` holds only when the proof is for exactly `head.size` transactions
and its audit path leads to `head.root`; `ConsistencyProof.verify(old, new)` only when its sizes
are the two heads' sizes and it shows the old log is a prefix of the new (RFC 9162 2.1.3 and
2.1.4). A proof that names its own tree size cannot borrow the root of another size. Check the
heads' signatures (`TreeHead.verify`) before trusting them.
"""

from __future__ import annotations

from dataclasses import dataclass

from chains.blocks import TreeHead
from chains.merkle import verify_consistency, verify_inclusion

__all__ = ["ConsistencyProof", "InclusionProof"]


def _head(value: object, what: str) -> TreeHead:
    if not isinstance(value, TreeHead):
        raise TypeError(f"{what} must be the TreeHead the proof is checked against (its size "
                        f"and root), got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class InclusionProof:
    """Leaf `leaf_index` (transaction `tx_id`) is in the log of `tree_size` transactions."""

    tx_id: str
    leaf_index: int
    tree_size: int
    path: tuple[bytes, ...]

    def verify(self, head: TreeHead) -> bool:
        """True when the proof shows the transaction in the log that `head` describes: the
        proof must be for that head's size, and its path must lead to that head's root.
        (Check the head's signature with `TreeHead.verify` first.)"""
        head = _head(head, "head")
        try:
            leaf = bytes.fromhex(self.tx_id)
        except (TypeError, ValueError):
            return False
        return self.tree_size == head.size and verify_inclusion(
            self.leaf_index, head.size, leaf, self.path, head.root)


@dataclass(frozen=True)
class ConsistencyProof:
    """The log of `size1` transactions is a prefix of the log of `size2`."""

    size1: int
    size2: int
    path: tuple[bytes, ...]

    def verify(self, old: TreeHead, new: TreeHead) -> bool:
        """True when the proof shows the log of tree head `old` is a prefix of that of `new`
        (the proof's sizes must be the heads' sizes)."""
        old, new = _head(old, "old"), _head(new, "new")
        return (self.size1, self.size2) == (old.size, new.size) and verify_consistency(
            old.size, new.size, old.root, new.root, self.path)
