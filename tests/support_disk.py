"""A small real filesystem for disk-full tests: a tmpfs mounted for the test (root only).

``small_filesystem(folder, kib)`` mounts a tmpfs of ``kib`` KiB at ``folder`` and yields a
function that resizes it (space "comes back"); the test is skipped where mounting is not
allowed (not root, or a container without the capability).  Tests that must run everywhere
inject ``OSError(ENOSPC)`` or cap SQLite's page count instead.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def small_filesystem(folder: Path, kib: int) -> Iterator[Callable[[int], None]]:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(folder)],
                             capture_output=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")

    def resize(new_kib: int) -> None:
        subprocess.run(["mount", "-o", f"remount,size={new_kib}k", str(folder)], check=True)

    try:
        yield resize
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)
