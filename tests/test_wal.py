"""chains.wal on logs SQLite itself wrote: committed pages, and a transaction left unfinished."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

from chains.sqlite_files import truncation, unfinished_write
from chains.wal import scan_wal


def _database(folder: Path, rows: int = 5) -> sqlite3.Connection:
    """A WAL database whose writes stay in the log (no checkpoint), still open."""
    conn = sqlite3.connect(folder / "a.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("CREATE TABLE t(x BLOB)")
    for _ in range(rows):
        conn.execute("INSERT INTO t VALUES (?)", (os.urandom(3000),))
    return conn


def _snapshot(folder: Path, name: str) -> Path:
    """Copies of a.db and a.db-wal as they are on disk now (as a crash would leave them)."""
    target = folder / name
    target.mkdir()
    for suffix in ("", "-wal"):
        shutil.copy(folder / f"a.db{suffix}", target / f"a.db{suffix}")
    return target / "a.db"


def test_committed_pages_and_database_size(tmp_path: Path) -> None:
    conn = _database(tmp_path)
    state = scan_wal(tmp_path / "a.db-wal")
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    assert state is not None and state.page_size == 4096
    assert state.db_pages == pages and state.committed == set(range(1, pages + 1))
    assert not state.unfinished and unfinished_write(tmp_path / "a.db") is None
    conn.close()  # checkpointed and removed: no log, nothing to say
    assert scan_wal(tmp_path / "a.db-wal") is None


def test_an_unfinished_transaction_is_told_apart(tmp_path: Path) -> None:
    conn = _database(tmp_path)
    conn.execute("PRAGMA cache_size=1")  # SQLite spills the open transaction into the log
    conn.execute("BEGIN")
    for _ in range(40):
        conn.execute("INSERT INTO t VALUES (?)", (os.urandom(3000),))
    copy = _snapshot(tmp_path, "crashed")  # the writer stops here: killed, or the disk is full
    conn.execute("ROLLBACK")
    state = scan_wal(f"{copy}-wal")
    assert state is not None and state.trailing > 30 and state.db_pages > 1
    assert "incomplete last block" in (unfinished_write(copy) or "")
    assert truncation(copy) is None
    reopened = sqlite3.connect(copy)  # SQLite agrees: the 5 committed rows, no damage
    assert reopened.execute("SELECT count(*) FROM t").fetchone() == (5,)
    assert reopened.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    reopened.close()


def test_pages_the_log_holds_are_not_missing(tmp_path: Path) -> None:
    """A checkpoint that could not grow the file (a full disk) leaves its header ahead of its
    size; the pages are in the log, so the file is not truncated, until the log is gone."""
    conn = _database(tmp_path)
    copy = _snapshot(tmp_path, "full")
    conn.close()
    state = scan_wal(f"{copy}-wal")
    assert state is not None and os.path.getsize(copy) < state.db_pages * state.page_size
    with open(copy, "r+b") as f:  # the header says what the checkpoint wrote into page 1
        header = bytearray(f.read(100))
        header[28:32] = state.db_pages.to_bytes(4, "big")
        header[92:96] = header[24:28]
        f.seek(0)
        f.write(header)
    assert truncation(copy) is None
    os.unlink(f"{copy}-wal")
    assert "pages missing" in (truncation(copy) or "")


def test_what_is_not_a_log(tmp_path: Path) -> None:
    for name, data in {"empty": b"", "short": b"\x37\x7f\x06\x82", "garbage": os.urandom(5000),
                       "bad-version": (0x377F0682).to_bytes(4, "big") + bytes(28)}.items():
        (tmp_path / name).write_bytes(data)
        assert scan_wal(tmp_path / name) is None
    assert scan_wal(tmp_path / "absent") is None
    (tmp_path / "link").symlink_to(tmp_path / "garbage")
    assert scan_wal(tmp_path / "link") is None
