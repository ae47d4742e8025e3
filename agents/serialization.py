"""Atomic, safe persistence of agent and checkpoint state.

State is a tree of dicts, lists and tuples whose leaves are tensors, python scalars or strings.
Files are written with ``torch.save`` to a temporary file in the same folder, fsynced, then moved
into place with ``os.replace``: a reader (or a resumed run) sees the old file or the new one,
never a torn one. They are read back with ``torch.load(weights_only=True)``: loading never runs
code from the file.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

FILE_MODE = 0o644  # mkstemp creates 0600 files; run folders are meant to be shared and read


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file + fsync + os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_save(state: Any, path: str | Path) -> None:
    """``torch.save`` ``state`` to ``path`` atomically."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_state(path: str | Path) -> Any:
    """Read a file written by :func:`atomic_save` (tensors and plain python values only)."""
    return torch.load(Path(path), map_location="cpu", weights_only=True)
