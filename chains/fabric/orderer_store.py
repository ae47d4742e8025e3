"""The ordering service's own copy of a channel's chain: every block it cut, as it signed it.

One SQLite file (`<path>/<channel>/orderer.db`, `meta.kind = 'fabric-orderer'`), one row per
block, packed as in the peers' files (`chains.fabric.packing`: header and envelopes in one
compressed body, the orderer's certificate by reference). Peers that missed blocks (a process
killed mid-delivery) catch up from it, and `chains verify` compares every peer's chain with it:
an orderer that signed two different blocks at one height (equivocation) shows as a fork
between files.
"""

from __future__ import annotations

from pathlib import Path

from chains.errors import MalformedError
from chains.fabric.block import Block
from chains.fabric.codec import ZERO_HASH
from chains.fabric.errors import LedgerStateError
from chains.fabric.packing import BLOCK_COLUMNS, BlockPacking
from chains.fabric.store import BLOCK_SCHEMA, open_store
from chains.sqlite_files import rollback, writing

__all__ = ["FORMAT", "KIND", "SCHEMA", "OrdererStore"]

KIND = "fabric-orderer"
# 3: blocks stored packed (chains.fabric.packing). 4: envelopes stored without the fields a
# reader derives (tx_id, proposal hash); format 3 is refused. 5: headers without their data
# hash, the chain id in the dictionary of blocks 1, 2, ..., a write that repeats an argument
# stored as a reference to it (chains.fabric.packing); format 4 is refused. 6: no `hash`
# column (a reader hashes the header it unpacks); format 5 is refused. The orderer keeps every
# block.
FORMAT = "6"
SCHEMA = BLOCK_SCHEMA


class OrdererStore:
    """The orderer's blocks of one channel (`path=None`: in memory)."""

    def __init__(self, path: str | Path | None, *, channel: str) -> None:
        self.path = None if path is None else str(path)
        self.conn = open_store(path, SCHEMA, {"kind": KIND, "format": FORMAT,
                                              "channel": channel})
        try:
            self.packing = BlockPacking.of(self.conn)
        except MalformedError as exc:
            self.conn.close()
            raise LedgerStateError(f"{self.path}: {exc}") from None
        self.height, self.last_hash, self.last_time = 0, ZERO_HASH, 0
        self._check_links()

    def _check_links(self) -> None:
        """The stored blocks must form one hash chain (their signatures are the peers' and the
        verifier's business); sets height, last hash and last time."""
        for (number,) in self.conn.execute("SELECT number FROM blocks ORDER BY number"):
            block = self.block(number)
            if number != self.height or block is None \
                    or block.previous_hash != self.last_hash \
                    or block.timestamp < self.last_time:
                raise LedgerStateError(f"{self.path}: block {number} does not extend the "
                                       f"orderer's chain")
            self.height, self.last_hash, self.last_time = number + 1, block.hash, block.timestamp

    def block(self, number: int) -> Block | None:
        """The stored block `number` (None if absent); LedgerStateError if its row is
        garbled."""
        row = self.conn.execute(f"SELECT {BLOCK_COLUMNS} FROM blocks WHERE number = ?",
                                (number,)).fetchone()
        if row is None:
            return None
        try:
            block = self.packing.unpack(row)
        except MalformedError as exc:
            raise LedgerStateError(f"{self.path}: {exc}") from None
        return block

    def append(self, block: Block) -> None:
        """Persist the next block (atomically)."""
        if block.number != self.height or block.previous_hash != self.last_hash:
            raise LedgerStateError(f"orderer block {block.number} does not extend height "
                                   f"{self.height}")
        packed, certificates = self.packing.pack(block)
        with writing(self.path):  # one atomic transaction
            self._write(packed, certificates)
        self.packing.accept(certificates)
        self.height, self.last_hash, self.last_time = block.number + 1, block.hash, block.timestamp

    def _write(self, packed: tuple, certificates: list) -> None:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany("INSERT INTO certificates VALUES (?, ?)", certificates)
            conn.execute(f"INSERT INTO blocks({BLOCK_COLUMNS}) VALUES (?, ?, ?, ?, ?)", packed)
            conn.execute("COMMIT")
        except BaseException:
            rollback(conn)
            raise

    def close(self) -> None:
        self.conn.close()
