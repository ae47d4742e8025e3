"""A peer's durable channel ledger: one SQLite file (WAL) with blocks (stored packed:
`chains.fabric.packing`), validation codes, world state, private-key hashes and the peer's
private side store.

A block, its validation codes and the state updates of its valid transactions commit in one
SQLite transaction, so a process killed at any moment leaves the ledger at a block boundary.
Everything but the blocks is derived: a peer reopening the file replays it
(`chains.fabric.replay`) and refuses it if anything derived disagrees.

Purged or expired private values leave the files for good: `secure_delete` zeroes freed
content, and after any block that erased a value the WAL is checkpointed and truncated; the
result is checked, and while a reader holds a snapshot that pins old WAL frames the scrub is
retried at every later commit, at close and at the next open (which also scrubs what a crash
between commit and checkpoint left behind).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from chains.errors import MalformedError
from chains.fabric.block import Block
from chains.fabric.errors import LedgerStateError
from chains.fabric.packing import BlockPacking
from chains.fabric.private_data import PrivateRecord
from chains.fabric.snapshot import SNAPSHOT_SCHEMA, Snapshot
from chains.fabric.state import UpdateBatch
from chains.fabric.validator import BlockResult
from chains.sqlite_files import (
    check_schema,
    harden,
    rollback,
    set_page_size,
    storage_failure,
    writing,
)

__all__ = ["BLOCK_SCHEMA", "FORMAT", "KIND", "SCHEMA", "LedgerStore", "open_store"]

KIND = "fabric-channel"
# 2: one canonical JSON, chain id and time in headers, no stored "claimed" flags.
# 3: the same hashed bytes, stored packed (chains.fabric.packing): a compressed body per block,
#    certificates once; files of format 2 are refused (FormatError names both versions).
# 4: the same hashed bytes; envelopes stored without the fields a reader derives (tx_id,
#    proposal hash: chains.fabric.packing), and a `snapshot` table (chains.fabric.snapshot):
#    a peer that took a snapshot keeps no blocks below it but the genesis; format 3 is refused.
# 5: headers stored without their data hash, the chain id in the dictionary of blocks 1, 2,
#    ..., a write that repeats an argument stored as a reference to it (chains.fabric.packing);
#    format 4 is refused.
# 6: a snapshot keeps the first 16 bytes of each used tx id (chains.fabric.transaction.used_id),
#    not the whole id; no `hash` column (a reader hashes the header it unpacks); format 5 is
#    refused.
FORMAT = "6"

BLOCK_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS certificates(id INTEGER PRIMARY KEY, pem BLOB NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS blocks(
    number INTEGER PRIMARY KEY, orderer INTEGER NOT NULL, signature BLOB NOT NULL,
    dictionary INTEGER NOT NULL, body BLOB NOT NULL);
"""
SCHEMA = BLOCK_SCHEMA + """
CREATE TABLE IF NOT EXISTS transactions(
    block INTEGER NOT NULL, idx INTEGER NOT NULL, tx_id TEXT NOT NULL, code TEXT NOT NULL,
    PRIMARY KEY(block, idx)) WITHOUT ROWID;
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
""" + SNAPSHOT_SCHEMA



def open_store(path: str | Path | None, schema: str, expected: dict[str, str]) -> sqlite3.Connection:
    """A hardened WAL connection to a channel or orderer file, created with `schema` and `meta`
    = `expected` when new; an existing file must have exactly that schema and meta."""
    file = None if path is None else Path(path)
    with writing(file):
        if file is not None:
            file.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(":memory:" if file is None else str(file), isolation_level=None,
                               check_same_thread=False)
        try:
            return _prepare(conn, file, schema, expected)
        except (sqlite3.DatabaseError, UnicodeDecodeError, MalformedError) as exc:
            conn.close()
            if storage_failure(exc, file) is not None:
                raise
            raise LedgerStateError(f"{file}: unreadable ({exc})") from None
        except BaseException:
            conn.close()
            raise


def _prepare(conn: sqlite3.Connection, file: Path | None, schema: str,
             expected: dict[str, str]) -> sqlite3.Connection:
    harden(conn)
    conn.execute("PRAGMA busy_timeout=50")
    fresh = not conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    if not fresh:
        _check_file(conn, file, schema, expected)  # before any write: a refused file is untouched
    elif file is not None:
        set_page_size(conn)
    if file is not None:
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA secure_delete=ON")
    if fresh:
        conn.execute("BEGIN IMMEDIATE")  # schema and meta at once: a full disk leaves no half
        try:
            for statement in filter(None, (part.strip() for part in schema.split(";"))):
                conn.execute(statement)
            conn.executemany("INSERT INTO meta VALUES (?, ?)", sorted(expected.items()))
            conn.execute("COMMIT")
        except BaseException:
            rollback(conn)
            raise
    return conn


def _check_file(conn: sqlite3.Connection, file: Path | None, schema: str,
                expected: dict[str, str]) -> None:
    """LedgerStateError unless the file is of the expected kind, format, schema and meta; a
    file of this kind but another format is named as such."""
    found = {}
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
                    ).fetchone():
        found = {k: v for k, v in conn.execute("SELECT key, value FROM meta")}
    if found.get("kind") == expected["kind"] and found.get("format") != expected["format"]:
        raise LedgerStateError(f"{file} is a {expected['kind']} file of format "
                               f"{str(found.get('format'))[:20]!r}; this version reads format "
                               f"{expected['format']!r} only (docs/fabric.md, \"Files and "
                               "verification\"): start a new run folder, or open it with the "
                               "version that wrote it")
    problem = check_schema(conn, schema)
    if problem:
        raise LedgerStateError(f"{file}: {problem}")
    if found != expected:
        raise LedgerStateError(f"{file} is not the expected ledger: meta {found}, "
                               f"expected {expected}")


class LedgerStore:
    """The SQLite ledger of one peer on one channel (`path=None`: in memory)."""

    def __init__(self, path: str | Path | None, *, channel: str, peer: str) -> None:
        self.path = None if path is None else str(path)
        self.conn = open_store(path, SCHEMA, {"kind": KIND, "format": FORMAT,
                                              "channel": channel, "peer": peer})
        try:
            self.packing = BlockPacking.of(self.conn)
        except MalformedError as exc:
            self.conn.close()
            raise LedgerStateError(f"{self.path}: {exc}") from None
        self.scrub_pending = self.path is not None  # whatever a crash left in the WAL
        self.scrub(tries=3)

    # --- reads -------------------------------------------------------------------------------
    def height(self) -> int:
        (top,) = self.conn.execute("SELECT MAX(number) FROM blocks").fetchone()
        (snapshot,) = self.conn.execute("SELECT MAX(height) FROM snapshot").fetchone()
        return max(0 if top is None else top + 1, snapshot or 0)

    def private_records(self) -> Iterator[tuple[tuple[str, str, str], PrivateRecord]]:
        """The side store, as stored (replay checks it against the on-ledger hashes)."""
        for ns, coll, kh, key, value, salt, block, tx in self.conn.execute(
                "SELECT ns, collection, key_hash, key, value, salt, block, tx FROM private_state"):
            yield (ns, coll, kh), PrivateRecord(key, bytes(value), bytes(salt), (block, tx))

    # --- the one write -----------------------------------------------------------------------
    def commit_block(self, block: Block, result: BlockResult) -> None:
        """Persist `block`, its codes and the batch of its valid transactions, atomically."""
        txs = block.transactions
        rows = [(block.number, i, getattr(txs[i], "tx_id", ""), str(check.code))
                for i, check in enumerate(result.checks)]
        batch: UpdateBatch = result.batch
        conn = self.conn
        packed, certificates = self.packing.pack(block)
        with writing(self.path):
            self._write(conn, packed, certificates, rows, batch, result)
        self.packing.accept(certificates)
        if batch.erased and self.path is not None:
            self.scrub_pending = True
        self.scrub()

    @staticmethod
    def _write(conn: sqlite3.Connection, packed: tuple, certificates: list, rows: list,
               batch: UpdateBatch, result: BlockResult) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany("INSERT INTO certificates VALUES (?, ?)", certificates)
            conn.execute("INSERT INTO blocks VALUES (?, ?, ?, ?, ?)", packed)
            conn.executemany("INSERT INTO transactions VALUES (?, ?, ?, ?)", rows)
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
            rollback(conn)
            raise

    def take_snapshot(self, snapshot: Snapshot) -> None:
        """Replace the file's snapshot by `snapshot` and drop the blocks it summarizes (all
        below its height but the genesis) with their transaction rows, atomically."""
        conn = self.conn
        with writing(self.path):
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("DELETE FROM snapshot")
                conn.execute("INSERT INTO snapshot VALUES (?, ?, ?, ?, ?)", snapshot.row())
                conn.execute("DELETE FROM transactions WHERE block > 0 AND block < ?",
                             (snapshot.height,))
                conn.execute("DELETE FROM blocks WHERE number > 0 AND number < ?",
                             (snapshot.height,))
                conn.execute("COMMIT")
            except BaseException:
                rollback(conn)
                raise

    def scrub(self, tries: int = 1) -> bool:
        """Checkpoint and truncate the WAL if erased values may linger in it; True when no
        scrub is pending afterwards (False: a reader still pins old frames; retried later)."""
        for attempt in range(tries if self.scrub_pending else 0):
            try:
                busy, log, _ = self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            except sqlite3.OperationalError:  # a full disk: the file cannot take the pages yet
                break
            if busy == 0 and log == 0:
                self.scrub_pending = False
                break
            time.sleep(0.01 * (attempt + 1))
        return not self.scrub_pending

    def close(self) -> None:
        self.scrub(tries=3)
        self.conn.close()
