"""The rules of the public ledger, shared by `submit` (one transaction) and `verify` (whole blocks).

A `LedgerState` is what a replay of blocks 0..h knows: the membership service (with revocations
applied in log order), each sender's next nonce, the Merkle frontier, the last block hash and tree
head. `check_transaction` and `check_block` raise `Violation(reason, detail)`, where `reason` is a
stable code (listed in docs/chains.md); on success they advance the state. `replay_head` rebuilds
the state of a stored ledger, checking its genesis and head blocks in full (used when opening).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from chains import store
from chains.blocks import BLOCK_DOMAIN, GENESIS_PREV, BlockHeader, TreeHead
from chains.errors import IdentityError, LedgerCorruptError, LedgerError
from chains.identity import MSP
from chains.merkle import Frontier
from chains.store import BlockRow, TxRow, node_key
from chains.transactions import KINDS, Transaction, check_payload

__all__ = ["MAX_CONFIG_BYTES", "LedgerState", "Violation", "check_block", "check_transaction",
           "genesis_payload", "replay_head"]

MAX_CONFIG_BYTES = 1 << 20


class Violation(Exception):
    """A rule of the ledger does not hold; `reason` is a short stable code."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}")


def genesis_payload(msp: MSP, max_payload_bytes: int) -> dict:
    return {"max_payload_bytes": max_payload_bytes, "msp": msp.to_dict()}


@dataclass
class LedgerState:
    """What replaying the ledger up to `height` establishes (height -1: nothing yet)."""

    chain: str = ""
    msp: MSP = field(default_factory=MSP)
    max_payload_bytes: int = 0
    height: int = -1
    prev_hash: bytes = GENESIS_PREV
    timestamp: int = 0
    head: TreeHead | None = None
    frontier: Frontier = field(default_factory=Frontier)
    nonces: dict[str, int] = field(default_factory=dict)
    cert_ids: dict[bytes, str] = field(default_factory=dict)  # cache: certificate PEM -> identity id

    def identity_id(self, cert_pem: bytes) -> str:
        ident = self.cert_ids.get(cert_pem)
        if ident is None:
            try:
                der = x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
            except ValueError as exc:
                raise Violation("tx-sender", f"certificate does not parse ({exc})") from None
            ident = self.cert_ids[cert_pem] = hashlib.sha256(der).hexdigest()
        return ident


def check_transaction(state: LedgerState, tx: Transaction) -> None:
    """Raise Violation unless `tx` may be appended next; on success apply it to `state`."""
    genesis = state.height < 0 and not state.chain
    if genesis:
        if tx.chain != "" or tx.kind != "msp-config":
            raise Violation("genesis", "the first transaction must be the msp-config of chain ''")
        _load_genesis(state, tx)
    elif tx.chain != state.chain:
        raise Violation("tx-chain", f"transaction is for chain {tx.chain[:16]!r}, "
                                    f"not this ledger's {state.chain[:16]!r}")
    if state.identity_id(tx.cert_pem) != tx.sender:
        raise Violation("tx-sender", "sender id is not the SHA-256 of the attached certificate")
    spec = KINDS.get(tx.kind)
    if spec is None or (spec.name == "msp-config") != genesis:
        raise Violation("tx-kind", f"kind {tx.kind!r} is not allowed here")
    try:
        msp_id, role = state.msp.verify(tx.cert_pem, tx.signed_bytes, tx.signature)
    except IdentityError as exc:
        reason = {"revoked": "revoked-identity", "bad signature": "tx-signature"}.get(
            exc.reason, "tx-identity")
        raise Violation(reason, str(exc)) from None
    if role not in spec.roles:
        raise Violation("tx-role", f"a {role} may not send {tx.kind!r} (allowed: {sorted(spec.roles)})")
    limit = MAX_CONFIG_BYTES if spec.config else state.max_payload_bytes
    try:
        check_payload(tx.kind, tx.payload, limit)
    except (ValueError, TypeError) as exc:
        raise Violation("tx-payload", str(exc)) from None
    expected = state.nonces.get(tx.sender, 0)
    if tx.nonce != expected:
        raise Violation("tx-nonce", f"nonce {tx.nonce} from {tx.sender[:12]}, expected {expected}")
    if tx.kind == "revoke":
        target, serial = tx.payload["msp_id"], tx.payload["serial"]
        if target != msp_id:
            raise Violation("tx-payload", f"an admin of {msp_id} cannot revoke in {target!r}")
        if isinstance(serial, bool) or not isinstance(serial, int) or serial <= 0:
            raise Violation("tx-payload", f"serial must be a positive int, got {serial!r}")
        state.msp.revoke(target, serial)
    state.nonces[tx.sender] = expected + 1


def _load_genesis(state: LedgerState, tx: Transaction) -> None:
    payload = tx.payload
    limit = payload.get("max_payload_bytes")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
        raise Violation("genesis", f"max_payload_bytes must be a positive int, got {limit!r}")
    try:
        state.msp = MSP.from_dict(payload.get("msp"))  # type: ignore[arg-type]
    except (IdentityError, ValueError, AttributeError, TypeError) as exc:
        raise Violation("genesis", f"membership config does not load ({exc})") from None
    state.max_payload_bytes = limit
    state.chain = tx.id


def check_block(state: LedgerState, block: BlockRow, txs: Sequence[TxRow],
                nodes: Sequence[tuple[int, int, bytes]], cert: Callable[[str], bytes | None]) -> None:
    """Raise Violation unless `block` (with its transaction rows and stored Merkle nodes, as
    (last, level, hash)) extends `state`; on success the state moves to this block."""
    height, stored_hash, header_bytes, signature, tree_size, head_bytes, head_sig = block
    expected = state.height + 1
    if height != expected:
        raise Violation("block-missing", f"expected block {expected}, the next stored is {height}")
    try:
        header = BlockHeader.decode(header_bytes)
    except ValueError as exc:
        raise Violation("malformed-block", str(exc)) from None
    if header.height != height:
        raise Violation("block-height", f"block stored at height {height} says it is {header.height}")
    if header.prev != state.prev_hash:
        raise Violation("prev-hash", f"previous hash {header.prev.hex()[:16]}... is not the hash of "
                                     f"block {height - 1} ({state.prev_hash.hex()[:16]}...)")
    if bytes(stored_hash) != header.hash:
        raise Violation("block-hash", "stored block hash is not SHA-256 of the header")
    if header.timestamp < state.timestamp:
        raise Violation("timestamp", f"timestamp {header.timestamp} is before {state.timestamp}")
    proposer_pem = cert(header.proposer)
    if height == 0:  # the genesis transaction brings the MSP that validates its own proposer
        if len(txs) != 1:
            raise Violation("genesis", f"genesis block holds {len(txs)} transactions, not 1")
        _check_rows(state, txs, cert)
    if proposer_pem is None:
        raise Violation("proposer-identity", f"certificate {header.proposer[:12]} is not in the ledger")
    try:
        if state.identity_id(proposer_pem) != header.proposer:
            raise IdentityError("bad chain", "certificate does not hash to the proposer id")
        state.msp.verify(proposer_pem, BLOCK_DOMAIN + header_bytes, signature, role="orderer")
    except IdentityError as exc:
        reason = "block-signature" if exc.reason == "bad signature" else "proposer-identity"
        raise Violation(reason, str(exc)) from None
    except Violation as exc:  # the stored certificate does not even parse
        raise Violation("proposer-identity", exc.detail) from None
    if len(txs) != header.tx_count:
        raise Violation("tx-count", f"header declares {header.tx_count} transactions, "
                                    f"the file holds {len(txs)}")
    if height > 0:
        _check_rows(state, txs, cert)
    block_tree = Frontier()
    created: list[tuple[int, int, bytes]] = []
    for row in txs:
        block_tree.append(bytes(row[2]))
        created.extend((node_key(lvl, idx), lvl, h)
                       for lvl, idx, h in state.frontier.append(bytes(row[2])) if lvl)
    if block_tree.root() != header.tx_root:
        raise Violation("tx-root", "Merkle root of the block's transactions is not the header's tx_root")
    if [(int(a), int(b), bytes(c)) for a, b, c in nodes] != created:
        raise Violation("merkle-node", "stored Merkle nodes are not those the transactions produce")
    _check_tree_head(state, header, head_bytes, head_sig, tree_size, proposer_pem)
    state.height, state.prev_hash, state.timestamp = height, header.hash, header.timestamp


def _check_rows(state: LedgerState, txs: Sequence[TxRow], cert: Callable[[str], bytes | None]) -> None:
    first = state.frontier.size
    for offset, (seq, _, tx_id, sender, nonce, kind, body, sig) in enumerate(txs):
        if seq != first + offset:
            raise Violation("tx-count", f"transaction {first + offset} is missing (found {seq})")
        pem = cert(sender)
        if pem is None:
            raise Violation("tx-sender", f"certificate {sender[:12]} is not in the ledger")
        try:
            tx = Transaction.decode(body, sig, pem)
        except ValueError as exc:
            raise Violation("malformed-tx", f"transaction {seq}: {exc}") from None
        try:
            check_transaction(state, tx)
        except Violation as exc:
            raise Violation(exc.reason, f"transaction {seq}: {exc.detail}") from None
        if (bytes(tx_id), sender, nonce, kind) != (tx.leaf_hash, tx.sender, tx.nonce, tx.kind):
            raise Violation("tx-index", f"transaction {seq}: stored id/sender/nonce/kind disagree "
                                        "with its signed body")


def _check_tree_head(state: LedgerState, header: BlockHeader, head_bytes: bytes, head_sig: bytes,
                     tree_size: int, proposer_pem: bytes) -> None:
    try:
        head = TreeHead.decode(head_bytes, head_sig)
    except ValueError as exc:
        raise Violation("malformed-tree-head", str(exc)) from None
    prev = state.head
    if prev is not None and head.size < prev.size:
        raise Violation("tree-head-rewound", f"tree size {head.size} is below the previous {prev.size}")
    if prev is not None and head.timestamp < prev.timestamp:
        raise Violation("tree-head-rewound", f"tree head time {head.timestamp} is before {prev.timestamp}")
    if head.log != state.chain:
        raise Violation("tree-head-log", "tree head names another log")
    if head.size != state.frontier.size or tree_size != head.size:
        raise Violation("tree-head-size", f"tree head size {head.size} (stored {tree_size}), "
                                          f"the log holds {state.frontier.size}")
    if head.root != state.frontier.root():
        raise Violation("tree-head-root", "tree head root is not the Merkle root of the log")
    if head.timestamp != header.timestamp:
        raise Violation("tree-head-time", "tree head time differs from its block's")
    if not head.verify(state.msp.public_key_bytes(proposer_pem)):
        raise Violation("tree-head-signature", "tree head signature is not the proposer's")
    state.head = head


def replay_head(conn: sqlite3.Connection, path: str) -> LedgerState:
    """The state after the head block, checking the genesis and the head block in full."""
    def fail(height: int | None, reason: str, detail: str) -> LedgerCorruptError:
        return LedgerCorruptError(path, height, reason, detail)

    def cert(identity_id: str) -> bytes | None:
        return store.read_cert(conn, identity_id)

    def block(height: int) -> tuple | None:
        return conn.execute(f"SELECT {store.BLOCK_COLUMNS} FROM blocks WHERE height = ?",
                            (height,)).fetchone()

    def txs(height: int) -> list:
        return conn.execute(f"SELECT {store.TX_COLUMNS} FROM txs WHERE height = ? ORDER BY seq",
                            (height,)).fetchall()

    def nodes(lo: int, hi: int) -> list:
        return conn.execute("SELECT last, level, hash FROM nodes WHERE last >= ? AND last < ? "
                            "ORDER BY last, level", (lo, hi)).fetchall()

    (head_height,) = conn.execute("SELECT MAX(height) FROM blocks").fetchone()
    if head_height is None:
        raise fail(None, "empty", "the ledger has no genesis block")
    state = LedgerState()
    try:
        genesis = block(0)
        if genesis is None:
            raise Violation("block-missing", "there is no genesis block")
        check_block(state, genesis, txs(0), nodes(0, genesis[4]), cert)
        if head_height > 0:
            prev = block(head_height - 1)
            if prev is None:
                raise Violation("block-missing", f"block {head_height - 1} is missing")
            header, head = BlockHeader.decode(prev[2]), TreeHead.decode(prev[5], prev[6])
            for (body,) in conn.execute("SELECT body FROM txs WHERE kind = 'revoke' AND height < ? "
                                        "ORDER BY seq", (head_height,)):
                payload = json.loads(body)["payload"]
                state.msp.revoke(payload["msp_id"], payload["serial"])
            state.nonces = dict(conn.execute(
                "SELECT sender, MAX(nonce) + 1 FROM txs WHERE height < ? GROUP BY sender",
                (head_height,)))
            state.frontier = Frontier.from_store(head.size, lambda lvl, i: store.read_node(conn, lvl, i))
            state.height, state.prev_hash, state.timestamp = prev[0], header.hash, header.timestamp
            state.head = head
            row = block(head_height)
            check_block(state, row, txs(head_height), nodes(head.size, row[4]), cert)
    except Violation as exc:
        raise fail(state.height + 1, exc.reason, exc.detail) from None
    except (ValueError, KeyError, TypeError, LedgerError) as exc:
        raise fail(state.height + 1, "malformed", str(exc)) from None
    return state
