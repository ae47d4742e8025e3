"""Reading a public ledger's file: blocks, transactions, tree heads and Merkle proofs.

`LedgerReads` is the read side of `chains.public_ledger.PublicLedger` (which adds creating,
opening and sealing): every stored body, header and tree head is unpacked
(`chains.store.unpack_body`, ...) and a row that does not unpack is a LedgerCorruptError naming
its block or transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

from chains.blocks import Block, BlockHeader, TreeHead
from chains.errors import LedgerCorruptError, LedgerError, MalformedError
from chains.merkle import consistency_proof, inclusion_proof
from chains.proofs import ConsistencyProof, InclusionProof
from chains.store import (
    BLOCK_COLUMNS,
    ID_KEY,
    KIND_CODES,
    read_node,
    unpack_body,
    unpack_header,
    unpack_tree_head,
)
from chains.transactions import Transaction
from chains.validation import LedgerState

__all__ = ["LedgerReads"]


class LedgerReads:
    """Reads and proofs over an open ledger file (`_conn`) whose replayed state is `_state`."""

    path: Path
    _conn: sqlite3.Connection
    _state: LedgerState

    @property
    def chain_id(self) -> str:
        """The ledger's id: the genesis transaction's id (hex)."""
        return self._state.chain

    @property
    def height(self) -> int:
        """Height of the last committed block (the genesis block is 0)."""
        return self._state.height

    @property
    def tree_size(self) -> int:
        """Number of committed transactions (the size of the latest tree head)."""
        return self._state.frontier.size

    def _stored(self, height: int, blob: bytes, what: str) -> bytes:
        """The signed bytes of block `height`'s stored header or tree head (`what`)."""
        chain = self.chain_id if height else ""
        try:
            if what == "tree head":
                return unpack_tree_head(blob, chain)
            prev = self._conn.execute("SELECT hash FROM blocks WHERE height = ?",
                                      (height - 1,)).fetchone() if height else None
            return unpack_header(blob, chain, bytes(prev[0]).hex() if prev else "",
                                 self._state.proposer if height else "")
        except MalformedError as exc:
            raise LedgerCorruptError(str(self.path), height, "malformed-block", f"{what}: {exc}") \
                from None

    # -- reading and proofs ---------------------------------------------------------------------
    def tree_head(self, size: int | None = None) -> TreeHead:
        """The latest signed tree head, or the one published when the log reached `size`."""
        if size is None:
            assert self._state.head is not None
            return self._state.head
        row = self._conn.execute("SELECT tree_head, tree_head_signature, height FROM blocks "
                                 "WHERE tree_size = ?", (size,)).fetchone()
        if row is None:
            raise LedgerError(f"no tree head was published at size {size}")
        return TreeHead.decode(self._stored(row[2], row[0], "tree head"), row[1])

    def tree_heads(self) -> Iterator[TreeHead]:
        for data, sig, height in self._conn.execute("SELECT tree_head, tree_head_signature, "
                                                    "height FROM blocks ORDER BY height"):
            yield TreeHead.decode(self._stored(height, data, "tree head"), sig)

    def block(self, height: int) -> Block:
        row = self._conn.execute(f"SELECT {BLOCK_COLUMNS} FROM blocks WHERE height = ?",
                                 (height,)).fetchone()
        if row is None:
            raise LedgerError(f"no block at height {height} (head is {self.height})")
        ids = tuple(bytes(r[0]).hex() for r in self._conn.execute(
            "SELECT id FROM txs WHERE height = ? ORDER BY seq", (height,)))
        header = BlockHeader.decode(self._stored(height, row[2], "header"))
        return Block(header, bytes(row[1]), bytes(row[3]),
                     TreeHead.decode(self._stored(height, row[5], "tree head"), row[6]), ids)

    def transaction(self, tx_id: str) -> Transaction:
        """A committed transaction by id."""
        row = self._conn.execute("SELECT t.body, t.signature, c.id, t.seq, c.pem FROM txs t "
                                 "JOIN certs c ON c.ref = t.sender WHERE substr(t.id, 1, 8) = ? AND t.id = ?",
                                 (_tx_key(tx_id)[:8], _tx_key(tx_id))).fetchone()
        if row is None:
            raise LedgerError(f"transaction {tx_id} is not committed on this ledger")
        return Transaction.decode(self._unpack(row[0], row[2], row[3]), row[1], row[4])

    def transactions(self, kind: str | None = None) -> Iterator[tuple[int, Transaction]]:
        """(block height, transaction) in log order, optionally of one kind."""
        query = ("SELECT t.height, t.body, t.signature, c.pem, c.id, t.seq FROM txs t "
                 "JOIN certs c ON c.ref = t.sender")
        args: tuple = ()
        if kind is not None:
            if kind not in KIND_CODES:
                return
            query, args = query + " WHERE t.kind = ?", (KIND_CODES.index(kind),)
        for height, body, sig, pem, sender, seq in self._conn.execute(query + " ORDER BY t.seq",
                                                                      args):
            yield height, Transaction.decode(self._unpack(body, sender, seq), sig, pem)

    def _unpack(self, body: bytes, sender: str, seq: int) -> bytes:
        try:
            return unpack_body(body, "" if seq == 0 else self.chain_id, sender)
        except MalformedError as exc:
            raise LedgerCorruptError(str(self.path), None, "malformed-tx",
                                     f"transaction {seq}: {exc}") from None

    def inclusion_proof(self, tx_id: str, tree_size: int | None = None) -> InclusionProof:
        """Audit path of a committed transaction in the tree of `tree_size` (default: latest)."""
        found = self._find(tx_id)
        if found is None:
            raise LedgerError(f"transaction {tx_id} is not committed on this ledger")
        size = self.tree_size if tree_size is None else tree_size
        if not found[0] < size <= self.tree_size:
            raise LedgerError(f"tree size {size} must be in {found[0] + 1}..{self.tree_size} "
                              f"for leaf {found[0]}")
        path = inclusion_proof(found[0], size, self._node)
        return InclusionProof(tx_id, found[0], size, tuple(path))

    def consistency_proof(self, size1: int, size2: int | None = None) -> ConsistencyProof:
        """Proof that the log at `size1` is a prefix of the log at `size2` (default: latest)."""
        size2 = self.tree_size if size2 is None else size2
        if not 0 <= size1 <= size2 <= self.tree_size:
            raise LedgerError(f"need 0 <= size1 <= size2 <= {self.tree_size}, got {size1}, {size2}")
        return ConsistencyProof(size1, size2, tuple(consistency_proof(size1, size2, self._node)))

    def _node(self, level: int, index: int) -> bytes:
        return read_node(self._conn, level, index)

    def _find(self, tx_id: str) -> tuple[int, int] | None:
        key = _tx_key(tx_id)
        row = self._conn.execute(f"SELECT seq, height FROM txs WHERE {ID_KEY} = ? AND id = ?",
                                 (key[:8], key)).fetchone()
        return None if row is None else (row[0], row[1])


def _tx_key(tx_id: str) -> bytes:
    try:
        key = bytes.fromhex(tx_id)
    except (ValueError, TypeError):
        raise LedgerError(f"transaction id must be 64 hex characters, got {tx_id!r}") from None
    if len(key) != 32:
        raise LedgerError(f"transaction id must be 64 hex characters, got {tx_id!r}")
    return key
