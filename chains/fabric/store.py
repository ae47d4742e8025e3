"""A peer's durable channel ledger: one SQLite file (WAL) with blocks, validation codes, world
state, private-key hashes and the peer's private side store.

A block, its validation codes and the state updates of its valid transactions commit in one
SQLite transaction, so a process killed at any moment leaves the ledger at a block boundary.
`secure_delete` is on and the WAL is checkpointed and truncated after a block that purged or
expired private data, so erased values do not linger in the file.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from chains.fabric.block import Block
from chains.fabric.codec import ZERO_HASH
from chains.fabric.config import ChaincodeDefinition
from chains.fabric.errors import LedgerStateError
from chains.fabric.private_data import PrivateRecord
from chains.fabric.state import UpdateBatch, WorldState
from chains.fabric.validator import BlockResult

__all__ = ["KIND", "LedgerStore"]

KIND = "fabric-channel"
FORMAT = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blocks(
    number INTEGER PRIMARY KEY, previous_hash TEXT NOT NULL, data_hash TEXT NOT NULL,
    hash TEXT NOT NULL, orderer TEXT NOT NULL, signature TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS transactions(
    block INTEGER NOT NULL, idx INTEGER NOT NULL, tx_id TEXT NOT NULL, code TEXT NOT NULL,
    claimed INTEGER NOT NULL, envelope BLOB NOT NULL, PRIMARY KEY(block, idx));
CREATE INDEX IF NOT EXISTS transactions_by_id ON transactions(tx_id);
CREATE TABLE IF NOT EXISTS state(
    ns TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, block INTEGER NOT NULL,
    tx INTEGER NOT NULL, PRIMARY KEY(ns, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hashed_state(
    ns TEXT NOT NULL, collection TEXT NOT NULL, key_hash TEXT NOT NULL, value_hash TEXT NOT NULL,
    block INTEGER NOT NULL, tx INTEGER NOT NULL, PRIMARY KEY(ns, collection, key_hash))
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS private_state(
    ns TEXT NOT NULL, collection TEXT NOT NULL, key_hash TEXT NOT NULL, key TEXT NOT NULL,
    value BLOB NOT NULL, salt BLOB NOT NULL, block INTEGER NOT NULL, tx INTEGER NOT NULL,
    PRIMARY KEY(ns, collection, key_hash)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS chaincodes(name TEXT PRIMARY KEY, definition TEXT NOT NULL);
"""


class LedgerStore:
    """The SQLite ledger of one peer on one channel (`path=None`: in memory)."""

    def __init__(self, path: str | Path | None, *, channel: str, peer: str) -> None:
        self.path = None if path is None else str(path)
        if self.path is not None:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path or ":memory:", isolation_level=None,
                                    check_same_thread=False)
        if self.path is not None:
            self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA secure_delete=ON")
        self.conn.executescript(_SCHEMA)
        expected = {"kind": KIND, "format": FORMAT, "channel": channel, "peer": peer}
        found = dict(self.conn.execute("SELECT key, value FROM meta"))
        if not found:
            self.conn.executemany("INSERT INTO meta VALUES (?, ?)", sorted(expected.items()))
        elif any(found.get(k) != v for k, v in expected.items()):
            raise LedgerStateError(f"{self.path} is not the ledger of peer {peer!r} on channel "
                                   f"{channel!r}: meta {found}")

    # --- reads -------------------------------------------------------------------------------
    def height(self) -> int:
        (top,) = self.conn.execute("SELECT MAX(number) FROM blocks").fetchone()
        return 0 if top is None else top + 1

    def last_hash(self) -> str:
        row = self.conn.execute("SELECT hash FROM blocks ORDER BY number DESC LIMIT 1").fetchone()
        return ZERO_HASH if row is None else row[0]

    def block(self, number: int) -> Block | None:
        row = self.conn.execute("SELECT previous_hash, data_hash, orderer, signature FROM blocks "
                                "WHERE number = ?", (number,)).fetchone()
        if row is None:
            return None
        envelopes = tuple(bytes(e) for (e,) in self.conn.execute(
            "SELECT envelope FROM transactions WHERE block = ? ORDER BY idx", (number,)))
        return Block(number, row[0], row[1], envelopes, row[2].encode("ascii"),
                     bytes.fromhex(row[3]))

    def blocks(self, start: int = 0) -> Iterator[Block]:
        for number in range(start, self.height()):
            block = self.block(number)
            if block is None:
                raise LedgerStateError(f"{self.path}: block {number} is missing")
            yield block

    def codes(self, number: int) -> list[str]:
        return [c for (c,) in self.conn.execute(
            "SELECT code FROM transactions WHERE block = ? ORDER BY idx", (number,))]

    def transaction(self, tx_id: str) -> tuple[int, int, str] | None:
        """(block, index, code) of the first transaction with `tx_id`."""
        row = self.conn.execute("SELECT block, idx, code FROM transactions WHERE tx_id = ? "
                                "ORDER BY block, idx LIMIT 1", (tx_id,)).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def tx_ids(self) -> set[str]:
        """Every tx_id that counts as used (its transaction's signature and tx_id checked out)."""
        return {t for (t,) in self.conn.execute(
            "SELECT tx_id FROM transactions WHERE claimed = 1")}

    def definitions(self) -> dict[str, ChaincodeDefinition]:
        return {name: ChaincodeDefinition.from_dict(json.loads(raw))
                for name, raw in self.conn.execute("SELECT name, definition FROM chaincodes")}

    def load_state(self, state: WorldState) -> None:
        for ns, key, value, block, tx in self.conn.execute("SELECT * FROM state"):
            state.set_public(ns, key, bytes(value), (block, tx))
        for ns, coll, kh, vh, block, tx in self.conn.execute("SELECT * FROM hashed_state"):
            state.set_hashed((ns, coll, kh), vh, (block, tx))
        for ns, coll, kh, key, value, salt, block, tx in self.conn.execute(
                "SELECT * FROM private_state"):
            state.set_private((ns, coll, kh), PrivateRecord(key, bytes(value), bytes(salt),
                                                            (block, tx)))

    # --- the one write -----------------------------------------------------------------------
    def commit_block(self, block: Block, result: BlockResult) -> None:
        """Persist `block`, its codes and the batch of its valid transactions, atomically."""
        txs = block.transactions
        rows = [(block.number, i, getattr(txs[i], "tx_id", ""), str(check.code),
                 int(i in result.claimed), block.envelopes[i])
                for i, check in enumerate(result.checks)]
        batch: UpdateBatch = result.batch
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("INSERT INTO blocks VALUES (?, ?, ?, ?, ?, ?)",
                         (block.number, block.previous_hash, block.data_hash, block.hash,
                          block.orderer.decode("ascii"), block.signature.hex()))
            conn.executemany("INSERT INTO transactions VALUES (?, ?, ?, ?, ?, ?)", rows)
            conn.executemany("INSERT OR REPLACE INTO state VALUES (?, ?, ?, ?, ?)",
                             [(ns, k, v, ver[0], ver[1]) for (ns, k), (v, ver)
                              in batch.public.items() if v is not None])
            conn.executemany("DELETE FROM state WHERE ns = ? AND key = ?",
                             [key for key, (v, _) in batch.public.items() if v is None])
            conn.executemany("INSERT OR REPLACE INTO hashed_state VALUES (?, ?, ?, ?, ?, ?)",
                             [(*hk, vh, ver[0], ver[1]) for hk, (vh, ver)
                              in batch.hashed.items() if vh is not None])
            gone = [hk for hk, (vh, _) in batch.hashed.items() if vh is None]
            conn.executemany("DELETE FROM hashed_state WHERE ns = ? AND collection = ? "
                             "AND key_hash = ?", gone)
            stale = gone + [hk for hk, rec in batch.private.items() if rec is None]
            conn.executemany("DELETE FROM private_state WHERE ns = ? AND collection = ? "
                             "AND key_hash = ?", stale)
            conn.executemany("INSERT OR REPLACE INTO private_state VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             [(*hk, r.key, r.value, r.salt, r.version[0], r.version[1])
                              for hk, r in batch.private.items()
                              if r is not None and batch.hashed.get(hk, (None,))[0] is not None])
            conn.executemany("INSERT OR REPLACE INTO chaincodes VALUES (?, ?)",
                             [(d.name, json.dumps(d.to_dict(), sort_keys=True))
                              for d in result.definitions])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if batch.erased and self.path is not None:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        self.conn.close()
