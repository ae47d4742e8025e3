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
    assert proof.verify(ledger.tree_head())   # bound to that tree head's size and root

Each ledger's id (its genesis transaction's id) is unique: the genesis carries a nonce, random
unless the caller passes one (fedenv derives it from its seed, so one seed gives the same bytes).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chains.blocks import Block, BlockHeader, TreeHead
from chains.clock import Clock, LogicalClock
from chains.errors import (
    ConfigError,
    IdentityError,
    LedgerCorruptError,
    LedgerError,
    LedgerStorageError,
    MalformedError,
    TransactionRejected,
)
from chains.identity import Identity, OrgCA
from chains.ledger_config import LedgerConfig
from chains.merkle import Frontier, consistency_proof, inclusion_proof
from chains.msp import MSP
from chains.proofs import ConsistencyProof, InclusionProof
from chains.replay import ReplayFailure, replay
from chains.sqlite_files import truncation, writing
from chains.store import (
    BLOCK_COLUMNS,
    FORMAT,
    ID_KEY,
    KIND,
    KIND_CODES,
    connect,
    pack_body,
    pack_header,
    pack_tree_head,
    read_meta,
    read_node,
    unpack_body,
    unpack_header,
    unpack_tree_head,
    write_block,
)
from chains.transactions import KINDS, Transaction, check_payload
from chains.validation import (
    NONCE_BYTES,
    LedgerState,
    Violation,
    check_transaction,
    genesis_payload,
)

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["Block", "ConsistencyProof", "InclusionProof", "LedgerConfig", "PublicLedger"]


class PublicLedger:
    """A SQLite-backed public ledger. Create it once, open it afterwards; one writer at a time."""

    kind = KIND

    def __init__(self, path: Path, conn: sqlite3.Connection, state: LedgerState,
                 proposer: Identity | None, clock: Clock, config: LedgerConfig) -> None:
        self.path, self._conn, self._state = path, conn, state
        self.proposer, self.clock, self.config = proposer, clock, config
        self._pending: list[Transaction] = []
        self._stored_certs = {row[0] for row in conn.execute("SELECT id FROM certs")}
        if proposer is not None:
            _require_orderer(state.msp, proposer, state.timestamp)

    # -- creating and opening -------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, *, orgs: Iterable[OrgCA] | MSP, proposer: Identity,
               clock: Clock | None = None, config: LedgerConfig | None = None,
               nonce: bytes | None = None) -> PublicLedger:
        """A new ledger file whose genesis block holds the consortium's membership config.

        `orgs` are the organizations' CAs (or an MSP of their certificates); `proposer` (an orderer
        of one of them) signs blocks and tree heads; `clock` gives block times (default: logical).
        `nonce` (8 to 64 bytes) makes the ledger's id unique: random by default; pass one derived
        from a seed for byte-identical ledgers across runs.
        """
        config = config or LedgerConfig()
        if nonce is None:
            nonce = os.urandom(16)
        if not isinstance(nonce, bytes) or not NONCE_BYTES[0] <= len(nonce) <= NONCE_BYTES[1]:
            raise ConfigError(f"nonce must be {NONCE_BYTES[0]} to {NONCE_BYTES[1]} bytes")
        if isinstance(orgs, MSP):
            msp = orgs.copy()
        else:
            msp = MSP()
            for ca in orgs:
                msp.add_org(ca.msp_id, ca.cert_pem)
        if not msp.orgs:
            raise LedgerError("a ledger needs at least one organization")
        clock = clock or LogicalClock()
        timestamp = _time(clock, 0)
        _require_orderer(msp, proposer, timestamp)
        genesis = Transaction.create(proposer, "msp-config",
                                     genesis_payload(msp, config.max_payload_bytes, nonce),
                                     nonce=0, chain="")
        state = LedgerState(timestamp=timestamp)
        try:
            check_transaction(state, genesis)
        except Violation as exc:
            raise LedgerError(f"genesis transaction is invalid: {exc}") from None
        path = Path(path)
        try:
            with writing(path):
                conn = connect(path, create=True, synchronous=config.synchronous)
        except LedgerStorageError:
            _remove(path)  # a schema cut short by a full disk: nothing of the ledger is there
            raise
        ledger = cls(path, conn, state, proposer, clock, config)
        ledger._pending.append(genesis)
        try:
            ledger._seal(timestamp, meta=[("kind", KIND), ("format", FORMAT),
                                          ("chain", genesis.id)])
        except BaseException:
            conn.close()
            _remove(path)
            raise
        return ledger

    @classmethod
    def open(cls, path: str | Path, *, proposer: Identity | None = None, clock: Clock | None = None,
             config: LedgerConfig | None = None) -> PublicLedger:
        """Open an existing ledger file, verifying its head block (LedgerCorruptError if it fails).

        Without a `proposer` the ledger is read-only: proofs and reads work, `seal` refuses.
        Every block is replayed from the signed data (all rules; Ed25519 checks for the genesis
        and the head block, whose signature covers the rest through hash links and Merkle
        roots), so a file whose derived columns were altered is refused. Run
        `chains.verify.verify_ledger_file` to check every signature too.
        """
        config = config or LedgerConfig()
        path = Path(path)
        truncated = truncation(path) if path.is_file() else None
        if truncated:
            raise LedgerCorruptError(str(path), None, "truncated", truncated)
        try:
            conn = connect(path, synchronous=config.synchronous)
        except (sqlite3.DatabaseError, UnicodeDecodeError, MalformedError) as exc:
            raise LedgerCorruptError(str(path), None, "unreadable", str(exc)) from None
        try:
            meta = read_meta(conn)
            state = LedgerState()
            (head,) = conn.execute("SELECT MAX(height) FROM blocks").fetchone()
            replay(conn, state, signatures_from=head if isinstance(head, int) else 0)
            if meta.get("chain") != state.chain:
                raise LedgerCorruptError(str(path), None, "meta", "meta.chain is not the genesis id")
        except ReplayFailure as exc:
            conn.close()
            raise LedgerCorruptError(str(path), exc.block, exc.reason, exc.detail) from None
        except (sqlite3.DatabaseError, UnicodeDecodeError, MalformedError) as exc:
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
        if not isinstance(kind, str) or kind not in KINDS:
            raise TransactionRejected("tx-kind", f"unknown kind {kind!r}; known: {sorted(KINDS)}")
        try:
            check_payload(kind, payload, self._state.max_payload_bytes)
            return Transaction.create(sender, kind, payload, nonce=self.next_nonce(sender),
                                      chain=self.chain_id)
        except MalformedError as exc:
            raise TransactionRejected("tx-payload", str(exc)) from None

    def submit(self, tx: Transaction) -> str:
        """Validate `tx` and queue it for the next block; returns its id.

        Raises TransactionRejected (reason: tx-chain, tx-sender, tx-kind, tx-identity,
        identity-time, identity-usage, revoked-identity, tx-signature, tx-role, tx-payload,
        tx-nonce) and changes nothing. The sender's certificate must be valid at the time of the
        last committed block.
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

    def revoke(self, admin: Identity, crl: bytes) -> str:
        """Publish `crl` (an X.509 CRL in DER, signed by the CA of the admin's organization, as
        `OrgCA.crl` makes) as a config transaction: its serials are revoked from here on."""
        if not isinstance(crl, (bytes, bytearray)):
            raise TypeError(f"crl must be DER bytes, got {type(crl).__name__}")
        return self.transact(admin, "revoke", {"crl": bytes(crl).hex(), "msp_id": admin.msp_id})

    def seal(self) -> Block | None:
        """Commit the pending transactions as one signed block with a new tree head (None if none)."""
        if not self._pending:
            return None
        return self._seal(_time(self.clock, self._state.timestamp), meta=())

    def _seal(self, timestamp: int, *, meta: Iterable[tuple[str, str]]) -> Block | None:
        if self.proposer is None:
            raise LedgerError("this ledger was opened read-only (no proposer): it cannot seal blocks")
        state, txs = self._state, self._pending
        _require_orderer(state.msp, self.proposer, timestamp)  # e.g. revoked or expired meanwhile
        block_tree, frontier, nodes = Frontier(), state.frontier.copy(), []
        for tx in txs:
            leaf = tx.leaf_hash
            block_tree.append(leaf)
            nodes.extend(frontier.append(leaf))
        height = state.height + 1
        chain = state.chain
        header = BlockHeader(chain, height, state.prev_hash, block_tree.root(), len(txs),
                             timestamp, self.proposer.id)
        head = TreeHead(state.chain, frontier.size, frontier.root(), timestamp).signed_by(self.proposer)
        first = state.frontier.size
        tx_rows = [(first + i, height, tx.leaf_hash, tx.sender, tx.nonce, tx.kind,
                    pack_body(tx.body, chain if first + i else "", tx.sender), tx.signature)
                   for i, tx in enumerate(txs)]
        certs = {tx.sender: tx.cert_pem for tx in txs if tx.sender not in self._stored_certs}
        if self.proposer.id not in self._stored_certs:
            certs[self.proposer.id] = self.proposer.cert_pem
        stored_chain, prev = (chain, state.prev_hash.hex()) if height else ("", "")
        block_row = (height, header.hash, pack_header(header.encode(), stored_chain, prev),
                     header.sign(self.proposer), head.size,
                     pack_tree_head(head.encode(), stored_chain), head.signature)
        with writing(self.path):
            write_block(self._conn, block_row, tx_rows, nodes, certs.items(), meta)
        self._stored_certs.update(certs)
        state.height, state.prev_hash, state.timestamp = height, header.hash, timestamp
        state.frontier, state.head, self._pending = frontier, head, []
        return Block(header, header.hash, block_row[3], head, tuple(tx.id for tx in txs))

    def _stored(self, height: int, blob: bytes, what: str) -> bytes:
        """The signed bytes of block `height`'s stored header or tree head (`what`)."""
        chain = self.chain_id if height else ""
        try:
            if what == "tree head":
                return unpack_tree_head(blob, chain)
            prev = self._conn.execute("SELECT hash FROM blocks WHERE height = ?",
                                      (height - 1,)).fetchone() if height else None
            return unpack_header(blob, chain, bytes(prev[0]).hex() if prev else "")
        except MalformedError as exc:
            raise LedgerCorruptError(str(self.path), height, "malformed-block", f"{what}: {exc}") \
                from None

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

    def __repr__(self) -> str:
        return (f"PublicLedger({self.path}, height={self.height}, tree_size={self.tree_size}, "
                f"pending={self.pending})")


def _remove(path: Path) -> None:
    for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        leftover.unlink(missing_ok=True)


def _require_orderer(msp: MSP, proposer: Identity, at: int) -> None:
    try:
        msp.validate(proposer.cert_pem, at=at, role="orderer")
    except IdentityError as exc:
        raise LedgerError(f"proposer {proposer.name!r} cannot sign blocks at time {at}: {exc}") \
            from None


def _time(clock: Clock, last: int) -> int:
    timestamp = clock()
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < last:
        raise LedgerError(f"clock gave {timestamp!r}; block times must be ints that never go "
                          f"back (last {last})")
    return timestamp


def _tx_key(tx_id: str) -> bytes:
    try:
        key = bytes.fromhex(tx_id)
    except (ValueError, TypeError):
        raise LedgerError(f"transaction id must be 64 hex characters, got {tx_id!r}") from None
    if len(key) != 32:
        raise LedgerError(f"transaction id must be 64 hex characters, got {tx_id!r}")
    return key
