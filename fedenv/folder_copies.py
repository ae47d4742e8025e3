"""Copies of a run folder's files, for copies of a live env (pickle, ``copy.deepcopy``).

A run folder belongs to one env (:mod:`fedenv.run_folder`), so a copy of an env never opens its
original's folder: it carries the folder's files (:func:`folder_files`) and writes them into a
folder of its own (:func:`write_files`), whose ledgers then continue from the same heights.
What is copied: SQLite databases (the ledgers; read through SQLite's backup API, so what a
write-ahead log holds is included and the copy is consistent), JSON files (the resolved config)
and adapter files; nothing else (SQLite's side files, lock files).  A copy of an env with a
named folder ``runs/x`` gets the first free ``runs/x.copy-<n>`` (:func:`copy_destination`,
created atomically, so copies made at the same time in several processes never share one).
"""

from __future__ import annotations

import re
import sqlite3
import tempfile
from collections.abc import Mapping
from pathlib import Path

from fedenv.errors import ConfigError

COPIED_SUFFIXES = (".db", ".json", ".safetensors")
_COPY_SUFFIX = re.compile(r"\.copy-\d+$")


def folder_files(folder: str | Path) -> dict[str, bytes]:
    """Every copied file under ``folder``: relative POSIX path -> bytes, in path order."""
    folder = Path(folder)
    files = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.suffix not in COPIED_SUFFIXES:
            continue
        relative = path.relative_to(folder).as_posix()
        files[relative] = _database_bytes(path) if path.suffix == ".db" else path.read_bytes()
    return files


def write_files(folder: str | Path, files: Mapping[str, bytes]) -> None:
    """Write ``files`` (from :func:`folder_files`) into ``folder``, which must hold none of them."""
    folder = Path(folder)
    present = [relative for relative in files if (folder / relative).exists()]
    if present:  # checked before anything is written
        raise ConfigError(
            "run_dir", f"a copy's folder already holds {present[0]}; use a new folder", folder
        )
    for relative, data in files.items():
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def copy_destination(original: str | Path) -> Path:
    """A new, empty sibling folder of ``original`` for a copy: ``<name>.copy-<n>``, first free n
    (a copy of a copy numbers on from the same name)."""
    original = Path(original)
    stem = _COPY_SUFFIX.sub("", original.name)
    original.parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 100_000):
        candidate = original.parent / f"{stem}.copy-{n}"
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise ConfigError("run_dir", "no free name for a copy's folder", original)


def _database_bytes(path: Path) -> bytes:
    """A consistent copy of one SQLite database, as the bytes of a standalone file."""
    with tempfile.TemporaryDirectory(prefix="fedenv-copy-") as scratch:
        target = Path(scratch) / path.name
        source = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            destination = sqlite3.connect(target)
            try:
                source.backup(destination)
            finally:
                destination.close()
        finally:
            source.close()
        return target.read_bytes()
