"""A run folder: the resolved config, the adapters and the ledgers of one env, verifiable offline.

::

    config.json                                  the resolved scenario and env options
    public.db (or public-eth.db), fabric/<channel>/*.db   the ledgers (see fedenv.ledgers)
    adapters/base.safetensors                    the initial global state
    adapters/e<episode>/r<round>/<org>.safetensors   each update, as sent
    adapters/e<episode>/r<round>/global.safetensors  the global state after the round

Every adapter file holds exactly the canonical bytes whose SHA-256 the public ledger carries
(payload ``"artifact"`` and ``"digest"``), so ``python -m chains verify <folder>`` recomputes
each hash from the files.  Without a path, the folder is a fresh temporary directory, removed on
``close()`` or when the env is garbage-collected.  A folder belongs to one env at a time: a copy
of a live env opens a folder of its own, filled with its original's files
(:mod:`fedenv.folder_copies`).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import weakref
from collections.abc import Mapping
from pathlib import Path

from fedenv.errors import ConfigError
from fedenv.folder_copies import write_files
from fedenv.ledgers import Ledgers, round_key
from fedenv.scenario import Scenario

CONFIG_FILE = "config.json"
ADAPTERS = "adapters"


class RunFolder:
    """Creates (or reopens) a run folder and its ledgers; writes adapter files into it."""

    def __init__(
        self,
        path: str | Path | None,
        scenario: Scenario,
        *,
        store_adapters: bool = True,
        files: Mapping[str, bytes] | None = None,
    ) -> None:
        """``files``: a copied folder's files (:func:`fedenv.folder_copies.folder_files`),
        written into the new folder before it opens."""
        self.owned = path is None
        self.path = (
            Path(tempfile.mkdtemp(prefix=f"fedenv-{scenario.name}-"))
            if path is None
            else Path(path)
        )
        self._cleanup = (
            weakref.finalize(self, shutil.rmtree, str(self.path), True) if self.owned else None
        )
        self.store_adapters = store_adapters
        self.path.mkdir(parents=True, exist_ok=True)
        if files:
            write_files(self.path, files)
        config = {"scenario": scenario.to_dict(), "env": {"store_adapters": store_adapters}}
        config_file = self.path / CONFIG_FILE
        if config_file.exists():
            stored = json.loads(config_file.read_text()).get("scenario")
            if not _same_scenario(stored, scenario):
                raise ConfigError(
                    "run_dir",
                    "holds a run of a different scenario; use a new folder",
                    str(self.path),
                )
        config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        self.ledgers = Ledgers.for_scenario(self.path, scenario)

    def save_adapter(
        self, episode: int | None, round: int | None, name: str, data: bytes
    ) -> str | None:
        """Write ``data`` (canonical adapter bytes); returns its path relative to the folder,
        or ``None`` when adapters are not stored.  ``episode=None``: the base state."""
        if not self.store_adapters:
            return None
        relative = (
            f"{ADAPTERS}/{name}.safetensors"
            if episode is None
            else f"{ADAPTERS}/{round_key(episode, round or 0).replace('-', '/')}/{name}.safetensors"
        )
        file = self.path / relative
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(data)
        return relative

    def close(self) -> None:
        """Close the ledgers; a temporary folder is removed."""
        self.ledgers.close()
        if self._cleanup is not None:
            self._cleanup()


def _same_scenario(stored: object, scenario: Scenario) -> bool:
    """Whether a folder's stored scenario is ``scenario`` (keys added since with their defaults
    compare equal: a folder written before a new setting existed still opens)."""
    try:
        return Scenario.from_dict(stored, source=CONFIG_FILE) == scenario
    except ConfigError:
        return False
