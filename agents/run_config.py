"""The trainer's typed config, its run folders, and the env it trains on.

``TrainConfig`` is the command line of ``train_agents.py`` (:mod:`agents.cli`; each field's
docstring is its ``--help`` text).  :func:`prepare_run` resolves a new run's folder or a resumed
run's saved config; :func:`create_env` calls the env factory; :func:`config_table` is the
config as TensorBoard's ``hyperparameters`` text.

A run folder is marked: its ``config.json`` is ``{"format": "train_agents.run/1", "config":
{...}}``.  ``--resume`` accepts only a folder with that marker (anything else, a run's ``env/``
folder included, is refused with the reason, and nothing in it is written), and a new run goes
only into a new or empty folder.  :func:`prepare_run` only reads; the caller takes the folder's
lock before the first write.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pettingzoo import ParallelEnv

from agents.cli import parse_overrides
from agents.config import ConfigError, check_int
from agents.dqn import DQNConfig
from agents.q_learning import QLearningConfig
from agents.registry import parse_algo_spec
from agents.serialization import atomic_write_bytes

RUN_FORMAT = "train_agents.run/1"
"""The marker of a run folder (``config.json["format"]``); another version's is refused."""
MAX_CONFIG_BYTES = 1 << 20
MAX_RUN_NAME = 200
LOCK_FILE = ".fedenv.lock"  # the folder lock's file, which train_agents.py takes (fedenv's name)

# Options that may change when a run is resumed; all others define the run.
RESUMABLE = {"episodes", "log_interval", "checkpoint_interval", "eval_episodes", "progress",
             "device", "resume"}

EnvFactory = Callable[..., ParallelEnv]  # factory(scenario, *, run_dir, device, **overrides)


@dataclass
class TrainConfig:
    """Train organizations' policies on a PettingZoo ParallelEnv (fedenv by default).

    Algorithms (--algo): q_learning, q_learning_stateless, dqn, shared_dqn, myopic_greedy,
    random, always_max, always_min, never.  Logs: tensorboard --logdir runs"""

    scenario: str = "default"
    """scenario name (scenarios/<name>.toml, e.g. tiny, default) or a scenario file"""
    algo: str = "q_learning"
    """one algorithm for every organization, or a default plus per-org ones: 'random,org_a=dqn'"""
    episodes: int = 55
    """training episodes in total (55: about 4.5 min on the default scenario on 2 CPU cores)"""
    seed: int = 1
    """seed of the agents and of each episode's reset (the scenario's own seed fixes its world)"""
    device: str = "auto"
    """torch device for agents and env: auto (cuda if available, else cpu), cpu, cuda:0"""
    run_name: str = ""
    """run folder name under --runs-dir ('': <scenario>__<algo>__<seed>__<time>)"""
    runs_dir: str = "runs"
    """parent folder of run folders"""
    log_interval: int = 1
    """write TensorBoard scalars every N episodes (means over those episodes)"""
    checkpoint_interval: int = 5
    """checkpoint every N episodes"""
    eval_episodes: int = 0
    """greedy evaluation episodes after training (0: none)"""
    resume: str = ""
    """continue the run in this folder (e.g. runs/<name>) from its last checkpoint"""
    env: str = "fedenv:parallel_env"
    """env factory 'module:function', called as f(scenario, run_dir=, device=, **overrides)"""
    override: tuple[str, ...] = ()
    """env overrides KEY=VALUE (JSON, else a string): max_rounds=4 store_adapters=false"""
    progress: bool = True
    """show a tqdm progress bar"""
    q_learning: QLearningConfig = field(default_factory=QLearningConfig)
    """tabular Q-learning (--algo q_learning)"""
    dqn: DQNConfig = field(default_factory=DQNConfig)
    """deep Q-network (--algo dqn and shared_dqn)"""

    def __post_init__(self) -> None:
        check_int("episodes", self.episodes, low=1)
        check_int("seed", self.seed, low=0)
        check_int("log_interval", self.log_interval, low=1)
        check_int("checkpoint_interval", self.checkpoint_interval, low=1)
        check_int("eval_episodes", self.eval_episodes, low=0)
        if not self.scenario:
            raise ConfigError("scenario", "must not be empty")
        parse_algo_spec(self.algo)
        module, _, function = self.env.partition(":")
        if not module or not function:
            raise ConfigError("env", f"must be 'module:function', got {self.env!r}")
        self.override = tuple(self.override)
        for key in self.env_overrides():  # also validates the KEY=VALUE syntax
            if key in ("device", "run_dir"):
                raise ConfigError("override", f"{key} is not an env override here: "
                                  + ("set it with --device (the agents' and the env's)"
                                     if key == "device" else
                                     "the env folder is <run folder>/env"))
        if self.run_name:
            check_folder_name("run_name", self.run_name)

    def env_overrides(self) -> dict[str, Any]:
        return parse_overrides(self.override)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Rebuild a config from ``dataclasses.asdict`` output (a run's ``config.json``)."""
        return cls(**{**data, "q_learning": QLearningConfig(**data.get("q_learning", {})),
                      "dqn": DQNConfig(**data.get("dqn", {}))})


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def checkpoint(self) -> Path:
        return self.root / "checkpoints" / "latest.pt"

    @property
    def env(self) -> Path:
        return self.root / "env"


def check_folder_name(field: str, name: str) -> str:
    """``name`` if it can be one folder's name (it becomes a path part), else ConfigError."""
    problem = None
    if name in (".", "..") or any(c in name for c in "/\\") or not name.isprintable():
        problem = "a plain folder name (no '/', '\\', control characters, '.' or '..')"
    elif len(name) > MAX_RUN_NAME or len(name.encode("utf-8", "replace")) > 255:
        problem = f"at most {MAX_RUN_NAME} characters (255 bytes)"
    if problem:
        shown = name if len(name) <= 80 else f"{name[:80]}... ({len(name)} characters)"
        raise ConfigError(field, f"must be {problem}, got {shown!r}")
    return name


def write_config(config: TrainConfig, paths: RunPaths) -> None:
    record = {"format": RUN_FORMAT, "config": dataclasses.asdict(config)}
    text = json.dumps(record, indent=2, sort_keys=True) + "\n"
    atomic_write_bytes(paths.config, text.encode())


def read_run_config(folder: Path, field: str = "resume") -> TrainConfig:
    """The config of the run in ``folder``; ConfigError(``field``) naming what is wrong when
    ``folder`` is not a run folder of this version (reads only)."""
    file = folder / "config.json"
    if not folder.is_dir():
        raise ConfigError(field, f"{folder} is not a run folder (no such folder)")
    if not file.is_file():
        raise ConfigError(field, f"{folder} is not a train_agents.py run folder (no config.json)"
                          + _parent_hint(folder))
    try:
        if file.stat().st_size > MAX_CONFIG_BYTES:
            raise ValueError(f"{file.stat().st_size} bytes; a run's config is far smaller")
        record = json.loads(file.read_bytes().decode("utf-8"))
    except (OSError, ValueError) as error:  # JSONDecodeError and UnicodeDecodeError included
        raise ConfigError(field, f"{file} is not a run's config: {error}") from None
    found = record.get("format") if isinstance(record, dict) else None
    if found != RUN_FORMAT or not isinstance(record.get("config"), dict):
        raise ConfigError(field, f"{folder} is not a train_agents.py run folder of this version "
                                 f"(config.json format {found!r}, expected {RUN_FORMAT!r})"
                          + _parent_hint(folder))
    try:
        return TrainConfig.from_dict(record["config"])
    except (TypeError, ValueError, AttributeError) as error:
        problem = getattr(error, "problem", error)
        raise ConfigError(field, f"{file} does not fit this version: {problem}") from None


def _parent_hint(folder: Path) -> str:
    parent = folder.resolve().parent
    try:
        marked = json.loads((parent / "config.json").read_text()).get("format") == RUN_FORMAT
    except (OSError, ValueError, AttributeError):
        marked = False
    return f"; did you mean --resume {folder.parent}?" if marked else ""


def _holds_files(folder: Path) -> bool:
    try:
        return any(name != LOCK_FILE for name in os.listdir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return False


def prepare_run(config: TrainConfig,
                given: set[str] = frozenset()) -> tuple[TrainConfig, RunPaths]:
    """Resolve a new run's folder, or load a resumed run's config (``given``: options set on the
    command line; on resume only :data:`RESUMABLE` ones may differ from the saved config).
    Nothing is written: :func:`train` writes ``config.json``."""
    if not config.resume:
        name = config.run_name or check_folder_name("run_name", "__".join([
            re.sub(r"[^A-Za-z0-9_.+-]+", "-", Path(config.scenario).stem)[:64],
            re.sub(r"[^A-Za-z0-9_.+-]+", "-", config.algo.replace(",", "+"))[:64],
            str(config.seed), str(int(time.time()))]))
        paths = RunPaths(Path(config.runs_dir) / name)
        check_new_run(paths)
        return dataclasses.replace(config, run_name=name), paths
    paths = RunPaths(Path(config.resume))
    saved = read_run_config(paths.root)
    current, before = dataclasses.asdict(config), dataclasses.asdict(saved)
    for name in sorted(given):
        if name.split(".")[0] in RESUMABLE:
            continue
        new, old = _lookup(current, name), _lookup(before, name)
        if new != old:
            raise ConfigError(name, f"cannot change when resuming (the run has {old!r})")
    changes = {k: getattr(config, k) for k in RESUMABLE if k in given or k == "resume"}
    return dataclasses.replace(saved, **changes), paths


def check_new_run(paths: RunPaths) -> None:
    """A new run goes into a new or empty folder only (ConfigError("run_name") otherwise)."""
    if paths.config.exists():
        raise ConfigError("run_name", f"{paths.root} already holds a run; choose another "
                                      f"name or resume it with --resume {paths.root}")
    if paths.root.exists() and not paths.root.is_dir():
        raise ConfigError("run_name", f"{paths.root} exists and is not a folder")
    if _holds_files(paths.root):
        raise ConfigError("run_name", f"{paths.root} is not empty and holds no run; a new run "
                                      f"goes into a new or empty folder")


def _lookup(tree: Mapping[str, Any], dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        node = node[part]
    return list(node) if isinstance(node, tuple) else node


def create_env(config: TrainConfig, make_env: EnvFactory, paths: RunPaths,
               device: torch.device) -> ParallelEnv:
    """The run's env: ``make_env(scenario, run_dir=<run>/env, device=, **overrides)``.

    ``device`` is ``config.device`` resolved by the caller (train_agents.py resolves it with
    fedenv's resolver: agents never imports fedenv); the env gets its name (``"cpu"``,
    ``"cuda:0"``). The scenario keeps its own seed (its data, base model and identities: the
    world); ``seed`` drives the episodes (``reset(seed=...)``) and the agents. ``--override
    seed=N`` changes the world's."""
    return make_env(config.scenario, run_dir=str(paths.env), device=str(device),
                    **config.env_overrides())


def config_table(config: Any) -> str:
    """The resolved config as a markdown table (TensorBoard's ``hyperparameters`` text)."""
    rows: list[tuple[str, Any]] = []

    def walk(node: Any, prefix: str) -> None:
        for f in dataclasses.fields(node):
            value = getattr(node, f.name)
            if dataclasses.is_dataclass(value):
                walk(value, f"{prefix}{f.name}.")
            else:
                rows.append((prefix + f.name, value))

    walk(config, "")
    return "|param|value|\n|-|-|\n" + "\n".join(f"|{key}|{value}|" for key, value in rows)
