"""Opening ledger files without trusting them: exact schemas, read-only snapshots, bounds.

Writers (`chains.store`, `chains.fabric.store`) create their schema from a script and, when they
reopen a file, require its schema to be exactly what that script creates (`check_schema`): no
view, no trigger, no extra or altered table can run code on their behalf.

Verifiers open a file with `open_readonly`, which never writes and never follows a link: the file
(and any `-wal` / `-journal` beside it) must be a regular file within the size bound. A file with
no journal content is opened with SQLite's `immutable=1` (no locks, no `-shm`, nothing created).
One with journal content (a writer is running, or crashed) is copied into a private temporary
folder first and SQLite recovers the copy; the originals are only read. Every connection gets a
deadline (SQLite's progress handler interrupts past it), a cap on the size of any value it
returns, `trusted_schema=OFF` and `query_only=ON`.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import shutil
import sqlite3
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from chains.errors import LedgerStorageError, MalformedError
from chains.report import VerifyLimits
from chains.wal import scan_wal

__all__ = ["MAX_VALUE_BYTES", "PAGE_SIZE", "UnsafeFile", "check_schema", "harden",
           "open_readonly", "rollback", "set_page_size", "storage_failure", "truncation",
           "unfinished_write", "writing"]

MAX_VALUE_BYTES = 32 << 20  # no stored value is bigger: a longer one is refused by SQLite
PAGE_SIZE = 16384
"""The page size of every ledger file a writer creates.  A B-tree leaf holds whole rows only,
so a page is left as full as the rows that fit: channel blocks are rows of 0.5-2.3 KB, which
filled SQLite's default 4 KiB pages to 79% (a run folder grew by 3.2 KB of pages per default
step for 2.5 KB of blocks); 16 KiB pages hold 7-30 of them and fill to about 97%
(docs/run_folders.md "Growth per step").  A file keeps the size it was created with; readers
take it from the file's header, so files of any size open."""
_JOURNALS = ("-wal", "-journal")


class UnsafeFile(Exception):
    """A file that verification refuses to open; `reason` is a verify reason code."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}")


@functools.cache
def _expected(script: str) -> frozenset[tuple[str, str, str, str | None]]:
    conn = sqlite3.connect(":memory:")
    try:
        conn.executescript(script)
        return frozenset(conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master"))
    finally:
        conn.close()


def check_schema(conn: sqlite3.Connection, script: str) -> str | None:
    """None when the file's schema is exactly what `script` creates, else what differs."""
    found = frozenset(conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master"))
    expected = _expected(script)
    if found == expected:
        return None
    odd = sorted(f"{t} {n!r}" for t, n, _, _ in found - expected)
    lacking = sorted(f"{t} {n!r}" for t, n, _, _ in expected - found)
    return (f"schema differs from the ledger format: unexpected or altered {odd}"
            if odd else "") + (f"; missing {lacking}" if lacking else "")


_FULL = ("SQLITE_FULL",)
_IO = ("SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_READONLY")


def storage_failure(exc: BaseException, path: str | Path | None) -> LedgerStorageError | None:
    """`exc` as a `LedgerStorageError` naming `path` when it is a write that failed for want of
    space (ENOSPC) or on an I/O error (EIO, or the system's errno), else None."""
    if isinstance(exc, LedgerStorageError):
        return exc
    if isinstance(exc, sqlite3.OperationalError):
        name = getattr(exc, "sqlite_errorname", "") or ""
        if name.startswith(_FULL) or "disk is full" in str(exc):
            return LedgerStorageError(errno.ENOSPC, f"disk full ({exc})", str(path))
        if name.startswith(_IO):
            return LedgerStorageError(errno.EIO, f"I/O error ({exc})", str(path))
        return None
    if isinstance(exc, OSError):
        return LedgerStorageError(exc.errno or errno.EIO, exc.strerror or str(exc), str(path))
    return None


@contextlib.contextmanager
def writing(path: str | Path | None) -> Iterator[None]:
    """Writes to the ledger file `path` inside this block that fail for want of space or on an
    I/O error raise `LedgerStorageError` (ENOSPC / EIO, naming the file) instead of SQLite's
    bare OperationalError or the system's OSError; every other error passes unchanged."""
    try:
        yield
    except (sqlite3.OperationalError, OSError) as exc:
        failure = storage_failure(exc, path)
        if failure is None or failure is exc:
            raise
        raise failure from exc


def rollback(conn: sqlite3.Connection) -> None:
    """Undo the open transaction, if SQLite has not undone it already (it does on a full disk
    or an I/O error, after which ROLLBACK itself would fail and hide the real error)."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _strict_text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedError(f"a stored text value is not UTF-8 ({exc.reason} at byte "
                             f"{exc.start})") from None


def harden(conn: sqlite3.Connection, *, deadline: float | None = None,
           read_only: bool = False) -> sqlite3.Connection:
    """Bound what a connection to an untrusted file can do (see the module doc); text that is
    not UTF-8 reads as a MalformedError."""
    conn.text_factory = _strict_text
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
    conn.execute("PRAGMA trusted_schema=OFF")
    if read_only:
        conn.execute("PRAGMA query_only=ON")
    if deadline is not None:
        conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 20_000)
    return conn


def set_page_size(conn: sqlite3.Connection) -> None:
    """Give a new, empty file `PAGE_SIZE` pages (before its journal mode or first table: SQLite
    fixes the size then); a file that has any page already keeps its own."""
    conn.execute(f"PRAGMA page_size={PAGE_SIZE}")


def truncation(path: str | Path) -> str | None:
    """Why the file is shorter than its database is (a truncated copy), or None.

    The size is the SQLite header's page count, or the last commit's in a write-ahead log
    beside the file (`<path>-wal`, see `chains.wal`): pages past the file's end that the log
    commits are not missing (a checkpoint that could not grow the file on a full disk leaves
    them there), the others are."""
    with open(path, "rb") as f:
        header = f.read(100)
    if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
        return None  # not SQLite at all: sqlite3 itself says so
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        return None  # not a valid header: sqlite3 itself says so
    pages = int.from_bytes(header[28:32], "big") if header[24:28] == header[92:96] else 0
    actual = os.stat(path).st_size
    held, logged = actual // page_size, set()
    wal = scan_wal(f"{path}-wal")
    if wal is not None and wal.db_pages:
        pages, logged = wal.db_pages, wal.committed
    missing = max(0, pages - held) - sum(1 for n in logged if held < n <= pages)
    if missing > 0:
        return (f"the file has {actual} bytes, its database {pages * page_size} "
                f"({missing} pages missing from the file and its log)")
    return None


def unfinished_write(path: str | Path) -> str | None:
    """A note when the file's write-ahead log ends in a transaction its writer never finished
    (SQLite ignores it: the ledger is whole up to its last committed block), else None."""
    wal = scan_wal(f"{path}-wal")
    if wal is None or not wal.unfinished:
        return None
    return (f"incomplete last block: the write-ahead log ends in {wal.trailing} frame(s) of a "
            f"transaction that was never committed (its writer was stopped, or the disk filled, "
            f"while it wrote a block); SQLite ignores them, and every committed block is whole")


def _regular(path: Path, what: str, limit: int) -> os.stat_result | None:
    """lstat of a regular file within `limit` bytes; None if absent; UnsafeFile otherwise."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise UnsafeFile("unreadable", f"{what}: {exc}") from None
    if stat.S_ISLNK(info.st_mode):
        raise UnsafeFile("link", f"{what} is a symbolic link; verify does not follow links")
    if not stat.S_ISREG(info.st_mode):
        raise UnsafeFile("not-a-file", f"{what} is not a regular file")
    if info.st_size > limit:
        raise UnsafeFile("too-large", f"{what} has {info.st_size} bytes; the limit is {limit}")
    return info


def _copy(source: Path, target: Path, limit: int) -> None:
    fd = os.open(source, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    copied = 0
    with os.fdopen(fd, "rb") as src, open(target, "wb") as dst:
        while chunk := src.read(1 << 20):
            copied += len(chunk)
            if copied > limit:
                raise UnsafeFile("too-large", f"{source.name} grew beyond {limit} bytes")
            dst.write(chunk)


@contextlib.contextmanager
def open_readonly(path: Path, limits: VerifyLimits,
                  notes: list[str] | None = None) -> Iterator[sqlite3.Connection]:
    """A read-only, bounded connection to the ledger file `path` (see the module doc).

    Raises UnsafeFile for a link, a non-regular, oversized or truncated file (`truncation`,
    judged on the file as SQLite recovers it); sqlite3.DatabaseError for a file SQLite cannot
    read. A write-ahead log that ends in an unfinished transaction is not a problem: its note
    (`unfinished_write`) goes to `notes`.
    """
    info = _regular(path, path.name, limits.max_ledger_bytes)
    if info is None:
        raise UnsafeFile("missing", "no such file")
    journals = {s: _regular(Path(f"{path}{s}"), f"{path.name}{s}", limits.max_ledger_bytes)
                for s in _JOURNALS}
    deadline = time.monotonic() + limits.max_seconds
    if not any(j is not None and j.st_size > 0 for j in journals.values()):
        _refuse_truncated(path)
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro&immutable=1", uri=True)
        try:
            yield harden(conn, deadline=deadline, read_only=True)
        finally:
            conn.close()
        return
    folder = Path(tempfile.mkdtemp(prefix="chains-verify-"))
    try:
        copy = folder / "ledger.db"
        _copy(path, copy, limits.max_ledger_bytes)
        for suffix, found in journals.items():
            if found is not None:
                _copy(Path(f"{path}{suffix}"), Path(f"{copy}{suffix}"), limits.max_ledger_bytes)
        conn = sqlite3.connect(str(copy))  # SQLite recovers the private copy, never the file
        try:
            harden(conn, deadline=deadline)
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            conn.execute("PRAGMA query_only=ON")
            _refuse_truncated(copy)
            note = unfinished_write(copy)
            if note is not None and notes is not None:
                notes.append(note)
            yield conn
        finally:
            conn.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _refuse_truncated(path: Path) -> None:
    problem = truncation(path)
    if problem:
        raise UnsafeFile("truncated", problem)
