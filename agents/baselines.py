"""Fixed and myopic baseline policies (level k = action k; 0 sits out)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from agents.base import Policy, Transition
from agents.exploration import greedy_action


class AlwaysMax(Policy):
    """Always takes part at the highest level."""

    def act(self, obs: np.ndarray, *, explore: bool = True) -> int:
        return self.n_actions - 1


class AlwaysMin(Policy):
    """Always takes part at the lowest level (action 1)."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, *, seed: int):
        super().__init__(observation_space, action_space, seed=seed)
        if self.n_actions < 2:
            raise ValueError(f"AlwaysMin needs at least one participation level, got {action_space}")

    def act(self, obs: np.ndarray, *, explore: bool = True) -> int:
        return 1


class Never(Policy):
    """Always sits out (action 0)."""

    def act(self, obs: np.ndarray, *, explore: bool = True) -> int:
        return 0


class RandomPolicy(Policy):
    """A uniformly random level (sitting out included), from the policy's own seeded generator."""

    def act(self, obs: np.ndarray, *, explore: bool = True) -> int:
        return int(self.rng.integers(self.n_actions))


class MyopicGreedy(Policy):
    """Picks the level whose last observed net reward is best.

    While exploring, a level never tried yet is tried first (untried levels in random order);
    afterwards ties between equally good levels are broken at random. Greedy evaluation
    (``explore=False``) never picks an untried level unless none has been tried.
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, *, seed: int):
        super().__init__(observation_space, action_space, seed=seed)
        self.last_reward = np.full(self.n_actions, np.nan, dtype=np.float64)

    def act(self, obs: np.ndarray, *, explore: bool = True) -> int:
        untried = np.flatnonzero(np.isnan(self.last_reward))
        if untried.size == self.n_actions or (explore and untried.size):
            return int(self.rng.choice(untried))
        return greedy_action(np.nan_to_num(self.last_reward, nan=-np.inf), self.rng)

    def learn(self, transition: Transition) -> dict[str, float]:
        self.last_reward[transition.action] = float(transition.reward)
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "last_reward": torch.from_numpy(self.last_reward.copy())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.last_reward = state["last_reward"].numpy().astype(np.float64).copy()
