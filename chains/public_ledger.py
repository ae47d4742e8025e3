"""The public ledger: an append-only, verifiable log of signed transactions in Ed25519-signed blocks.

Transactions (see `chains.transactions`) are validated when submitted and wait in memory until
`seal()` commits them as one block, atomically, with a signed tree head over every transaction so
far (an RFC 9162 Merkle log). Anyone holding the file can ask for inclusion proofs of transactions
and consistency proofs between tree heads, and `python -m chains verify` replays it all. The
genesis block carries the consortium's CA certificates, so the file verifies on its own.

    ledger = PublicLedger.create("public.db", orgs=[ca1, ca2], proposer=orderer)
    tx_id = ledger.transact(client, "update-hash", {"round": 0, "digest": sha256_hex})
    block = ledger.seal()
    proof = ledger.inclusion_proof(tx_id)
    assert proof.verify(ledger.tree_head().root)
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chains import store
from chains.blocks import Block, BlockHeader, Clock, LogicalClock, TreeHead
from chains.errors import IdentityError, LedgerCorruptError, LedgerError, TransactionRejected
from chains.identity import MSP, Identity, OrgCA
from chains.merkle import (
    Frontier,
    consistency_proof,
    inclusion_proof,
    verify_consistency,
    verify_inclusion,
)
from chains.transactions import Transaction, check_payload
from chains.validation import (
    LedgerState,
    Violation,
    check_transaction,
    genesis_payload,
    replay_head,
)

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["Block", "ConsistencyProof", "InclusionProof", "LedgerConfig", "PublicLedger"]



@dataclass(frozen=True)
class LedgerConfig:
    """Settings of a public ledger. `max_payload_bytes` is fixed in the genesis block at creation."""

    max_block_txs: int = 500          # seal a block automatically once this many are pending
    max_payload_bytes: int = 2048     # canonical-JSON size limit of a transaction payload
    synchronous: str = "FULL"         # SQLite fsync level: FULL survives power loss, NORMAL a crash

    def __post_init__(self) -> None:
        for name in ("max_block_txs", "max_payload_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"LedgerConfig.{name} must be a positive int, got {value!r}")
        if self.synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError("LedgerConfig.synchronous must be OFF, NORMAL, FULL or EXTRA, "
                             f"got {self.synchronous!r}")


@dataclass(frozen=True)
class InclusionProof:
    """Leaf `leaf_index` (transaction `tx_id`) is in the log of `tree_size` transactions."""

    tx_id: str
    leaf_index: int
    tree_size: int
    path: tuple[bytes, ...]

    def verify(self, root: bytes) -> bool:
        return verify_inclusion(self.leaf_index, self.tree_size, bytes.fromhex(self.tx_id),
                                self.path, root)


@dataclass(frozen=True)
class ConsistencyProof:
    """The log of `size1` transactions is a prefix of the log of `size2`."""

    size1: int
    size2: int
    path: tuple[bytes, ...]

    def verify(self, root1: bytes, root2: bytes) -> bool:
        return verify_consistency(self.size1, self.size2, root1, root2, self.path)


class PublicLedger:
    """A SQLite-backed public ledger. Create it once, open it afterwards; one writer at a time."""

    kind = store.KIND

    def __init__(self, path: Path, conn: sqlite3.Connection, state: LedgerState,
                 proposer: Identity | None, clock: Clock, config: LedgerConfig) -> None:
        self.path, self._conn, self._state = path, conn, state
        self.proposer, self.clock, self.config = proposer, clock, config
        self._pending: list[Transaction] = []
        self._stored_certs = {row[0] for row in conn.execute("SELECT id FROM certs")}
        if proposer is not None:
            _require_orderer(state.msp, proposer)

    # -- creating and opening -------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, *, orgs: Iterable[OrgCA] | MSP, proposer: Identity,
               clock: Clock | None = None, config: LedgerConfig | None = None) -> PublicLedger:
        """A new ledger file whose genesis block holds the consortium's membership config.

        `orgs` are the organizations' CAs (or an MSP of their certificates); `proposer` (an orderer
        of one of them) signs blocks and tree heads; `clock` gives block times (default: logical).
        """
        config = config or LedgerConfig()
        if isinstance(orgs, MSP):
            msp = orgs.copy()
        else:
            msp = MSP()
            for ca in orgs:
                msp.add_org(ca.msp_id, ca.cert_pem)
        if not msp.orgs:
            raise LedgerError("a ledger needs at least one organization")
        _require_orderer(msp, proposer)
        genesis = Transaction.create(proposer, "msp-config",
                                     genesis_payload(msp, config.max_payload_bytes),
                                     nonce=0, chain="")
        state = LedgerState()
        try:
            check_transaction(state, genesis)
        except Violation as exc:
            raise LedgerError(f"genesis transaction is invalid: {exc}") from None
        path = Path(path)
        conn = store.connect(path, create=True, synchronous=config.synchronous)
        ledger = cls(path, conn, state, proposer, clock or LogicalClock(), config)
        ledger._pending.append(genesis)
        try:
            ledger._seal(meta=[("kind", store.KIND), ("format", store.FORMAT), ("chain", genesis.id)])
        except BaseException:
            conn.close()
            path.unlink(missing_ok=True)
            raise
        return ledger

    @classmethod
    def open(cls, path: str | Path, *, proposer: Identity | None = None, clock: Clock | None = None,
             config: LedgerConfig | None = None) -> PublicLedger:
        """Open an existing ledger file, verifying its head block (LedgerCorruptError if it fails).

        Without a `proposer` the ledger is read-only: proofs and reads work, `seal` refuses.
        Run `chains.verify.verify_ledger_file` for a full verification of every block.
        """
        config = config or LedgerConfig()
        path = Path(path)
        truncated = store.truncation(path) if path.is_file() else None
        if truncated:
            raise LedgerCorruptError(str(path), None, "truncated", truncated)
        try:
            conn = store.connect(path, synchronous=config.synchronous)
        except sqlite3.DatabaseError as exc:
            raise LedgerCorruptError(str(path), None, "unreadable", str(exc)) from None
        try:
            meta = store.read_meta(conn)
            if meta.get("kind") != store.KIND:
                raise LedgerError(f"{path} is not a public ledger (kind {meta.get('kind')!r})")
            if meta.get("format") != store.FORMAT:
                raise LedgerError(f"{path} has format {meta.get('format')!r}, expected {store.FORMAT}")
            state = replay_head(conn, str(path))
            if meta.get("chain") != state.chain:
                raise LedgerCorruptError(str(path), None, "meta", "meta.chain is not the genesis id")
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise LedgerCorruptError(str(path), None, "unreadable", str(exc)) from None
        except BaseException:
            conn.close()
            raise
        return cls(path, conn, state, proposer, clock or LogicalClock(state.timestamp + 1), config)

    def close(self) -> None:
        """Close the file (pending transactions are dropped: seal first to keep them)."""
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing --------------------------------------------------------------------------------
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

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def msp(self) -> MSP:
        """A copy of the membership service as of the last submitted transaction."""
        return self._state.msp.copy()

    def next_nonce(self, sender: Identity | str) -> int:
        """The nonce the sender's next transaction must carry (counts pending transactions)."""
        return self._state.nonces.get(sender if isinstance(sender, str) else sender.id, 0)

    def prepare(self, sender: Identity, kind: str, payload: Mapping[str, Any]) -> Transaction:
        """A transaction from `sender` with its next nonce and this ledger's chain id, signed.

        Raises TransactionRejected (tx-payload, tx-kind) for a payload that cannot be a transaction.
        """
        try:
            check_payload(kind, payload, self._state.max_payload_bytes)
        except (ValueError, TypeError) as exc:
            reason = "tx-kind" if str(exc).startswith("unknown kind") else "tx-payload"
            raise TransactionRejected(reason, str(exc)) from None
        return Transaction.create(sender, kind, payload, nonce=self.next_nonce(sender),
                                  chain=self.chain_id)

    def submit(self, tx: Transaction) -> str:
        """Validate `tx` and queue it for the next block; returns its id.

        Raises TransactionRejected (reason: tx-chain, tx-sender, tx-kind, tx-identity,
        revoked-identity, tx-signature, tx-role, tx-payload, tx-nonce) and changes nothing.
        Seals a block automatically when `config.max_block_txs` transactions are pending (if
        that seal fails, its error propagates and the transactions stay pending).
        """
        if not isinstance(tx, Transaction):
            raise TypeError(f"submit takes a Transaction, got {type(tx).__name__}")
        try:
            check_transaction(self._state, tx)
        except Violation as exc:
            raise TransactionRejected(exc.reason, exc.detail) from None
        self._pending.append(tx)
        if len(self._pending) >= self.config.max_block_txs:
            self.seal()
        return tx.id

    def transact(self, sender: Identity, kind: str, payload: Mapping[str, Any]) -> str:
        """Sign and submit a transaction from `sender`; returns its id (committed by `seal`)."""
        return self.submit(self.prepare(sender, kind, payload))

    def revoke(self, admin: Identity, serial: int) -> str:
        """Revoke certificate `serial` of the admin's organization (a config transaction)."""
        return self.transact(admin, "revoke", {"msp_id": admin.msp_id, "serial": serial})

    def seal(self) -> Block | None:
        """Commit the pending transactions as one signed block with a new tree head (None if none)."""
        return self._seal(meta=())

    def _seal(self, *, meta: Iterable[tuple[str, str]]) -> Block | None:
        if not self._pending:
            return None
        if self.proposer is None:
            raise LedgerError("this ledger was opened read-only (no proposer): it cannot seal blocks")
        state, txs = self._state, self._pending
        _require_orderer(state.msp, self.proposer)  # e.g. revoked meanwhile: set another proposer
        timestamp = self.clock()
        if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < state.timestamp:
            raise LedgerError(f"clock gave {timestamp!r}; block times must be ints that never go "
                              f"back (last {state.timestamp})")
        block_tree, frontier, nodes = Frontier(), state.frontier.copy(), []
        for tx in txs:
            leaf = tx.leaf_hash
            block_tree.append(leaf)
            nodes.extend(frontier.append(leaf))
        height = state.height + 1
        header = BlockHeader(height, state.prev_hash, block_tree.root(), len(txs), timestamp,
                             self.proposer.id)
        head = TreeHead(state.chain, frontier.size, frontier.root(), timestamp).signed_by(self.proposer)
        first = state.frontier.size
        tx_rows = [(first + i, height, tx.leaf_hash, tx.sender, tx.nonce, tx.kind, tx.body,
                    tx.signature) for i, tx in enumerate(txs)]
        certs = {tx.sender: tx.cert_pem for tx in txs if tx.sender not in self._stored_certs}
        if self.proposer.id not in self._stored_certs:
            certs[self.proposer.id] = self.proposer.cert_pem
        block_row = (height, header.hash, header.encode(), header.sign(self.proposer), head.size,
                     head.encode(), head.signature)
        store.write_block(self._conn, block_row, tx_rows, nodes, certs.items(), meta)
        self._stored_certs.update(certs)
        state.height, state.prev_hash, state.timestamp = height, header.hash, timestamp
        state.frontier, state.head, self._pending = frontier, head, []
        return Block(header, header.hash, block_row[3], head, tuple(tx.id for tx in txs))

    def discard_pending(self) -> int:
        """Drop the pending transactions and their effects (nonces, revocations); returns how many."""
        dropped = len(self._pending)
        if dropped:
            self._state = replay_head(self._conn, str(self.path))
            self._pending = []
        return dropped

    # -- the Anchor protocol ----------------------------------------------------------------------
    def anchor(self, kind: str, payload: Mapping[str, Any], *, sender: Identity | None = None) -> str:
        """Submit a transaction (from `sender`, default the proposer); returns its id."""
        sender = sender or self.proposer
        if sender is None:
            raise LedgerError("anchor needs a sender on a read-only ledger")
        return self.transact(sender, kind, payload)

    def flush(self) -> int:
        """Seal what is pending; returns the height."""
        self.seal()
        return self.height

    def confirmed(self, receipt: str) -> int | None:
        """Height of the block holding transaction `receipt`, or None if not committed."""
        found = self._find(receipt)
        return None if found is None else found[1]

    # -- reading and proofs ---------------------------------------------------------------------
    def tree_head(self, size: int | None = None) -> TreeHead:
        """The latest signed tree head, or the one published when the log reached `size`."""
        if size is None:
            assert self._state.head is not None
            return self._state.head
        row = self._conn.execute("SELECT tree_head, tree_head_signature FROM blocks "
                                 "WHERE tree_size = ?", (size,)).fetchone()
        if row is None:
            raise LedgerError(f"no tree head was published at size {size}")
        return TreeHead.decode(row[0], row[1])

    def tree_heads(self) -> Iterator[TreeHead]:
        for data, sig in self._conn.execute("SELECT tree_head, tree_head_signature FROM blocks "
                                            "ORDER BY height"):
            yield TreeHead.decode(data, sig)

    def block(self, height: int) -> Block:
        row = self._conn.execute(f"SELECT {store.BLOCK_COLUMNS} FROM blocks WHERE height = ?",
                                 (height,)).fetchone()
        if row is None:
            raise LedgerError(f"no block at height {height} (head is {self.height})")
        ids = tuple(bytes(r[0]).hex() for r in self._conn.execute(
            "SELECT id FROM txs WHERE height = ? ORDER BY seq", (height,)))
        header = BlockHeader.decode(row[2])
        return Block(header, bytes(row[1]), bytes(row[3]), TreeHead.decode(row[5], row[6]), ids)

    def transaction(self, tx_id: str) -> Transaction:
        """A committed transaction by id."""
        row = self._conn.execute("SELECT body, signature, sender FROM txs WHERE id = ?",
                                 (_tx_key(tx_id),)).fetchone()
        if row is None:
            raise LedgerError(f"transaction {tx_id} is not committed on this ledger")
        return Transaction.decode(row[0], row[1], store.read_cert(self._conn, row[2]) or b"")

    def transactions(self, kind: str | None = None) -> Iterator[tuple[int, Transaction]]:
        """(block height, transaction) in log order, optionally of one kind."""
        query = "SELECT t.height, t.body, t.signature, c.pem FROM txs t JOIN certs c ON c.id = t.sender"
        args: tuple = ()
        if kind is not None:
            query, args = query + " WHERE t.kind = ?", (kind,)
        for height, body, sig, pem in self._conn.execute(query + " ORDER BY t.seq", args):
            yield height, Transaction.decode(body, sig, pem)

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
        return store.read_node(self._conn, level, index)

    def _find(self, tx_id: str) -> tuple[int, int] | None:
        row = self._conn.execute("SELECT seq, height FROM txs WHERE id = ?",
                                 (_tx_key(tx_id),)).fetchone()
        return None if row is None else (row[0], row[1])

    def __repr__(self) -> str:
        return (f"PublicLedger({self.path}, height={self.height}, tree_size={self.tree_size}, "
                f"pending={self.pending})")


def _require_orderer(msp: MSP, proposer: Identity) -> None:
    try:
        msp.validate(proposer.cert_pem, role="orderer")
    except IdentityError as exc:
        raise LedgerError(f"proposer {proposer.name!r} cannot sign blocks: {exc}") from None


def _tx_key(tx_id: str) -> bytes:
    try:
        key = bytes.fromhex(tx_id)
    except (ValueError, TypeError):
        raise LedgerError(f"transaction id must be 64 hex characters, got {tx_id!r}") from None
    if len(key) != 32:
        raise LedgerError(f"transaction id must be 64 hex characters, got {tx_id!r}")
    return key
