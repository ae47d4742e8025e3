"""fedenv.disk: a write that fails for want of space is one message: what, where, how much room."""

from __future__ import annotations

import errno

import pytest

from chains.errors import LedgerStorageError
from fedenv.disk import free_space, storage_error, storage_errors
from fedenv.errors import StorageError


def test_a_full_disk_names_what_where_and_the_space_left(tmp_path):
    target = tmp_path / "adapters" / "e00001" / "r0000" / "bank.safetensors"
    with pytest.raises(StorageError) as failure, storage_errors("the env folder", tmp_path):
        raise OSError(errno.ENOSPC, "No space left on device", str(target))
    message = str(failure.value)
    assert message.startswith("cannot write the env folder: the disk is full (")
    assert str(target) in message and " free of " in message
    assert failure.value.errno == errno.ENOSPC and failure.value.filename == str(target)
    assert isinstance(failure.value, OSError)  # callers that catch OSError still do


def test_a_ledgers_storage_error_reads_the_same(tmp_path):
    ledger = LedgerStorageError(errno.ENOSPC, "disk full (database or disk is full)",
                                str(tmp_path / "public.db"))
    failure = storage_error(ledger, "the env folder", tmp_path)
    assert failure is not None and "public.db" in str(failure) and "disk is full" in str(failure)
    io = storage_error(LedgerStorageError(errno.EIO, "I/O error", "x.db"), "it", tmp_path)
    assert io is not None and "an I/O error (x.db;" in str(io)


def test_other_errors_pass_unchanged(tmp_path):
    for error in (FileNotFoundError(errno.ENOENT, "missing"), PermissionError(errno.EACCES, "no"),
                  ValueError("not an OSError")):
        assert storage_error(error, "it", tmp_path) is None
        with pytest.raises(type(error)), storage_errors("it", tmp_path):
            raise error


def test_free_space_of_a_path_not_made_yet(tmp_path):
    text = free_space(tmp_path / "not" / "made" / "yet")  # its nearest existing parent's
    assert " free of " in text and text.endswith(("B", "KiB", "MiB", "GiB", "TiB"))
