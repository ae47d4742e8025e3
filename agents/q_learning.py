"""Independent tabular Q-learning (Watkins), one table per agent.

Observations are discretized (:mod:`agents.discretizer`); the table is sparse (a row per visited
state, created at ``initial_q``), so fine discretizations cost memory only where the agent goes.
Update: ``Q[s,a] += lr * (r + gamma * max_a' Q[s',a'] * (1 - terminated) - Q[s,a])``;
a time-limit truncation still bootstraps. Exploration is epsilon-greedy, decayed per episode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from agents.base import Policy, Transition
from agents.config import ConfigError, check_range
from agents.discretizer import make_discretizer
from agents.exploration import EpsilonSchedule, epsilon_greedy, greedy_action


@dataclass
class QLearningConfig:
    """Tabular Q-learning."""

    learning_rate: float = 0.3
    """step size of the Q-table update"""
    gamma: float = 0.9
    """discount factor"""
    epsilon_start: float = 1.0
    """exploration rate at the start"""
    epsilon_end: float = 0.05
    """lowest exploration rate"""
    epsilon_decay: float = 0.9
    """exploration rate multiplier per training episode"""
    bins: tuple[int, ...] = (1,)
    """bins per observation field (the last repeats; 1 ignores one; fedenv '1 3 1': the budget)"""
    initial_q: float = 0.0
    """initial value of unseen Q entries"""

    def __post_init__(self) -> None:
        check_range("learning_rate", self.learning_rate, low=0.0, high=1.0, low_open=True)
        check_range("gamma", self.gamma, low=0.0, high=1.0)
        check_range("initial_q", self.initial_q)
        self.bins = tuple(self.bins)
        if not self.bins or any(isinstance(b, bool) or not isinstance(b, int) or b < 1
                                for b in self.bins):
            raise ConfigError("bins", f"must be integers >= 1, got {self.bins!r}")
        EpsilonSchedule(self.epsilon_start, self.epsilon_end, self.epsilon_decay)  # validates

    @property
    def schedule(self) -> EpsilonSchedule:
        return EpsilonSchedule(self.epsilon_start, self.epsilon_end, self.epsilon_decay)


class QLearningAgent(Policy):
    """Epsilon-greedy tabular Q-learner over a discretized observation."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, *, seed: int,
                 config: QLearningConfig | None = None) -> None:
        super().__init__(observation_space, action_space, seed=seed)
        self.config = config or QLearningConfig()
        self.discretizer = make_discretizer(observation_space, self.config.bins)
        self.schedule = self.config.schedule
        self.episodes_done = 0
        self.table: dict[int, np.ndarray] = {}

    @property
    def epsilon(self) -> float:
        return self.schedule.value(self.episodes_done)

    def q_values(self, obs: np.ndarray) -> np.ndarray:
        """The Q row of ``obs``'s state (a fresh ``initial_q`` row if never updated)."""
        row = self.table.get(self.discretizer(obs))
        if row is None:
            return np.full(self.n_actions, self.config.initial_q, dtype=np.float64)
        return row.copy()

    def act(self, obs: np.ndarray, *, explore: bool = True) -> int:
        q = self.q_values(obs)
        return epsilon_greedy(q, self.epsilon, self.rng) if explore else greedy_action(q, self.rng)

    def learn(self, transition: Transition) -> dict[str, float]:
        state = self.discretizer(transition.obs)
        row = self.table.get(state)
        if row is None:
            row = self.table[state] = np.full(self.n_actions, self.config.initial_q, np.float64)
        target = float(transition.reward)
        if not transition.terminated:
            target += self.config.gamma * float(self.q_values(transition.next_obs).max())
        td_error = target - row[transition.action]
        row[transition.action] += self.config.learning_rate * td_error
        return {"td_error": abs(float(td_error))}

    def end_episode(self) -> None:
        self.episodes_done += 1

    def state_dict(self) -> dict[str, Any]:
        states = sorted(self.table)
        values = (np.stack([self.table[s] for s in states]) if states
                  else np.zeros((0, self.n_actions), dtype=np.float64))
        return {
            **super().state_dict(),
            "episodes_done": self.episodes_done,
            "states": torch.tensor(states, dtype=torch.int64),
            "values": torch.from_numpy(values.copy()),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        values = state["values"].numpy()
        if values.ndim != 2 or values.shape[1] != self.n_actions or values.dtype != np.float64:
            raise ValueError(f"Q-table of shape {values.shape} / {values.dtype} does not fit "
                             f"{self.n_actions} actions (float64)")
        super().load_state_dict(state)
        self.episodes_done = int(state["episodes_done"])
        self.table = {int(s): values[i].copy() for i, s in enumerate(state["states"].tolist())}
