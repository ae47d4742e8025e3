"""SQLite (WAL) storage of the public ledger: one SQLite transaction per block, never a half block.

Tables:
  meta(key, value)       kind = "public-ledger", format, chain (the ledger id)
  certs(ref, id, pem)    certificates by identity id (hex SHA-256 of the DER), stored once;
                         `ref` is the small number a transaction names its sender by
  blocks(height, ...)    header and its signature, the block hash, the signed tree head
  txs(seq, ...)          transactions in log order: seq is the Merkle leaf index; the block height,
                         leaf hash (id), sender (a `certs.ref`), nonce and kind (a code) are indexes
                         into
                         the signed body,
                         which is stored packed (`pack_body`: raw DEFLATE with a preset
                         dictionary of the bodies' keys, the chain id and the row's sender id,
                         so those cost a few bytes); block headers and tree heads are stored
                         packed too; the signed bytes are unchanged
  nodes(last, level, hash)  every completed perfect subtree of level `STORED_LEVEL` or above, keyed
                         by its last leaf, so that proofs cost O(log^2 n) lookups; the nodes
                         below (levels 1 and 2) are recomputed from their 2 or 4 leaves when read
Everything but the signed header, tree head and transaction bodies is derived: `open` and
`verify` recompute it all from the signed data and refuse a file where it disagrees. A file whose
schema is not exactly this one (a view, a trigger, an altered table) is refused too.
"""

from __future__ import annotations

import sqlite3
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

from chains.errors import LedgerCorruptError, LedgerError, MalformedError
from chains.merkle import node_hash
from chains.sqlite_files import check_schema, harden, rollback, set_page_size

__all__ = ["FORMAT", "ID_KEY", "KIND", "KIND_CODES", "SCHEMA", "STORED_LEVEL", "TX_COLUMNS", "TX_ROWS", "BlockRow", "TxRow",
           "connect", "node_key", "pack_body",
           "pack_header", "pack_tree_head", "unpack_body", "unpack_header", "unpack_tree_head",
           "write_block"]

KIND = "public-ledger"
# 2: one canonical JSON, genesis nonce, chain id in block headers, CRLs.
# 3: the same signed bytes, transaction bodies, block headers and tree heads stored packed
#    (`pack_body`, `pack_header`, `pack_tree_head`); format 2 is refused.
# 4: the same signed bytes; a transaction's sender stored as its certificate's `certs.ref`
#    instead of its 64 hex characters and its kind as its place in `KIND_CODES`, Merkle nodes
#    of levels 1 and 2 recomputed from the leaves instead of stored, the id index on the id's
#    first 8 bytes (`ID_KEY`), the bodies' dictionary holding the kinds and payload keys;
#    format 3 is refused.
# 5: the same signed bytes; a block header's dictionary holds the genesis block's proposer id
#    too (blocks 1, 2, ...: the proposer every block names, unless the orderer changed); format
#    4 is refused.
FORMAT = "5"
STORED_LEVEL = 3  # the lowest level of the Merkle nodes the `nodes` table holds
# The words bodies are made of: the kinds, and the payload keys the chains and fedenv write.
BODY_TEMPLATE = (b'"kind":"anchor""kind":"revoke""kind":"global-model-hash""kind":"round-summary"'
                 b'{"chain":"","kind":"update-hash","nonce":,"payload":{"accepted":[],'
                 b'"artifact":"","contributions":{},"digest":"","episode":,"event":"episode-start",'
                 b'"examples":,"global_score":0.,"org":"","participants":[],"payouts":{},'
                 b'"prefixes":[],"round":,"scoring_tx":""},"sender":""}')
HEADER_TEMPLATE = (b'{"chain":"","height":,"prev":"","proposer":"","timestamp":,"tx_count":,'
                   b'"tx_root":""}')
TREE_HEAD_TEMPLATE = b'{"log":"","root":"","size":,"timestamp":}'
MAX_BODY_BYTES = 16 << 20  # a transaction body, unpacked (a genesis with many CAs included)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS certs(
    ref INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, pem BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS blocks(
    height INTEGER PRIMARY KEY, hash BLOB NOT NULL, header BLOB NOT NULL, signature BLOB NOT NULL,
    tree_size INTEGER NOT NULL, tree_head BLOB NOT NULL, tree_head_signature BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS txs(
    seq INTEGER PRIMARY KEY, height INTEGER NOT NULL, id BLOB NOT NULL, sender INTEGER NOT NULL,
    nonce INTEGER NOT NULL, kind INTEGER NOT NULL, body BLOB NOT NULL, signature BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS txs_by_id ON txs(substr(id, 1, 8));
CREATE TABLE IF NOT EXISTS nodes(
    last INTEGER NOT NULL, level INTEGER NOT NULL, hash BLOB NOT NULL,
    PRIMARY KEY(last, level)) WITHOUT ROWID;
"""

BLOCK_COLUMNS = "height, hash, header, signature, tree_size, tree_head, tree_head_signature"
# The `kind` column's codes: a kind's place here (new kinds are appended).
KIND_CODES = ("msp-config", "anchor", "update-hash", "global-model-hash", "round-summary",
              "revoke")
_KIND_NAME = ("CASE t.kind " + " ".join(f"WHEN {i} THEN '{k}'" for i, k in enumerate(KIND_CODES))
              + " ELSE '#' || t.kind END")
_KIND_CODE = ("CASE ? " + " ".join(f"WHEN '{k}' THEN {i}" for i, k in enumerate(KIND_CODES))
              + " END")
ID_KEY = "substr(id, 1, 8)"  # what the id index holds: a lookup by id is `ID_KEY = ? AND id = ?`
# A transaction row as the readers see it: the sender as its identity id ("#<ref>" when the
# row names a certificate the file lacks), the kind by name ("#<code>" for an unknown code).
TX_COLUMNS = ("t.seq, t.height, t.id, COALESCE(c.id, '#' || t.sender), t.nonce, "
              f"{_KIND_NAME}, t.body, t.signature")
TX_ROWS = "txs t LEFT JOIN certs c ON c.ref = t.sender"
# (height, hash, header, signature, tree_size, tree_head, tree_head_signature)
BlockRow = tuple[int, bytes, bytes, bytes, int, bytes, bytes]
# (seq, height, id, sender, nonce, kind, body, signature)
TxRow = tuple[int, int, bytes, str, int, str, bytes, bytes]


def connect(path: str | Path, *, create: bool = False, synchronous: str = "FULL") -> sqlite3.Connection:
    """Open a ledger database (autocommit mode: the caller brackets each block in BEGIN/COMMIT).

    LedgerError if the file is missing (or, with `create`, exists), or holds another kind of
    ledger or format; LedgerCorruptError ("schema") if its schema is not the ledger's.
    """
    path = Path(path)
    if not create and not path.is_file():
        raise LedgerError(f"no ledger file at {path}")
    if create and path.exists() and path.stat().st_size > 0:
        raise LedgerError(f"{path} already exists; open it instead of creating it")
    if synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise LedgerError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, got {synchronous!r}")
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    try:
        harden(conn)
        if not create:
            meta = read_meta(conn) if conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone() \
                else {}
            if meta.get("kind") != KIND:
                raise LedgerError(f"{path} is not a public ledger (kind {meta.get('kind')!r})")
            if meta.get("format") != FORMAT:
                raise LedgerError(f"{path} has format {meta.get('format')!r}, expected {FORMAT} "
                                  f"(ledgers of other formats do not reopen)")
            problem = check_schema(conn, SCHEMA)
            if problem:
                raise LedgerCorruptError(str(path), None, "schema", problem)
        if create:
            set_page_size(conn)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        if create:
            conn.executescript(SCHEMA)
    except BaseException:
        conn.close()
        raise
    return conn


def _pack(data: bytes, dictionary: bytes) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, -15, zdict=dictionary)
    return packer.compress(data) + packer.flush()


def _unpack(blob: bytes, dictionary: bytes, what: str) -> bytes:
    unpacker = zlib.decompressobj(-15, zdict=dictionary)
    try:
        data = unpacker.decompress(blob, MAX_BODY_BYTES)
    except zlib.error as exc:
        raise MalformedError(f"its stored {what} does not decompress ({exc})") from None
    if unpacker.unconsumed_tail or not unpacker.eof or unpacker.unused_data:
        raise MalformedError(f"its stored {what} is cut short, too large or has bytes after its "
                             "end")
    return data


def pack_body(body: bytes, chain: str, sender: str) -> bytes:
    """A transaction body as stored: raw DEFLATE (level 9) with a preset dictionary of the
    template, the chain id (`""` for the genesis transaction, which precedes it) and the
    sender's id."""
    return _pack(body, BODY_TEMPLATE + chain.encode() + sender.encode())


def unpack_body(blob: bytes, chain: str, sender: str) -> bytes:
    """The signed body of a stored one; MalformedError if it does not unpack whole."""
    return _unpack(blob, BODY_TEMPLATE + chain.encode() + sender.encode(), "body")


def pack_header(header: bytes, chain: str, prev: str, proposer: str) -> bytes:
    """A block header as stored: as `pack_body`, its dictionary the header template, the chain
    id, the genesis block's proposer id and the previous block's hash (hex; all `""` for the
    genesis block)."""
    return _pack(header, HEADER_TEMPLATE + chain.encode() + proposer.encode() + prev.encode())


def unpack_header(blob: bytes, chain: str, prev: str, proposer: str) -> bytes:
    return _unpack(blob, HEADER_TEMPLATE + chain.encode() + proposer.encode() + prev.encode(),
                   "header")


def pack_tree_head(head: bytes, chain: str) -> bytes:
    """A signed tree head's bytes as stored (the chain id `""` in the genesis block)."""
    return _pack(head, TREE_HEAD_TEMPLATE + chain.encode())


def unpack_tree_head(blob: bytes, chain: str) -> bytes:
    return _unpack(blob, TREE_HEAD_TEMPLATE + chain.encode(), "tree head")


def node_key(level: int, index: int) -> int:
    """The last leaf index under node (level, index): the `nodes` table's key with `level`."""
    return ((index + 1) << level) - 1


def write_block(conn: sqlite3.Connection, block: BlockRow, txs: Sequence[TxRow],
                nodes: Iterable[tuple[int, int, bytes]], certs: Iterable[tuple[str, bytes]],
                meta: Iterable[tuple[str, str]] = ()) -> None:
    """Commit a block with its transactions (their sender as an identity id, stored as its
    certificate's `ref`), new Merkle nodes (those below `STORED_LEVEL` are left out) and
    certificates, atomically (on any error, nothing of it: SQLite's own rollback on a full disk
    included; a sender whose certificate the file lacks fails the NOT NULL constraint)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany("INSERT INTO meta(key, value) VALUES (?, ?)", meta)
        conn.executemany("INSERT OR IGNORE INTO certs(id, pem) VALUES (?, ?)", certs)
        conn.executemany("INSERT INTO txs(seq, height, id, sender, nonce, kind, body, signature) "
                         f"VALUES (?, ?, ?, (SELECT ref FROM certs WHERE id = ?), ?, {_KIND_CODE}, ?, ?)", txs)
        conn.executemany("INSERT INTO nodes(last, level, hash) VALUES (?, ?, ?)",
                         ((node_key(level, index), level, h) for level, index, h in nodes
                          if level >= STORED_LEVEL))
        conn.execute("INSERT INTO blocks(height, hash, header, signature, tree_size, tree_head, "
                     "tree_head_signature) VALUES (?, ?, ?, ?, ?, ?, ?)", block)
        conn.execute("COMMIT")
    except BaseException:
        rollback(conn)
        raise


def read_meta(conn: sqlite3.Connection) -> dict[str, str]:
    return dict(conn.execute("SELECT key, value FROM meta"))


def read_node(conn: sqlite3.Connection, level: int, index: int) -> bytes:
    """Hash of node (level, index) of a completed subtree; level 0 is a leaf hash (a
    transaction id), levels 1 and 2 are recomputed from their leaves."""
    if 0 < level < STORED_LEVEL:
        return node_hash(read_node(conn, level - 1, 2 * index),
                         read_node(conn, level - 1, 2 * index + 1))
    if level == 0:
        row = conn.execute("SELECT id FROM txs WHERE seq = ?", (index,)).fetchone()
    else:
        row = conn.execute("SELECT hash FROM nodes WHERE last = ? AND level = ?",
                           (node_key(level, index), level)).fetchone()
    if row is None or type(row[0]) is not bytes:
        raise LedgerError(f"Merkle node (level {level}, index {index}) is not in the ledger")
    return row[0]


def read_cert(conn: sqlite3.Connection, identity_id: str) -> bytes | None:
    row = conn.execute("SELECT pem FROM certs WHERE id = ?", (identity_id,)).fetchone()
    return None if row is None or type(row[0]) is not bytes else row[0]
