"""The training loop behind ``train_agents.py``: episodes, checkpoints, TensorBoard, resume.

A run folder ``runs/<name>/`` holds ``config.json`` (the resolved config), the TensorBoard event
files, ``checkpoints/latest.pt`` and ``env/`` (the env's own run folder: ledgers, adapters).
A checkpoint is written atomically every ``checkpoint_interval`` episodes and at the end; it holds
the team (tables, networks, optimizers, replay buffers, generators), the python / numpy / torch
global RNG states, the number of finished episodes, the global step and the logging state.
Episode ``e`` always resets the env with seed ``episode_seed(seed, e)``, so a run resumed
from a checkpoint plays the same episodes as one never interrupted. Scalars are logged with the
global env step as x-axis; a resumed writer purges the steps after the checkpoint.  A new run
writes the Custom Scalars layout; every run ends with its config and final metrics in the HParams
plugin (:mod:`agents.dashboard`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pettingzoo import ParallelEnv
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from agents.config import ConfigError
from agents.dashboard import flat_hparams, write_hparams, write_layout
from agents.metrics import RunTotals, ScalarWindow, episode_scalars, format_summary
from agents.registry import AgentSettings, build_team, observation_fields, resolve_assignment
from agents.rollout import episode_seed, eval_seeds, evaluate, mean_returns, run_episode
from agents.run_config import (
    EnvFactory,
    RunPaths,
    TrainConfig,
    config_table,
    create_env,
    prepare_run,
    write_config,
)
from agents.serialization import atomic_save, load_state

__all__ = ["EnvFactory", "RunPaths", "TrainConfig", "TrainResult", "Trainer", "create_env",
           "prepare_run", "train"]

CHECKPOINT_FORMAT = "agents.checkpoint/1"


@dataclass
class TrainResult:
    run_dir: Path
    episodes: int
    global_step: int
    totals: RunTotals
    assignment: dict[str, str]
    eval_returns: dict[str, float] | None
    summary: str


def _rng_states() -> dict[str, Any]:
    legacy = np.random.get_state()
    states = {
        "python": random.getstate(),
        "numpy": (legacy[0], torch.from_numpy(legacy[1].astype(np.int64)), *legacy[2:]),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _restore_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    name, keys, *rest = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _wait_past_event_files(folder: Path) -> None:
    """Sleep until the clock's second is past every event file's in ``folder``.

    TensorBoard reads a folder's event files in name order, and names start with the creation
    second; a resumed writer's file must sort after the files it purges (at most ~1 s wait).
    """
    stamps = [int(p.name.split(".")[3]) for p in folder.glob("events.out.tfevents.*")
              if p.name.split(".")[3].isdigit()]
    if stamps:
        time.sleep(max(0.0, max(stamps) + 1 - time.time()))


def train(config: TrainConfig, env: ParallelEnv, paths: RunPaths, *, device: torch.device,
          print_fn: Callable[[str], None] = print) -> TrainResult:
    """Train (or continue training) on ``env`` until ``config.episodes`` episodes are done;
    ``device``: where the agents' networks live (``config.device`` resolved by the caller)."""
    return Trainer(config, env, paths, device=device, print_fn=print_fn).run()


class Trainer:
    """One run: the team, its logging state and its checkpoints."""

    def __init__(self, config: TrainConfig, env: ParallelEnv, paths: RunPaths,
                 *, device: torch.device, print_fn: Callable[[str], None] = print) -> None:
        self.config, self.env, self.paths = config, env, paths
        agents = list(env.possible_agents)
        self.assignment = resolve_assignment(config.algo, agents)
        # the team first: a design that does not fit the env (a state naming a field it lacks)
        # is refused before the run has a config.json, so the refused run leaves no folder
        self.team = build_team(self.assignment, {a: env.observation_space(a) for a in agents},
                               {a: env.action_space(a) for a in agents}, seed=config.seed,
                               settings=AgentSettings(q_learning=config.q_learning,
                                                      dqn=config.dqn, device=str(device),
                                                      observation_fields=observation_fields(env)))
        write_config(config, paths)
        self.totals, self.window = RunTotals(), ScalarWindow()
        self.episode, self.global_step = 0, 0
        self.recent_returns: list[float] = []  # mean return of the last (up to 10) episodes
        if paths.checkpoint.exists():
            self._load_checkpoint()
            _wait_past_event_files(paths.root)
            # Steps <= global_step were logged before the checkpoint; later ones are replayed.
            self.writer = SummaryWriter(str(paths.root), purge_step=self.global_step + 1)
            print_fn(f"resumed {paths.root} at episode {self.episode} "
                     f"(global step {self.global_step})")
        else:
            random.seed(config.seed)
            np.random.seed(config.seed)
            torch.manual_seed(config.seed)
            if config.resume:
                _wait_past_event_files(paths.root)
            self.writer = SummaryWriter(str(paths.root), purge_step=0 if config.resume else None)
            self.writer.add_text("hyperparameters", config_table(config))
            write_layout(self.writer)

    def _load_checkpoint(self) -> None:
        state = load_state(self.paths.checkpoint)
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise ConfigError("resume", f"{self.paths.checkpoint} is not a checkpoint")
        self.team.load_state_dict(state["team"])
        self.totals.load_state_dict(state["totals"])
        self.window.load_state_dict(state["window"])
        self.episode, self.global_step = int(state["episode"]), int(state["global_step"])
        self.recent_returns = [float(x) for x in state["recent_returns"]]
        _restore_rng_states(state["rng"])

    def _save_checkpoint(self) -> None:
        self.writer.flush()  # every scalar up to the checkpoint is on disk before it
        atomic_save({
            "format": CHECKPOINT_FORMAT, "episode": self.episode, "global_step": self.global_step,
            "team": self.team.state_dict(), "rng": _rng_states(),
            "totals": self.totals.state_dict(), "window": self.window.state_dict(),
            "recent_returns": list(self.recent_returns),
        }, self.paths.checkpoint)

    def _write_scalars(self, steps_per_second: float) -> None:
        for tag, value in self.window.means().items():
            self.writer.add_scalar(tag, value, self.global_step)
        self.writer.add_scalar("charts/SPS", steps_per_second, self.global_step)
        self.writer.add_scalar("charts/episode", self.episode, self.global_step)
        self.window.clear()

    def run(self) -> TrainResult:
        config = self.config
        start_time, start_step = time.perf_counter(), self.global_step
        bar = tqdm(total=config.episodes, initial=self.episode, desc="episodes", unit="ep",
                   disable=not config.progress, dynamic_ncols=True)
        try:
            while self.episode < config.episodes:
                record = run_episode(self.env, self.team,
                                     seed=episode_seed(config.seed, self.episode))
                self.team.end_episode()
                self.episode += 1
                self.global_step += record.steps
                self.totals.add(record)
                self.window.add(episode_scalars(record))
                last = self.episode == config.episodes
                if self.episode % config.log_interval == 0 or last:
                    elapsed = max(time.perf_counter() - start_time, 1e-9)
                    self._write_scalars((self.global_step - start_step) / elapsed)
                self.recent_returns = (self.recent_returns + [record.mean_return])[-10:]
                if self.episode % config.checkpoint_interval == 0 or last:
                    self._save_checkpoint()
                postfix = {"ep": self.episode,
                           "mean_return": f"{np.mean(self.recent_returns):.3f}"}
                if record.global_score is not None:
                    postfix["global_score"] = f"{record.global_score:.3f}"
                bar.set_postfix(postfix, refresh=False)
                bar.update(1)
            eval_returns = self._evaluate() if config.eval_episodes else None
            self._write_hparams(eval_returns)
        finally:
            bar.close()
            self.writer.close()
        summary = format_summary(self.totals, self.assignment, eval_returns)
        return TrainResult(self.paths.root, self.episode, self.global_step, self.totals,
                           self.assignment, eval_returns, summary)

    def _write_hparams(self, eval_returns: dict[str, float] | None) -> None:
        """The run's config and final metrics for TensorBoard's HParams tab."""
        rows = self.totals.rows()
        metrics = {
            "final_mean_return": float(np.mean(self.recent_returns)),
            "mean_return": float(np.mean([r[1] for r in rows])),
            "participation": float(np.mean([r[2] for r in rows])),
        }
        if eval_returns:
            metrics["eval_mean_return"] = float(np.mean(list(eval_returns.values())))
        write_hparams(self.writer, flat_hparams(self.config), metrics, self.global_step)

    def _evaluate(self) -> dict[str, float]:
        records = evaluate(self.env, self.team, eval_seeds(self.config.seed,
                                                           self.config.eval_episodes))
        returns = mean_returns(records)
        for org, value in returns.items():
            self.writer.add_scalar(f"eval/episodic_return/{org}", value, self.global_step)
        return returns
