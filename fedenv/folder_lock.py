"""One writer per folder: an exclusive lock, held for the life of the process that writes it.

    lock = FolderLock("runs/demo/env", purpose="env folder")
    lock.acquire()            # FolderBusyError if another writer holds it, naming that writer
    ...                       # write the folder
    lock.release()            # or: with FolderLock(...): ...

The lock is ``fcntl.flock`` on ``<folder>/.fedenv.lock``.  The kernel drops it when its holder
exits, however it exits (``kill -9`` included), so the next writer simply takes it.  A flock
belongs to an open file, not to a process: a second lock on the same folder fails even inside
the holder's own process, so an env and a copy of it (pickled, or built twice) never write one
folder together.  The file holds the holder's record (JSON: PID, host, command line, start time
of the lock and of the process), which the refused writer prints::

    runs/demo/env is in use by PID 4242 on host vm since 2025-12-01 03:39:00 UTC (python
    train_agents.py --run-name demo); one writer per env folder: wait for it to finish, or use
    another folder

Where flock is not available (no ``fcntl``, or a filesystem that refuses it with ENOLCK,
EOPNOTSUPP or ENOSYS), the record alone is the lock: created with ``O_EXCL``, removed on
release.  A record left behind by a writer that is gone is detected by its PID: on this host,
no such process, or a process that started later than the record's (the PID was reused) makes
it stale, and it is taken over; a record from another host cannot be checked and is respected
(the error names it, so its owner can remove it).  The lock file is never removed in flock mode
(removing a flocked file lets two writers lock two different files).
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedenv.errors import FolderBusyError

if TYPE_CHECKING:
    from typing_extensions import Self

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_FILE", "FolderLock", "holder_record", "process_start"]

LOCK_FILE = ".fedenv.lock"
_MAX_RECORD = 4096
_NO_FLOCK = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def process_start(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, Linux ``/proc``), or None when
    unknown; two processes that share a PID one after the other differ here."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rpartition(")")[2].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def holder_record(purpose: str) -> dict[str, Any]:
    """This process as a lock holder."""
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": " ".join([Path(sys.executable).name, *sys.argv])[:1000],
        "since": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "process_start": process_start(os.getpid()),
        "purpose": purpose,
    }


def _read_record(path: Path) -> dict[str, Any] | None:
    """The holder's record in ``path`` (None: absent, empty or unreadable)."""
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _CLOEXEC)
    except OSError:
        return None
    try:
        data = os.read(fd, _MAX_RECORD)
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        record = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _gone(record: dict[str, Any]) -> bool:
    """Whether the writer of ``record`` has certainly exited (this host only)."""
    pid, started = record.get("pid"), record.get("process_start")
    if record.get("host") != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    now = process_start(pid)
    return isinstance(started, int) and now is not None and now != started


def _message(folder: Path, purpose: str, record: dict[str, Any] | None) -> str:
    if not record:
        holder = "another writer (its record is not written yet: it is starting)"
    elif record.get("pid") == os.getpid() and record.get("host") == socket.gethostname():
        return (f"{folder} is already open in this process (since {record.get('since')}): an "
                f"env, or a copy of one, holds it; close that one first, or give this one its "
                f"own folder")
    else:
        command = str(record.get("command"))
        command = command if len(command) <= 300 else command[:300] + "..."
        holder = (f"PID {record.get('pid')} on host {record.get('host')} since "
                  f"{record.get('since')} ({command})")
    return (f"{folder} is in use by {holder}; one writer per {purpose}: wait for it to finish, "
            f"or use another folder")


class FolderLock:
    """The exclusive write lock of one folder (see the module docstring)."""

    def __init__(self, folder: str | Path, *, purpose: str = "folder") -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self.purpose = purpose
        self._fd: int | None = None
        self._flock = False
        self._finalizer: weakref.finalize | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> Self:
        """Take the lock (the folder must exist); FolderBusyError when another writer has it."""
        if self._fd is not None:
            return self
        fd = self._flocked()
        self._flock = fd is not None
        if fd is None:
            fd = self._exclusive_record()
        try:
            self._write_record(fd)
        except BaseException:
            os.close(fd)
            if not self._flock:
                self.path.unlink(missing_ok=True)
            raise
        self._fd = fd
        self._finalizer = weakref.finalize(self, _close_quietly, fd)
        return self

    def release(self) -> None:
        """Give the lock up (its record is cleared; in record-only mode the file is removed)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        if self._finalizer is not None:
            self._finalizer.detach()
        try:
            if self._flock:
                os.ftruncate(fd, 0)
            else:
                self.path.unlink(missing_ok=True)
        except OSError:
            pass  # a full disk cannot stop a release: the kernel drops the flock below
        finally:
            os.close(fd)

    def __enter__(self) -> Self:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    # --- the two modes ---------------------------------------------------------------------
    def _flocked(self) -> int | None:
        """The lock file, flocked; None where flock is not available; FolderBusyError if held."""
        if fcntl is None:
            return None
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | _NOFOLLOW | _CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            os.close(fd)
            raise self._busy(_read_record(self.path)) from None
        except OSError as exc:
            os.close(fd)
            if exc.errno in _NO_FLOCK:
                return None
            raise

    def _exclusive_record(self) -> int:
        """Record-only mode: create the record file exclusively, taking over a stale one."""
        for _ in range(3):
            try:
                return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | _NOFOLLOW
                               | _CLOEXEC, 0o644)
            except FileExistsError:
                record = _read_record(self.path)
                if record and not _gone(record):
                    raise self._busy(record) from None
                if _read_record(self.path) == record:  # still the stale (or empty) record
                    self.path.unlink(missing_ok=True)
        raise self._busy(_read_record(self.path))

    def _write_record(self, fd: int) -> None:
        data = json.dumps(holder_record(self.purpose), sort_keys=True).encode()
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))

    def _busy(self, record: dict[str, Any] | None) -> FolderBusyError:
        return FolderBusyError(self.folder, record, _message(self.folder, self.purpose, record))


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass
