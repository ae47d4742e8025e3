"""The rules of the public ledger, shared by `submit` (one transaction), `open` and `verify`.

A `LedgerState` is what a replay of blocks 0..h knows: the membership service (with revocation
lists applied in log order), each sender's next nonce, the Merkle frontier, the last block hash,
time and tree head. `check_transaction` and `check_block` raise `Violation(reason, detail)`, where
`reason` is a stable code (listed in docs/chains.md); on success they advance the state.

Time: a transaction is judged at the ledger time of the block before the one that holds it (the
time the ledger had when it was submitted; the genesis transaction at its own block's time), a
block's proposer and tree head at the block's own time. Certificates must be valid then.

`check_block(..., signatures=False)` applies every rule but skips the Ed25519 checks: `open` uses
it for every block but the genesis and the head, whose signature vouches for the rest through
the hash links and the Merkle root.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from chains.blocks import BLOCK_DOMAIN, GENESIS_PREV, BlockHeader, TreeHead
from chains.errors import IdentityError, MalformedError
from chains.merkle import Frontier
from chains.msp import MSP
from chains.store import STORED_LEVEL, BlockRow, TxRow, node_key
from chains.transactions import KINDS, Transaction, check_payload

__all__ = ["LedgerState", "Violation", "check_block", "check_transaction", "genesis_payload"]

NONCE_BYTES = (8, 64)  # a genesis nonce: at least 8 and at most 64 bytes
_IDENTITY_REASONS = {"revoked": "revoked-identity", "bad signature": "tx-signature",
                     "expired": "identity-time", "not yet valid": "identity-time",
                     "not a signer": "identity-usage"}


class Violation(Exception):
    """A rule of the ledger does not hold; `reason` is a short stable code."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}")


def genesis_payload(msp: MSP, max_payload_bytes: int, nonce: bytes) -> dict:
    return {"max_payload_bytes": max_payload_bytes, "msp": msp.to_dict(), "nonce": nonce.hex()}


@dataclass
class LedgerState:
    """What replaying the ledger up to `height` establishes (height -1: nothing yet)."""

    chain: str = ""
    proposer: str = ""  # the genesis block's proposer id (in stored headers' dictionary)
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
            except Exception as exc:  # noqa: BLE001 (cryptography raises many types on bad DER)
                raise Violation("tx-sender", f"certificate does not parse ({exc})"[:300]) \
                    from None
            ident = self.cert_ids[cert_pem] = hashlib.sha256(der).hexdigest()
        return ident


def check_transaction(state: LedgerState, tx: Transaction, *, signatures: bool = True) -> None:
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
        raise Violation("tx-kind", f"kind {tx.kind[:40]!r} is not allowed here")
    try:
        if signatures:
            msp_id, role = state.msp.verify(tx.cert_pem, tx.signed_bytes, tx.signature,
                                            at=state.timestamp)
        else:
            msp_id, role = state.msp.validate(tx.cert_pem, at=state.timestamp)
    except IdentityError as exc:
        raise Violation(_IDENTITY_REASONS.get(exc.reason, "tx-identity"), str(exc)) from None
    if role not in spec.roles:
        raise Violation("tx-role", f"a {role} may not send {tx.kind!r} (allowed: {sorted(spec.roles)})")
    try:
        check_payload(tx.kind, tx.payload, state.max_payload_bytes)
    except MalformedError as exc:
        raise Violation("tx-payload", str(exc)) from None
    expected = state.nonces.get(tx.sender, 0)
    if tx.nonce != expected:
        raise Violation("tx-nonce", f"nonce {tx.nonce} from {tx.sender[:12]}, expected {expected}")
    if tx.kind == "revoke":
        _apply_revocation(state, tx, msp_id)
    state.nonces[tx.sender] = expected + 1


def _apply_revocation(state: LedgerState, tx: Transaction, msp_id: str) -> None:
    target, crl = tx.payload["msp_id"], tx.payload["crl"]
    if target != msp_id:
        raise Violation("tx-payload", f"an admin of {msp_id} cannot revoke in {target[:40]!r}")
    try:
        state.msp.add_crl(target, bytes.fromhex(crl))
    except ValueError:
        raise Violation("tx-payload", "crl must be the hex of a DER CRL") from None
    except IdentityError as exc:
        raise Violation("tx-payload", str(exc)) from None


def _load_genesis(state: LedgerState, tx: Transaction) -> None:
    payload = tx.payload
    limit, nonce = payload.get("max_payload_bytes"), payload.get("nonce")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
        raise Violation("genesis", f"max_payload_bytes must be a positive int, got {limit!r}")
    if not isinstance(nonce, str) or not NONCE_BYTES[0] * 2 <= len(nonce) <= NONCE_BYTES[1] * 2:
        raise Violation("genesis", "the genesis needs a nonce of 8 to 64 bytes (hex)")
    try:
        state.msp = MSP.from_dict(payload.get("msp"))
    except IdentityError as exc:
        raise Violation("genesis", f"membership config does not load ({exc})") from None
    state.max_payload_bytes = limit
    state.chain = tx.id


def check_block(state: LedgerState, block: BlockRow, txs: Sequence[TxRow],
                nodes: Sequence[tuple[int, int, bytes]], cert: Callable[[str], bytes | None],
                *, signatures: bool = True) -> None:
    """Raise Violation unless `block` (with its transaction rows and stored Merkle nodes, as
    (last, level, hash)) extends `state`; on success the state moves to this block."""
    height, stored_hash, header_bytes, signature, tree_size, head_bytes, head_sig = block
    expected = state.height + 1
    if height != expected:
        raise Violation("block-missing", f"expected block {expected}, the next stored is {height}")
    try:
        header = BlockHeader.decode(header_bytes)
    except MalformedError as exc:
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
    if height == 0:  # the genesis transaction brings the MSP that validates its own proposer
        if len(txs) != 1:
            raise Violation("genesis", f"genesis block holds {len(txs)} transactions, not 1")
        state.timestamp = header.timestamp
        _check_rows(state, height, txs, cert, signatures)
    if header.chain != state.chain:
        raise Violation("block-chain", "block header names another ledger")
    proposer_pem = _check_proposer(state, header, header_bytes, signature, cert, signatures)
    if len(txs) != header.tx_count:
        raise Violation("tx-count", f"header declares {header.tx_count} transactions, "
                                    f"the file holds {len(txs)}")
    if height > 0:
        _check_rows(state, height, txs, cert, signatures)
    block_tree = Frontier()
    created: list[tuple[int, int, bytes]] = []
    for row in txs:
        block_tree.append(row[2])
        created.extend((node_key(lvl, idx), lvl, h)
                       for lvl, idx, h in state.frontier.append(row[2]) if lvl >= STORED_LEVEL)
    if block_tree.root() != header.tx_root:
        raise Violation("tx-root", "Merkle root of the block's transactions is not the header's tx_root")
    if list(nodes) != created:
        raise Violation("merkle-node", "stored Merkle nodes are not those the transactions produce")
    _check_tree_head(state, header, head_bytes, head_sig, tree_size, proposer_pem, signatures)
    state.height, state.prev_hash, state.timestamp = height, header.hash, header.timestamp
    if height == 0:
        state.proposer = header.proposer


def _check_proposer(state: LedgerState, header: BlockHeader, header_bytes: bytes,
                    signature: bytes, cert: Callable[[str], bytes | None],
                    signatures: bool) -> bytes:
    proposer_pem = cert(header.proposer)
    if proposer_pem is None:
        raise Violation("proposer-identity", f"certificate {header.proposer[:12]} is not in the ledger")
    try:
        if state.identity_id(proposer_pem) != header.proposer:
            raise IdentityError("bad chain", "certificate does not hash to the proposer id")
        if signatures:
            state.msp.verify(proposer_pem, BLOCK_DOMAIN + header_bytes, signature,
                             at=header.timestamp, role="orderer")
        else:
            state.msp.validate(proposer_pem, at=header.timestamp, role="orderer")
    except IdentityError as exc:
        reason = "block-signature" if exc.reason == "bad signature" else "proposer-identity"
        raise Violation(reason, str(exc)) from None
    except Violation as exc:  # the stored certificate does not even parse
        raise Violation("proposer-identity", exc.detail) from None
    return proposer_pem


def _check_rows(state: LedgerState, height: int, txs: Sequence[TxRow],
                cert: Callable[[str], bytes | None], signatures: bool) -> None:
    first = state.frontier.size
    for offset, (seq, tx_height, tx_id, sender, nonce, kind, body, sig) in enumerate(txs):
        if seq != first + offset:
            raise Violation("tx-count", f"transaction {first + offset} is missing (found {seq})")
        if tx_height != height:
            raise Violation("tx-height", f"transaction {seq} is stored at height {tx_height}, "
                                         f"its block is {height}")
        pem = cert(sender)
        if pem is None:
            raise Violation("tx-sender", f"certificate {sender[:12]} is not in the ledger")
        try:
            tx = Transaction.decode(body, sig, pem)
        except MalformedError as exc:
            raise Violation("malformed-tx", f"transaction {seq}: {exc}") from None
        try:
            check_transaction(state, tx, signatures=signatures)
        except Violation as exc:
            raise Violation(exc.reason, f"transaction {seq}: {exc.detail}") from None
        if (tx_id, sender, nonce, kind) != (tx.leaf_hash, tx.sender, tx.nonce, tx.kind):
            raise Violation("tx-index", f"transaction {seq}: stored id/sender/nonce/kind disagree "
                                        "with its signed body")


def _check_tree_head(state: LedgerState, header: BlockHeader, head_bytes: bytes, head_sig: bytes,
                     tree_size: int, proposer_pem: bytes, signatures: bool) -> None:
    try:
        head = TreeHead.decode(head_bytes, head_sig)
    except MalformedError as exc:
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
    if signatures and not head.verify(state.msp.public_key_bytes(proposer_pem)):
        raise Violation("tree-head-signature", "tree head signature is not the proposer's")
    state.head = head
