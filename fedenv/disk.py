"""Writes that fail for want of space or on an I/O error, as one clear message.

Whatever fails (an adapter file, a ledger's SQLite commit, a checkpoint), the caller gets one
:class:`~fedenv.errors.StorageError` that says what was being written, where (the file), why
and how much space is left on that filesystem::

    cannot write the env folder: the disk is full (runs/demo/env/public.db; 0 B free of
    1.0 MiB on that filesystem)

:func:`storage_errors` turns such failures inside its block into that error; everything else
passes unchanged.  The ledgers (``chains``) raise ``LedgerStorageError``, an ``OSError`` with
``errno`` ENOSPC or EIO, so they are caught here like any file write.
"""

from __future__ import annotations

import errno
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fedenv.errors import StorageError

__all__ = ["STORAGE_ERRNOS", "free_space", "storage_error", "storage_errors"]

STORAGE_ERRNOS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EFBIG: "the file is larger than its filesystem or a size limit allows",
    errno.EIO: "an I/O error",
    errno.EROFS: "the filesystem is read-only",
}


def _size(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def free_space(path: str | Path) -> str:
    """``"12.0 KiB free of 1.0 MiB"`` for the filesystem holding ``path`` (or its nearest
    existing parent); ``"free space unknown"`` where it cannot be read."""
    where = Path(path).absolute()
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        usage = shutil.disk_usage(where)
    except OSError:
        return "free space unknown"
    return f"{_size(usage.free)} free of {_size(usage.total)}"


def storage_error(exc: BaseException, what: str, where: str | Path) -> StorageError | None:
    """``exc`` as a :class:`StorageError` when it is a write that failed for want of space or
    on an I/O error (``what`` was being written into ``where``), else None."""
    if isinstance(exc, StorageError):
        return exc
    if not isinstance(exc, OSError) or exc.errno not in STORAGE_ERRNOS:
        return None
    file = str(exc.filename or where)
    message = (f"cannot write {what}: {STORAGE_ERRNOS[exc.errno]} ({file}; "
               f"{free_space(file)} on that filesystem)")
    return StorageError(exc.errno, message, file)


@contextmanager
def storage_errors(what: str, where: str | Path) -> Iterator[None]:
    """Inside this block, a write that fails for want of space or on an I/O error raises
    :class:`StorageError` (see :func:`storage_error`)."""
    try:
        yield
    except OSError as exc:
        failure = storage_error(exc, what, where)
        if failure is None or failure is exc:
            raise
        raise failure from exc
