"""Reading and rewriting the packed blocks of a channel file, as a tamperer who knows the format
would (`chains.fabric.packing`): tests change what a block holds, then expect verify to name it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from chains.fabric.block import Block
from chains.fabric.packing import BLOCK_COLUMNS, BlockPacking


def execute(path: Path, sql: str, *params: object) -> None:
    """Run one SQL statement on the file `path` and commit it."""
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(sql, params)
    conn.close()


def stored_block(path: Path, number: int) -> Block:
    """Block `number` of the channel or orderer file `path`, as stored."""
    conn = sqlite3.connect(path)
    try:
        row = conn.execute(f"SELECT {BLOCK_COLUMNS} FROM blocks WHERE number = ?",
                           (number,)).fetchone()
        return BlockPacking.of(conn).unpack(row)
    finally:
        conn.close()


def repack(path: Path, number: int, *, header: bytes | None = None,
           envelopes: dict[int, bytes] | None = None) -> None:
    """Rewrite block `number`'s stored body with another header or other envelopes (by index),
    packed with the row's own dictionary, as the writer packs it."""
    block = stored_block(path, number)
    conn = sqlite3.connect(path)
    with conn:
        (size,) = conn.execute("SELECT dictionary FROM blocks WHERE number = ?",
                               (number,)).fetchone()
        parts = [(envelopes or {}).get(i, e) for i, e in enumerate(block.envelopes)]
        body = BlockPacking.of(conn).body(header or block.header_bytes, parts, size, number)
        conn.execute("UPDATE blocks SET body = ? WHERE number = ?", (body, number))
    conn.close()
