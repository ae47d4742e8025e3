"""Replaying a stored public ledger from its signed data, block by block, rows streamed.

Both `PublicLedger.open` and `chains.verify` run `replay`: every stored row is type-checked,
every block goes through `chains.validation.check_block` (all rules; Ed25519 checks from
`signatures_from` on, and for the genesis), and what is left over afterwards (transactions of no
block, Merkle nodes beyond the log, certificates no one uses) is a failure too. So every derived
column (a transaction's height, id, sender, nonce and kind, the Merkle nodes, the tree sizes) is
recomputed from the signed bodies and headers, and a file where one disagrees is refused.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import Any

from chains.errors import MalformedError
from chains.store import (
    BLOCK_COLUMNS,
    TX_COLUMNS,
    TX_ROWS,
    TxRow,
    read_cert,
    unpack_body,
    unpack_header,
    unpack_tree_head,
)
from chains.validation import LedgerState, Violation, check_block

__all__ = ["ReplayFailure", "replay"]

_BLOCK_TYPES = (int, bytes, bytes, bytes, int, bytes, bytes)
_TX_TYPES = (int, int, bytes, str, int, str, bytes, bytes)
_NODE_TYPES = (int, int, bytes)

OnBlock = Callable[[int, list[TxRow]], None]


class ReplayFailure(Exception):
    """The stored ledger does not verify at `block` (None: the file as a whole) for `reason`."""

    def __init__(self, block: int | None, reason: str, detail: str) -> None:
        self.block, self.reason, self.detail = block, reason, detail
        super().__init__(f"{reason}: {detail}")


def _typed(rows: Iterator[tuple], types: tuple[type, ...], table: str) -> Iterator[tuple]:
    for row in rows:
        if len(row) != len(types) or not all(type(v) is t for v, t in zip(row, types)):
            kinds = ", ".join(type(v).__name__ for v in row)
            raise Violation("malformed-row", f"{table} row {str(row[0])[:20]} has columns "
                                             f"({kinds})")
        yield row


def _unpacked_block(row: tuple, state: LedgerState) -> tuple:
    """The block row with its signed header and tree head (`chains.store.pack_header`)."""
    height = row[0]
    if height != state.height + 1:
        return row  # check_block names the gap
    chain, prev, proposer = ((state.chain, state.prev_hash.hex(), state.proposer) if height
                             else ("", "", ""))
    try:
        header = unpack_header(row[2], chain, prev, proposer)
        head = unpack_tree_head(row[5], chain)
    except MalformedError as exc:
        raise Violation("malformed-block", str(exc)) from None
    return (*row[:2], header, *row[3:5], head, row[6])


def _unpacked(row: TxRow, chain: str) -> TxRow:
    """The row with its signed body (`chains.store.unpack_body`)."""
    seq, sender = row[0], row[3]
    if sender.startswith("#"):
        return row  # its certificate is not in the file: check_block names the sender
    try:
        body = unpack_body(row[6], "" if seq == 0 else chain, sender)
    except MalformedError as exc:
        raise Violation("malformed-tx", f"transaction {seq}: {exc}") from None
    return (*row[:6], body, row[7])


class _Peek:
    """An iterator with a one-row lookahead."""

    def __init__(self, rows: Iterator[Any]) -> None:
        self._rows, self.next = rows, next(rows, None)

    def take_while(self, keep: Callable[[Any], bool]) -> list:
        out = []
        while self.next is not None and keep(self.next):
            out.append(self.next)
            self.next = next(self._rows, None)
        return out


def replay(conn: sqlite3.Connection, state: LedgerState, *, signatures_from: int = 0,
           on_block: OnBlock | None = None, deadline: float | None = None) -> int:
    """Replay every stored block into `state`; returns how many. ReplayFailure on the first
    block (or leftover) that does not verify, or ("timeout") past `deadline` (a
    `time.monotonic()` value); `on_block(height, rows)` sees each verified one."""
    used: set[str] = set()
    certs: dict[str, bytes | None] = {}

    def cert(identity_id: str) -> bytes | None:
        if identity_id not in certs:
            certs[identity_id] = read_cert(conn, identity_id)
            used.add(identity_id)
        return certs[identity_id]

    blocks = 0
    try:
        rows = _typed(conn.execute(f"SELECT {BLOCK_COLUMNS} FROM blocks ORDER BY height"),
                      _BLOCK_TYPES, "blocks")
        txs = _Peek(_typed(conn.execute(f"SELECT {TX_COLUMNS} FROM {TX_ROWS} ORDER BY t.seq"),
                           _TX_TYPES, "txs"))
        nodes = _Peek(_typed(conn.execute("SELECT last, level, hash FROM nodes "
                                          "ORDER BY last, level"), _NODE_TYPES, "nodes"))
        for row in rows:
            height = row[0]
            block = _unpacked_block(row, state)
            if deadline is not None and time.monotonic() > deadline:
                raise Violation("timeout", "verification ran past its time limit")
            block_txs = [_unpacked(row, state.chain)
                         for row in txs.take_while(lambda row, h=height: row[1] <= h)]
            size = state.frontier.size + len(block_txs)
            block_nodes = nodes.take_while(lambda row, s=size: row[0] < s)
            check_block(state, block, block_txs, block_nodes, cert,
                        signatures=height == 0 or height >= signatures_from)
            blocks += 1
            if on_block is not None:
                on_block(height, block_txs)
    except Violation as exc:
        raise ReplayFailure(state.height + 1, exc.reason, exc.detail) from None
    except MalformedError as exc:  # a TEXT value that is no text (`chains.sqlite_files`' text
        raise ReplayFailure(state.height + 1, "malformed-row", str(exc)) from None  # factory)
    if blocks == 0:
        raise ReplayFailure(None, "empty", "the ledger has no genesis block")
    if txs.next is not None:
        raise ReplayFailure(txs.next[1], "orphan-transactions",
                            f"transaction {txs.next[0]} belongs to no verified block")
    if nodes.next is not None:
        raise ReplayFailure(None, "merkle-node", "stored Merkle nodes beyond the log")
    for (identity_id,) in conn.execute("SELECT id FROM certs"):
        if identity_id not in used:
            raise ReplayFailure(None, "orphan-certificate",
                                f"certificate {str(identity_id)[:16]} is used by no block")
    return blocks
