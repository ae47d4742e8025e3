"""A run folder's files for a copy: consistent databases, nothing but what a run folder holds,
and a folder of its own for every copy."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor

import pytest

from fedenv.errors import ConfigError
from fedenv.folder_copies import copy_destination, folder_files, write_files


def test_a_database_is_copied_with_what_its_write_ahead_log_holds(tmp_path):
    source = tmp_path / "run"
    (source / "fabric").mkdir(parents=True)
    db = sqlite3.connect(source / "fabric" / "peer.db")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE blocks(n INTEGER)")
    db.execute("INSERT INTO blocks VALUES (7)")
    db.commit()  # committed into the -wal file, not yet checkpointed into peer.db
    (source / "config.json").write_text("{}")
    (source / "adapters").mkdir()
    (source / "adapters" / "base.safetensors").write_bytes(b"tensors")
    (source / "run.lock").write_text("pid 1")  # not a run folder's content: not copied
    files = folder_files(source)
    db.close()
    assert sorted(files) == ["adapters/base.safetensors", "config.json", "fabric/peer.db"]
    target = tmp_path / "copy"
    write_files(target, files)
    copied = sqlite3.connect(target / "fabric" / "peer.db")
    assert copied.execute("SELECT n FROM blocks").fetchall() == [(7,)]
    copied.close()
    (target / "config.json").unlink()
    with pytest.raises(ConfigError, match="copy: run_dir: a copy's folder already holds adapters"):
        write_files(target, files)
    assert not (target / "config.json").exists()  # refused before writing anything


def test_every_copy_gets_a_new_sibling_folder(tmp_path):
    original = tmp_path / "runs" / "demo"
    original.mkdir(parents=True)
    with ThreadPoolExecutor(4) as pool:
        made = list(pool.map(lambda _: copy_destination(original), range(4)))
    assert sorted(p.name for p in made) == [f"demo.copy-{n}" for n in range(1, 5)]
    assert copy_destination(made[0]).name == "demo.copy-5"  # a copy of a copy numbers on
