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
from collections.abc import Iterable, Mapping
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
from chains.ledger_reads import LedgerReads
from chains.merkle import Frontier
from chains.msp import MSP
from chains.proofs import ConsistencyProof, InclusionProof
from chains.replay import ReplayFailure, replay
from chains.sqlite_files import truncation, writing
from chains.store import (
    FORMAT,
    KIND,
    connect,
    pack_body,
    pack_header,
    pack_tree_head,
    read_meta,
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


class PublicLedger(LedgerReads):
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
        stored_chain, prev, first = ((chain, state.prev_hash.hex(), state.proposer) if height
                                     else ("", "", ""))
        block_row = (height, header.hash, pack_header(header.encode(), stored_chain, prev, first),
                     header.sign(self.proposer), head.size,
                     pack_tree_head(head.encode(), stored_chain), head.signature)
        with writing(self.path):
            write_block(self._conn, block_row, tx_rows, nodes, certs.items(), meta)
        self._stored_certs.update(certs)
        state.height, state.prev_hash, state.timestamp = height, header.hash, timestamp
        state.proposer = state.proposer if height else header.proposer
        state.frontier, state.head, self._pending = frontier, head, []
        return Block(header, header.hash, block_row[3], head, tuple(tx.id for tx in txs))

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
