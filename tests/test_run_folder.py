"""Run folders you cannot break: one writer, foreign folders untouched, full disks, pruning."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import pickle
import sqlite3
from pathlib import Path

import pytest

import fedenv
from chains.verify import verify_path
from fedenv import run_folder
from fedenv.errors import ConfigError, FolderBusyError, StorageError
from fedenv.folder_lock import LOCK_FILE


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones included) and its SHA-256."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def play(env, episodes: int = 1) -> None:
    for _ in range(episodes):
        env.reset(seed=3)
        while env.agents:
            env.step({a: env.action_space(a).n - 1 for a in env.agents})


@pytest.mark.parametrize(
    "files, problem",
    [
        ({"notes.txt": b"mine"}, "is not empty and holds no env folder"),
        ({"config.json": b"{oops"}, "is not an env config fedenv wrote"),
        ({"config.json": b'{"format": "train_agents.run/1"}'}, "format 'train_agents.run/1'"),
        ({"config.json": b'["a list"]'}, "was not written by fedenv's env"),
        ({"config.json": b"\xff\xfe"}, "is not an env config fedenv wrote"),
    ],
)
def test_a_foreign_folder_is_refused_and_left_byte_identical(tmp_path, files, problem):
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    before = snapshot(tmp_path)
    with pytest.raises(ConfigError, match=problem) as refused:
        fedenv.parallel_env("tiny", run_dir=tmp_path)
    assert refused.value.field == "run_dir"
    assert snapshot(tmp_path) == before and not (tmp_path / LOCK_FILE).exists()


def test_an_env_folder_has_one_writer_copies_included(tmp_path):
    folder = tmp_path / "env"
    env = fedenv.parallel_env("tiny", run_dir=folder, max_rounds=1)
    try:
        stored = json.loads((folder / "config.json").read_text())
        assert stored["format"] == "fedenv.env/1" and stored["scenario"]["name"] == "tiny"
        with pytest.raises(FolderBusyError, match="already open in this process"):
            fedenv.parallel_env("tiny", run_dir=folder, max_rounds=1)
        copy = pickle.loads(pickle.dumps(env))  # a copy never writes the original's folder
        try:
            assert copy.run.path != folder and copy.run.path.name == "env.copy-1"
            with pytest.raises(FolderBusyError, match="already open in this process"):
                fedenv.parallel_env("tiny", run_dir=copy.run.path, max_rounds=1)
        finally:
            copy.close()
        play(env)
    finally:
        env.close()
    again = fedenv.parallel_env("tiny", run_dir=folder, max_rounds=1)  # released on close
    play(again)
    again.close()
    assert all(r.ok for r in verify_path(folder))


def _cap(conn: sqlite3.Connection) -> None:
    """The file of ``conn`` cannot grow any more: SQLite's own "database or disk is full".
    Packed first (no free page, full pages), so the next few writes need a new page."""
    conn.execute("VACUUM")
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    conn.execute(f"PRAGMA max_page_count = {pages}")


def _no_space(path, data):
    raise OSError(errno.ENOSPC, "No space left on device", str(path))


SITES = {  # a write of each kind the env makes, failing for want of space; the file it names
    "public.db": lambda env, mp: _cap(env.run.ledgers.public.ledger._conn),
    "orderer.db": lambda env, mp: _cap(env.run.ledgers.channel.orderer.store.conn),
    "peer0.citycare.db": lambda env, mp: _cap(env.run.ledgers.channel.peers[1].store.conn),
    ".safetensors": lambda env, mp: mp.setattr(run_folder, "replace_file", _no_space),
}


def _step_until_it_fails(env) -> None:
    for _ in range(64):  # a capped file's last page (16 KiB) may hold a few steps' rows first
        if not env.agents:
            env.reset(seed=1)
        env.step({a: 1 for a in env.agents})


def test_a_full_disk_at_every_kind_of_write_is_one_message_and_the_folder_reopens(
    tmp_path, monkeypatch
):
    folder = tmp_path / "env"
    for file, fill in SITES.items():
        # episodes long enough that a peer's retained blocks outgrow its file's room (a peer
        # drops them at each episode's snapshot, and its freed pages take the next episode's)
        env = fedenv.parallel_env("tiny", run_dir=folder, max_rounds=12)
        env.reset(seed=1)
        with monkeypatch.context() as patch:
            fill(env, patch)
            with pytest.raises(StorageError) as failure:
                _step_until_it_fails(env)
        message = str(failure.value)
        assert message.startswith("cannot write the env folder: the disk is full ("), file
        assert f"{folder}/" in message and f"{file};" in message and " free of " in message
        assert failure.value.errno == errno.ENOSPC
        env.close()  # closing after a failed write works, and the lock is released
    env = fedenv.parallel_env("tiny", run_dir=folder, max_rounds=12)  # space is back
    play(env, 2)
    env.close()
    reports = verify_path(folder)
    assert all(r.ok for r in reports), [r.summary() for r in reports if not r.ok]


def test_old_episodes_adapters_are_pruned_with_a_record_verify_accepts(tmp_path):
    folder = tmp_path / "env"
    env = fedenv.parallel_env("tiny", run_dir=folder, max_rounds=1, keep_adapter_episodes=2)
    play(env, 4)
    env.close()
    assert sorted(os.listdir(folder / "adapters")) == ["base.safetensors", "e00002", "e00003"]
    (public,) = [r for r in verify_path(folder) if r.kind == "public-ledger"]
    assert public.ok and any("pruned on purpose" in note for note in public.notes)
    env = fedenv.parallel_env("tiny", run_dir=folder, max_rounds=1)  # keep all from now on
    play(env)
    env.close()
    assert "e00004" in os.listdir(folder / "adapters")
    with pytest.raises(ConfigError, match="keep_adapter_episodes: must be an integer >= 0"):
        fedenv.parallel_env("tiny", run_dir=tmp_path / "other", keep_adapter_episodes=-1)


def _heads(folder: Path) -> list[tuple[str, str]]:
    """Each ledger file of ``folder`` and the head verify finds (all must verify)."""
    reports = verify_path(folder)
    assert all(r.ok for r in reports), [r.summary() for r in reports if not r.ok]
    return sorted((Path(r.path).name, r.head) for r in reports)


def test_another_process_is_refused_and_a_killed_writers_folder_is_taken_over(tmp_path):
    """A process plays an episode in an env folder and is killed (SIGKILL) while it holds it:
    meanwhile an env in this process is refused, naming it, and writes nothing; afterwards the
    folder is taken over and ends with the ledgers of one process playing both episodes."""
    import signal
    import subprocess
    import sys
    import textwrap

    root = Path(__file__).resolve().parent.parent
    folder, solo = tmp_path / "env", tmp_path / "solo"
    script = textwrap.dedent(f"""
        import sys, time
        sys.path[:0] = [{str(root / "tests")!r}, {str(root)!r}]
        import fedenv
        from test_run_folder import play
        env = fedenv.parallel_env("tiny", run_dir={str(folder)!r}, max_rounds=1)
        play(env)
        print("played", flush=True)
        time.sleep(600)
    """)
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "played"
        before = snapshot(folder)
        with pytest.raises(FolderBusyError, match=f"is in use by PID {holder.pid} on host"):
            fedenv.parallel_env("tiny", run_dir=folder, max_rounds=1)
        assert snapshot(folder) == before
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    assert holder.returncode == -signal.SIGKILL
    env = fedenv.parallel_env("tiny", run_dir=folder, max_rounds=1)
    play(env)
    env.close()
    env = fedenv.parallel_env("tiny", run_dir=solo, max_rounds=1)
    play(env, 2)
    env.close()
    assert _heads(folder) == _heads(solo)
