"""fedenv.folder_lock: one writer per folder, across processes and inside one, kill -9 included."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from fedenv import folder_lock
from fedenv.errors import FolderBusyError
from fedenv.folder_lock import LOCK_FILE, FolderLock, process_start

ROOT = Path(__file__).resolve().parent.parent


def _holder(folder: Path) -> subprocess.Popen:
    """Another process that takes the folder's lock and keeps it until killed."""
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from fedenv.folder_lock import FolderLock
        lock = FolderLock({str(folder)!r}, purpose="env folder").acquire()
        print("held", flush=True)
        time.sleep(600)
    """)
    child = subprocess.Popen([sys.executable, "-c", script, "--holder-flag"],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "held"
    return child


def test_a_second_writer_is_refused_and_told_who_holds_it(tmp_path):
    child = _holder(tmp_path)
    try:
        with pytest.raises(FolderBusyError) as busy:
            FolderLock(tmp_path, purpose="env folder").acquire()
        message = str(busy.value)
        assert f"PID {child.pid} on host {socket.gethostname()}" in message
        assert "--holder-flag" in message and "one writer per env folder" in message
        assert busy.value.holder["pid"] == child.pid and busy.value.folder == str(tmp_path)
    finally:
        child.kill()
        child.wait()


def test_a_killed_holders_lock_is_taken_over(tmp_path):
    child = _holder(tmp_path)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    stale = json.loads((tmp_path / LOCK_FILE).read_text())
    assert stale["pid"] == child.pid  # its record is still there; the kernel dropped the flock
    with FolderLock(tmp_path) as lock:
        assert lock.held
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert (tmp_path / LOCK_FILE).read_text() == ""  # released: the record is cleared


def test_one_process_cannot_take_its_own_lock_twice(tmp_path):
    """An env and a copy of it in one process: flock belongs to the open file, not the PID."""
    first = FolderLock(tmp_path).acquire()
    with pytest.raises(FolderBusyError, match="already open in this process"):
        FolderLock(tmp_path).acquire()
    first.release()
    FolderLock(tmp_path).acquire().release()


def test_without_flock_a_record_is_the_lock_and_stale_ones_go_by_pid(tmp_path, monkeypatch):
    def no_flock(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(folder_lock.fcntl, "flock", no_flock)
    record = tmp_path / LOCK_FILE
    with FolderLock(tmp_path):
        assert json.loads(record.read_text())["pid"] == os.getpid()
        with pytest.raises(FolderBusyError, match="already open in this process"):
            FolderLock(tmp_path).acquire()
    assert not record.exists()  # record-only mode removes its file on release

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead = {"pid": int(gone.stdout), "host": socket.gethostname(), "since": "then",
            "command": "killed", "process_start": 1}
    reused = {**dead, "pid": os.getppid(), "process_start": -1}  # alive, but started later
    for stale in (dead, reused):
        record.write_text(json.dumps(stale))
        with FolderLock(tmp_path):
            assert json.loads(record.read_text())["pid"] == os.getpid()

    elsewhere = {**dead, "host": "another-host", "pid": 4242}
    record.write_text(json.dumps(elsewhere))
    with pytest.raises(FolderBusyError, match="PID 4242 on host another-host"):
        FolderLock(tmp_path).acquire()  # cannot be checked from here: respected
    assert json.loads(record.read_text()) == elsewhere


def test_process_start_tells_processes_apart():
    assert process_start(os.getpid()) == process_start(os.getpid())
    if process_start(os.getpid()) is None:
        pytest.skip("no /proc here")
    assert process_start(1) != process_start(os.getpid())
    started = time.monotonic()
    assert process_start(2**22 + 12345) is None and time.monotonic() - started < 1
