"""A peer's ledger snapshot, as Fabric's (2.3+): the state of a channel at one height, so that
the peer keeps no blocks below it.

A snapshot at height `h` records the hash and time of block `h - 1` and everything a peer
derives from blocks `0 .. h - 1`: world state (public keys with versions, private key hashes
with versions), chaincode definitions and the transaction ids already used (duplicate
detection), each as the first 16 bytes a peer keeps of it (`chains.fabric.transaction.used_id`:
a true duplicate always matches; 32 hex characters, about 16 bytes compressed, per used id). Its `state_hash` is the SHA-256 of that content as canonical JSON; the content is
stored DEFLATE-compressed in the peer file's `snapshot` table (one row). Taking one drops the
peer's blocks `1 .. h - 1` (block 0, the channel config, stays: it is the trust anchor) and
their transaction rows, in one SQLite transaction. The orderer's chain keeps every block and
stays the system of record: `chains verify` checks a snapshot's block hash against the
orderer's block `h - 1` and its state hash against a replay of the orderer's chain to `h`.

Nothing in the row is trusted: reopening replays the retained blocks from the decoded content,
and a content that does not hash to `state_hash` is refused.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from chains.canonical import canonical_json
from chains.errors import ChainsError, MalformedError
from chains.fabric.config import ChaincodeDefinition
from chains.fabric.state import WorldState
from chains.fabric.transaction import USED_ID_CHARS

__all__ = ["SNAPSHOT_SCHEMA", "Snapshot", "SnapshotContent", "read_snapshot"]

SNAPSHOT_SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshot(
    height INTEGER PRIMARY KEY, block_hash BLOB NOT NULL, time INTEGER NOT NULL,
    state_hash BLOB NOT NULL, body BLOB NOT NULL);
"""
MAX_CONTENT_BYTES = 256 << 20  # a decompressed snapshot


@dataclass(frozen=True)
class SnapshotContent:
    """What a peer derives from the blocks below a snapshot."""

    state: WorldState
    definitions: dict[str, ChaincodeDefinition]
    tx_ids: set[str]  # used tx ids as peers keep them (`used_id`)


@dataclass(frozen=True)
class Snapshot:
    """Height `height` (blocks below it summarized), block `height - 1`'s hash and time, the
    SHA-256 of the canonical content and the content itself."""

    height: int
    block_hash: str
    time: int
    state_hash: str
    content: bytes

    @classmethod
    def take(cls, height: int, block_hash: str, time: int, state: WorldState,
             definitions: Mapping[str, ChaincodeDefinition], tx_ids: Iterable[str]) -> Snapshot:
        content = encode_content(height, block_hash, time, state, definitions, tx_ids)
        return cls(height, block_hash, time, hashlib.sha256(content).hexdigest(), content)

    def row(self) -> tuple:
        return (self.height, bytes.fromhex(self.block_hash), self.time,
                bytes.fromhex(self.state_hash), zlib.compress(self.content, 9))

    def hash_matches(self) -> bool:
        return hashlib.sha256(self.content).hexdigest() == self.state_hash

    def restore(self, block_to_live: Mapping[str, int]) -> SnapshotContent:
        """The decoded content (MalformedError if it is not a snapshot's, or names another
        height, hash or time than the row)."""
        try:
            data = json.loads(self.content)
            if [data.get("height"), data.get("block_hash"), data.get("time")] != \
                    [self.height, self.block_hash, self.time]:
                raise MalformedError("the snapshot's content names another height, hash or "
                                     "time than its row")
            state = WorldState(block_to_live)
            for ns, key, value, block, tx in data["public"]:
                state.set_public(_text(ns), _text(key), bytes.fromhex(value),
                                 (_number(block), _number(tx)))
            for ns, collection, kh, vh, block, tx in data["hashed"]:
                state.set_hashed((_text(ns), _text(collection), _text(kh)), _text(vh),
                                 (_number(block), _number(tx)))
            definitions = {name: ChaincodeDefinition.from_dict(d)
                           for name, d in data["chaincodes"].items()}
            tx_ids = {_used_id(t) for t in data["tx_ids"]}
        except MalformedError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError, ChainsError) as exc:
            raise MalformedError(f"snapshot at height {self.height}: its content is not a "
                                 f"snapshot's ({type(exc).__name__}: {str(exc)[:120]})") from None
        return SnapshotContent(state, definitions, tx_ids)


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _used_id(value: object) -> str:
    text = _text(value)
    if len(text) != USED_ID_CHARS or text.strip("0123456789abcdef"):
        raise ValueError(f"a used tx id is {USED_ID_CHARS} lowercase hex characters, got "
                         f"{text[:80]!r}")
    return text


def _number(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TypeError(f"expected an int >= 0, got {value!r}"[:80])
    return value


def encode_content(height: int, block_hash: str, time: int, state: WorldState,
                   definitions: Mapping[str, ChaincodeDefinition], tx_ids: Iterable[str]) -> bytes:
    """The canonical JSON a snapshot hashes: the same state gives the same bytes anywhere."""
    return canonical_json({
        "height": height, "block_hash": block_hash, "time": time,
        "public": [[ns, key, value.hex(), version[0], version[1]]
                   for (ns, key), (value, version) in sorted(state.public.items())],
        "hashed": [[*hk, vh, version[0], version[1]]
                   for hk, (vh, version) in sorted(state.hashed.items())],
        "chaincodes": {name: d.to_dict() for name, d in sorted(definitions.items())},
        "tx_ids": sorted(tx_ids),
    }, what="snapshot")


def read_snapshot(conn: sqlite3.Connection) -> Snapshot | None:
    """The peer file's snapshot (None without one); MalformedError for a garbled row."""
    rows = conn.execute("SELECT height, block_hash, time, state_hash, body FROM snapshot"
                        ).fetchall()
    if not rows:
        return None
    if len(rows) > 1:
        raise MalformedError(f"snapshot: {len(rows)} rows, a peer file holds at most one")
    height, block_hash, time, state_hash, body = rows[0]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (height, time)) \
            or height < 1 or not all(type(v) is bytes and len(v) == 32
                                     for v in (block_hash, state_hash)) \
            or type(body) is not bytes:
        raise MalformedError("snapshot: a mistyped row")
    inflate = zlib.decompressobj()
    try:
        content = inflate.decompress(body, MAX_CONTENT_BYTES)
    except zlib.error as exc:
        raise MalformedError(f"snapshot at height {height}: its body does not decompress "
                             f"({exc})") from None
    if inflate.unconsumed_tail or not inflate.eof or inflate.unused_data:
        raise MalformedError(f"snapshot at height {height}: its body is cut short, too large "
                             "or has bytes after its end")
    return Snapshot(height, block_hash.hex(), time, state_hash.hex(), content)
