"""The ordering service's own copy of a channel's chain: every block it cut, as it signed it.

One SQLite file (`<path>/<channel>/orderer.db`, `meta.kind = 'fabric-orderer'`), one row per
block: its header, hash, orderer certificate and signature, and its envelopes as one BLOB (each
envelope preceded by its length, 4 bytes big-endian). Peers that missed blocks (a process killed mid-delivery) catch up from it,
and `chains verify` compares every peer's chain with it: an orderer that signed two different
blocks at one height (equivocation) shows as a fork between files.
"""

from __future__ import annotations

from pathlib import Path

from chains.errors import MalformedError
from chains.fabric.block import Block, BlockHeader
from chains.fabric.codec import ZERO_HASH
from chains.fabric.errors import LedgerStateError
from chains.fabric.store import block_row, open_store
from chains.sqlite_files import writing

__all__ = ["FORMAT", "KIND", "SCHEMA", "OrdererStore"]

KIND = "fabric-orderer"
FORMAT = "2"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blocks(
    number INTEGER PRIMARY KEY, header BLOB NOT NULL, hash TEXT NOT NULL, orderer BLOB NOT NULL,
    signature BLOB NOT NULL, envelopes BLOB NOT NULL);
"""


def join_envelopes(envelopes: tuple[bytes, ...]) -> bytes:
    """The envelopes as one BLOB: each preceded by its length (4 bytes, big-endian)."""
    return b"".join(len(e).to_bytes(4, "big") + e for e in envelopes)


def split_envelopes(blob: bytes) -> tuple[bytes, ...]:
    """The envelopes of a `join_envelopes` BLOB; MalformedError if the framing is broken."""
    out, at = [], 0
    while at < len(blob):
        size = int.from_bytes(blob[at:at + 4], "big")
        if at + 4 + size > len(blob) or len(blob) - at < 4:
            raise MalformedError("the envelopes of a block are cut short")
        out.append(blob[at + 4:at + 4 + size])
        at += 4 + size
    return tuple(out)


class OrdererStore:
    """The orderer's blocks of one channel (`path=None`: in memory)."""

    def __init__(self, path: str | Path | None, *, channel: str) -> None:
        self.path = None if path is None else str(path)
        self.conn = open_store(path, SCHEMA, {"kind": KIND, "format": FORMAT,
                                              "channel": channel})
        self.height, self.last_hash, self.last_time = 0, ZERO_HASH, 0
        self._check_links()

    def _check_links(self) -> None:
        """The stored blocks must form one hash chain (their signatures are the peers' and the
        verifier's business); sets height, last hash and last time."""
        for number, header, stored in self.conn.execute(
                "SELECT number, header, hash FROM blocks ORDER BY number"):
            block = self.block(number)
            if number != self.height or not isinstance(header, bytes) or block is None \
                    or block.previous_hash != self.last_hash or block.hash != stored \
                    or block.timestamp < self.last_time:
                raise LedgerStateError(f"{self.path}: block {number} does not extend the "
                                       f"orderer's chain")
            self.height, self.last_hash, self.last_time = number + 1, block.hash, block.timestamp

    def block(self, number: int) -> Block | None:
        """The stored block `number` (None if absent); LedgerStateError if its row is garbled."""
        row = self.conn.execute("SELECT header, orderer, signature, envelopes FROM blocks "
                                "WHERE number = ?", (number,)).fetchone()
        if row is None:
            return None
        try:
            if not all(type(v) is bytes for v in row):
                raise MalformedError("a column is not a BLOB")
            header, envelopes = BlockHeader.decode(row[0]), split_envelopes(row[3])
        except MalformedError as exc:
            raise LedgerStateError(f"{self.path}: block {number}: {exc}") from None
        return Block(header, envelopes, row[1], row[2])

    def append(self, block: Block) -> None:
        """Persist the next block (atomically)."""
        if block.number != self.height or block.previous_hash != self.last_hash:
            raise LedgerStateError(f"orderer block {block.number} does not extend height "
                                   f"{self.height}")
        with writing(self.path):  # one atomic row
            self.conn.execute("INSERT INTO blocks VALUES (?, ?, ?, ?, ?, ?)",
                              (*block_row(block), join_envelopes(block.envelopes)))
        self.height, self.last_hash, self.last_time = block.number + 1, block.hash, block.timestamp

    def close(self) -> None:
        self.conn.close()
