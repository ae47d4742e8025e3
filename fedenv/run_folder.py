"""A run folder: the resolved config, the adapters and the ledgers of one env, verifiable offline.

::

    config.json                                  the format marker, the scenario, the env options
    .fedenv.lock                                 the writer's lock (fedenv.folder_lock)
    public.db (or public-eth.db), fabric/<channel>/*.db   the ledgers (see fedenv.ledgers)
    adapters/base.safetensors                    the initial global state
    adapters/e<episode>/r<round>/<org>.safetensors   each update, as sent
    adapters/e<episode>/r<round>/global.safetensors  the global state after the round

Every adapter file holds exactly the canonical bytes whose SHA-256 the public ledger carries
(payload ``"artifact"`` and ``"digest"``), so ``python -m chains verify <folder>`` recomputes
each hash from the files.  Without a path, the folder is a fresh temporary directory, removed on
``close()`` or when the env is garbage-collected.  A copy of a live env opens a folder of its
own, filled with its original's files (:mod:`fedenv.folder_copies`).

**One writer.**  A folder is opened under an exclusive lock held until ``close()`` (or the
process's end, ``kill -9`` included): a second env on the same folder, in this process or
another, gets :class:`~fedenv.errors.FolderBusyError` naming the holder.  fedenv writes only into
a new or empty folder or one it made (``config.json`` with ``"format": "fedenv.env/1"`` and the
same scenario); anything else is refused before a byte is written.  Files are replaced
atomically (a temporary file renamed into place), so a full disk never leaves half a config or
half an adapter.

**Pruning.**  With ``keep_adapter_episodes=K`` (K >= 1) the adapters of episodes older than the
last K are deleted when an episode starts, after a signed ``artifacts-pruned`` record naming
their folders is sealed on the public ledger: their hashes stay there, and ``chains verify``
counts them as pruned (a note), not missing.  ``adapters/base.safetensors`` is never pruned.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fedenv.errors import ConfigError
from fedenv.folder_copies import write_files
from fedenv.folder_lock import LOCK_FILE, FolderLock
from fedenv.ledgers import Ledgers, round_key
from fedenv.scenario import Scenario

CONFIG_FILE = "config.json"
ADAPTERS = "adapters"
ENV_FORMAT = "fedenv.env/1"
MAX_CONFIG_BYTES = 16 << 20
_EPISODE_FOLDER = re.compile(r"e(\d{5,})")


class RunFolder:
    """Creates (or reopens) a run folder under its lock, its ledgers; writes adapter files."""

    def __init__(
        self,
        path: str | Path | None,
        scenario: Scenario,
        *,
        store_adapters: bool = True,
        keep_adapter_episodes: int = 0,
        files: Mapping[str, bytes] | None = None,
    ) -> None:
        """``files``: a copied folder's files (:func:`fedenv.folder_copies.folder_files`),
        written into the new folder, under its lock, before it opens."""
        if isinstance(keep_adapter_episodes, bool) or not isinstance(keep_adapter_episodes, int) \
                or keep_adapter_episodes < 0:
            raise ConfigError("keep_adapter_episodes",
                              f"must be an integer >= 0 (0: keep all), got {keep_adapter_episodes!r}")
        self.owned = path is None
        if path is not None:
            _check_writable(Path(path))  # before anything is written into it
        self.path = (
            Path(tempfile.mkdtemp(prefix=f"fedenv-{scenario.name}-"))
            if path is None
            else Path(path)
        )
        self._cleanup = (
            weakref.finalize(self, shutil.rmtree, str(self.path), True) if self.owned else None
        )
        self.store_adapters = store_adapters
        self.keep_adapter_episodes = keep_adapter_episodes
        self.path.mkdir(parents=True, exist_ok=True)
        self.lock = FolderLock(self.path, purpose="env folder").acquire()
        try:
            if files:
                write_files(self.path, files)
            self._write_config(scenario)
            self.ledgers = Ledgers.for_scenario(self.path, scenario)
        except BaseException:
            self.lock.release()
            raise

    def _write_config(self, scenario: Scenario) -> None:
        """Check the stored config (under the lock), then write this one if it differs."""
        stored = read_env_config(self.path)
        if stored is None and _entries(self.path):
            raise _foreign(self.path)
        if stored is not None and not _same_scenario(stored.get("scenario"), scenario):
            raise ConfigError(
                "run_dir", "holds a run of a different scenario; use a new folder", str(self.path)
            )
        config = {
            "format": ENV_FORMAT,
            "scenario": scenario.to_dict(),
            "env": {
                "store_adapters": self.store_adapters,
                "keep_adapter_episodes": self.keep_adapter_episodes,
            },
        }
        if config != stored:
            text = json.dumps(config, indent=2, sort_keys=True) + "\n"
            replace_file(self.path / CONFIG_FILE, text.encode())

    def save_adapter(
        self, episode: int | None, round: int | None, name: str, data: bytes
    ) -> str | None:
        """Write ``data`` (canonical adapter bytes); returns its path relative to the folder,
        or ``None`` when adapters are not stored.  ``episode=None``: the base state."""
        if not self.store_adapters:
            return None
        relative = adapter_path(episode, round, name)
        replace_file(self.path / relative, data)
        return relative

    def read(self, relative: str) -> bytes:
        """The bytes of a file of the folder (an adapter, a certificate)."""
        return (self.path / relative).read_bytes()

    def write(self, relative: str, data: bytes) -> str:
        """Write a file of the folder (an unlearning certificate, its measures); its path."""
        replace_file(self.path / relative, data)
        return relative

    def erase(self, relative: str) -> None:
        """Remove a file of the folder for good (a forgotten organization's update)."""
        (self.path / relative).unlink(missing_ok=True)

    def prune_adapters(self, episode: int) -> list[str]:
        """Delete the adapters of episodes before the last ``keep_adapter_episodes`` (counting
        ``episode``, the one that just started), once their pruning is sealed on the public
        ledger; returns the pruned folders (relative, ``adapters/e00003/``)."""
        keep = self.keep_adapter_episodes
        folder = self.path / ADAPTERS
        if not keep or not folder.is_dir():
            return []
        old = sorted(
            f"{ADAPTERS}/{entry.name}/"
            for entry in os.scandir(folder)
            if entry.is_dir(follow_symlinks=False)
            and (found := _EPISODE_FOLDER.fullmatch(entry.name))
            and int(found.group(1)) <= episode - keep
        )
        if old:
            self.ledgers.record_pruning(old)
            for prefix in old:
                shutil.rmtree(self.path / prefix)
        return old

    def close(self) -> None:
        """Close the ledgers and give the lock up; a temporary folder is removed."""
        try:
            self.ledgers.close()
        finally:
            self.lock.release()
            if self._cleanup is not None:
                self._cleanup()


def read_env_config(folder: str | Path) -> dict[str, Any] | None:
    """The env config stored in ``folder`` (None when there is no ``config.json``);
    ConfigError("run_dir") when that file is not one fedenv's env wrote."""
    file = Path(folder) / CONFIG_FILE
    if not file.exists():
        return None
    try:
        if file.stat().st_size > MAX_CONFIG_BYTES:
            raise ValueError(f"{file.stat().st_size} bytes; an env config is far smaller")
        data = json.loads(file.read_bytes().decode("utf-8"))
    except (OSError, ValueError) as error:  # JSONDecodeError and UnicodeDecodeError included
        raise ConfigError(
            "run_dir", f"{file} is not an env config fedenv wrote ({error})", str(folder)
        ) from None
    if not isinstance(data, dict) or data.get("format") != ENV_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ConfigError(
            "run_dir",
            f"{file} was not written by fedenv's env (format {found!r}, expected "
            f"{ENV_FORMAT!r}); fedenv writes only into a new or empty folder or an env folder "
            f"it made",
            str(folder),
        )
    return data


def replace_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file renamed into place: a reader (or a
    full disk) never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _entries(folder: Path) -> list[str]:
    """The folder's entries other than a lock file."""
    try:
        return [name for name in os.listdir(folder) if name != LOCK_FILE]
    except FileNotFoundError:
        return []


def _foreign(folder: Path) -> ConfigError:
    return ConfigError(
        "run_dir",
        f"{folder} is not empty and holds no env folder (no {CONFIG_FILE}); fedenv writes "
        f"only into a new or empty folder or an env folder it made",
        str(folder),
    )


def _check_writable(folder: Path) -> None:
    """Refuse, before anything is written, a path that is not a folder fedenv may write."""
    if folder.exists() and not folder.is_dir():
        raise ConfigError("run_dir", f"{folder} exists and is not a folder", str(folder))
    if folder.is_dir() and read_env_config(folder) is None and _entries(folder):
        raise _foreign(folder)


def adapter_path(episode: int | None, round: int | None, name: str) -> str:
    """The path, relative to the folder, of an adapter file (``episode=None``: the base)."""
    if episode is None:
        return f"{ADAPTERS}/{name}.safetensors"
    return f"{ADAPTERS}/{round_key(episode, round or 0).replace('-', '/')}/{name}.safetensors"


def _same_scenario(stored: object, scenario: Scenario) -> bool:
    """Whether a folder's stored scenario is ``scenario`` (keys added since with their defaults
    compare equal: a folder written before a new setting existed still opens)."""
    try:
        return Scenario.from_dict(stored, source=CONFIG_FILE) == scenario
    except ConfigError:
        return False
