"""Reading a SQLite write-ahead log (`<file>-wal`) without SQLite: what it commits, what trails.

A WAL (https://www.sqlite.org/fileformat2.html#the_write_ahead_log) is a 32-byte header and
frames of a 24-byte header plus one page. A frame belongs to the log's current generation when
its salts equal the header's and its cumulative checksum holds; a *commit* frame (non-zero
"database size" field) ends a transaction. SQLite uses the frames up to the last valid commit
frame and ignores the rest, so what it finds after that commit is a transaction the writer began
and never finished: a process killed, or a disk that filled up, while it wrote a block. That is
not damage (the ledger is whole up to its last commit), and :func:`scan_wal` reports it apart
from the pages the log does commit, which the main file may not hold yet (a checkpoint that
could not extend the file on a full disk leaves the file shorter than its header says).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["WalState", "scan_wal"]

_MAGIC = {0x377F0682: "<", 0x377F0683: ">"}  # checksum words little- or big-endian
_HEADER, _FRAME_HEADER = 32, 24
_MAX_PAGE = 65536


@dataclass
class WalState:
    """What a WAL holds: `db_pages` is the database size (pages) after its last valid commit
    (0: no commit), `committed` the page numbers its committed frames carry, `trailing` how many
    frames of the current generation follow the last commit (an unfinished transaction; a torn
    last frame counts)."""

    page_size: int = 0
    db_pages: int = 0
    committed: set[int] = field(default_factory=set)
    trailing: int = 0

    @property
    def unfinished(self) -> bool:
        return self.trailing > 0


def _checksum(data: bytes, order: str, s0: int, s1: int) -> tuple[int, int]:
    words = struct.unpack(f"{order}{len(data) // 4}I", data)
    for i in range(0, len(words), 2):
        s0 = (s0 + words[i] + s1) & 0xFFFFFFFF
        s1 = (s1 + words[i + 1] + s0) & 0xFFFFFFFF
    return s0, s1


def scan_wal(path: str | Path, *, max_bytes: int = 1 << 34) -> WalState | None:
    """The state of the WAL at `path` (opened without following links), or None when there is
    none, it is empty, or its header is not a valid WAL header (SQLite ignores such a log)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
                     | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as wal:
        header = wal.read(_HEADER)
        if len(header) < _HEADER:
            return None
        magic, version, page_size, _, salt1, salt2, c0, c1 = struct.unpack(">8I", header)
        order = _MAGIC.get(magic)
        if order is None or version != 3007000 or page_size < 512 or page_size > _MAX_PAGE \
                or page_size & (page_size - 1):
            return None
        s0, s1 = _checksum(header[:24], order, 0, 0)
        if (s0, s1) != (c0, c1):
            return None
        state, pending, read = WalState(page_size), set(), _HEADER
        while read < max_bytes:
            frame = wal.read(_FRAME_HEADER + page_size)
            if not frame:
                break
            read += len(frame)
            page, db_size, f1, f2, k0, k1 = struct.unpack(">6I", frame[:_FRAME_HEADER])
            if (f1, f2) != (salt1, salt2):
                break  # an older generation's frame: the current log ends before it
            if len(frame) < _FRAME_HEADER + page_size:
                state.trailing += 1  # torn: the writer stopped inside this frame
                break
            t0, t1 = _checksum(frame[:8], order, s0, s1)
            t0, t1 = _checksum(frame[_FRAME_HEADER:], order, t0, t1)
            if (t0, t1) != (k0, k1):
                state.trailing += 1  # written in part, or overwritten in part
                break
            s0, s1 = t0, t1
            pending.add(page)
            state.trailing += 1
            if db_size:
                state.committed |= pending
                state.db_pages, state.trailing, pending = db_size, 0, set()
        return state
