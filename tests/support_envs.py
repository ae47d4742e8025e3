"""A small, fast PettingZoo ParallelEnv for the agent tests: a participation game.

Each organization picks a level each round (0 sits out, 1..levels takes part). Organization i
earns ``value_i * level * (0.8 + 0.4 * share of the others taking part)`` and pays
``cost_i * level**2``, plus Gaussian noise: the best level is interior and differs between
organizations (org_0: 2, org_1: 1, org_2: 3, org_3: 1 at the default parameters), so a learner
beats random play and the fixed baselines. Deterministic under ``reset(seed=...)``.

Observation (Box, float32): round_fraction, budget_fraction (budget left / budget; 1 without a
budget), own last level / levels, others' participation share last round, own last reward / value
(clipped to [-1, 1]); ``env.observation_fields`` names them, as fedenv does. Infos carry the same keys the trainer
logs for fedenv (participated, resource, contribution, payout, cost_total, global_score,
domain_scores, public_height, round). With a finite ``budget`` an organization whose total cost
reaches it is terminated while the others play on.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

VALUES = (1.0, 1.0, 0.6, 1.0)
COSTS = (0.25, 0.5, 0.1, 0.35)


@dataclass(frozen=True)
class GameConfig:
    n_orgs: int = 4
    levels: int = 3
    max_rounds: int = 10
    noise: float = 0.1
    budget: float = math.inf
    step_delay: float = 0.0  # seconds slept per step (to kill a run mid-way in tests)


SCENARIOS = {
    "tiny": GameConfig(n_orgs=3, max_rounds=5),
    "default": GameConfig(),
    "slow": GameConfig(n_orgs=3, max_rounds=5, step_delay=0.02),
    "budget": GameConfig(n_orgs=3, max_rounds=8, budget=1.5),
}


class ParticipationGame(ParallelEnv):
    metadata: ClassVar[dict[str, Any]] = {"name": "participation_game_v0", "render_modes": ["ansi"],
                "is_parallelizable": True}

    def __init__(self, config: GameConfig, *, seed: int = 0, run_dir: str | None = None,
                 render_mode: str | None = None) -> None:
        self.config = config
        self.run_dir = run_dir  # accepted like fedenv's; this game writes nothing
        self.render_mode = render_mode
        self.possible_agents = [f"org_{i}" for i in range(config.n_orgs)]
        self.agents: list[str] = []
        self.observation_fields = ("round_fraction", "budget_fraction", "last_level",
                                   "others_participation", "last_reward")
        self._obs_space = spaces.Box(np.array([0, 0, 0, 0, -1], np.float32),
                                     np.array([1, 1, 1, 1, 1], np.float32), dtype=np.float32)
        self._act_space = spaces.Discrete(1 + config.levels)
        self._rng = np.random.default_rng(seed)
        self._value = {a: VALUES[i % len(VALUES)] for i, a in enumerate(self.possible_agents)}
        self._cost = {a: COSTS[i % len(COSTS)] for i, a in enumerate(self.possible_agents)}

    def observation_space(self, agent: str) -> spaces.Box:
        return self._obs_space

    def action_space(self, agent: str) -> spaces.Discrete:
        return self._act_space

    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.agents = list(self.possible_agents)
        self._round = 0
        self._height = 0
        self._spent = dict.fromkeys(self.agents, 0.0)
        self._last = {a: (0, 0.0, 0.0) for a in self.agents}  # level, others share, reward
        return {a: self._observe(a) for a in self.agents}, {a: {} for a in self.agents}

    def _observe(self, agent: str) -> np.ndarray:
        level, others, reward = self._last[agent]
        budget = self.config.budget
        left = 1.0 if math.isinf(budget) else max(0.0, budget - self._spent[agent]) / budget
        return np.array([self._round / self.config.max_rounds, left, level / self.config.levels,
                         others, np.clip(reward / self._value[agent], -1, 1)], dtype=np.float32)

    def step(self, actions: dict[str, int]):
        if set(actions) != set(self.agents):
            raise ValueError(f"actions for {sorted(actions)}, live agents are {self.agents}")
        if self.config.step_delay:
            time.sleep(self.config.step_delay)
        cfg = self.config
        levels = {a: int(actions[a]) for a in self.agents}
        for agent, level in levels.items():
            if not self._act_space.contains(level):
                raise ValueError(f"{agent}: action {level} outside {self._act_space}")
        self._round += 1
        n_others = max(len(self.possible_agents) - 1, 1)
        contribution = {a: self._value[a] * level for a, level in levels.items()}
        total = sum(contribution.values())
        global_score = 10 * (1 - math.exp(-total / len(self.possible_agents)))
        self._height += 1 + sum(level > 0 for level in levels.values())
        domain_scores = {f"domain_{a}": 10 * (1 - math.exp(-contribution[a])) for a in levels}
        rewards, infos, terminations, truncations = {}, {}, {}, {}
        for agent, level in levels.items():
            others = sum(levels[b] > 0 for b in levels if b != agent) / n_others
            payout = self._value[agent] * level * (0.8 + 0.4 * others)
            cost = self._cost[agent] * level**2
            reward = payout - cost + cfg.noise * float(self._rng.standard_normal())
            self._spent[agent] += cost
            self._last[agent] = (level, others, reward)
            rewards[agent] = reward
            terminations[agent] = self._spent[agent] >= cfg.budget
            truncations[agent] = self._round >= cfg.max_rounds and not terminations[agent]
            infos[agent] = {
                "participated": level > 0, "resource": level,
                "contribution": contribution[agent], "payout": payout, "cost_total": cost,
                "reward": reward, "global_score": global_score, "public_height": self._height,
                "domain_scores": domain_scores,
                "round": self._round,
            }
        observations = {a: self._observe(a) for a in levels}
        self.agents = [a for a in self.agents if not (terminations[a] or truncations[a])]
        return observations, rewards, terminations, truncations, infos

    def render(self) -> str:
        return f"round {self._round}/{self.config.max_rounds}, live: {', '.join(self.agents)}"

    def close(self) -> None:
        pass


def parallel_env(scenario: str = "default", *, seed: int = 0, run_dir: str | None = None,
                 device: str = "cpu", **overrides: Any) -> ParticipationGame:
    """Same calling convention as ``fedenv.parallel_env`` (``device`` is accepted and unused)."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r} (known: {', '.join(SCENARIOS)})")
    return ParticipationGame(replace(SCENARIOS[scenario], **overrides), seed=seed, run_dir=run_dir)


def read_scalars(run_dir) -> dict[str, list[tuple[int, float]]]:
    """Every TensorBoard scalar of a run folder as TensorBoard shows it (purges applied)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def read_text(run_dir, tag: str) -> list[str]:
    """The texts logged under ``tag`` (``SummaryWriter.add_text``) in a run folder."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"tensors": 0})
    acc.Reload()
    return [b"".join(e.tensor_proto.string_val).decode()
            for e in acc.Tensors(f"{tag}/text_summary")]
