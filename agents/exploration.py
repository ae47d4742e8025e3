"""Epsilon-greedy exploration with a per-episode decay schedule."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agents.config import ConfigError, check_range


@dataclass(frozen=True)
class EpsilonSchedule:
    """``epsilon(e) = max(end, start * decay**e)`` after ``e`` finished training episodes."""

    start: float = 1.0
    end: float = 0.05
    decay: float = 0.95

    def __post_init__(self) -> None:
        check_range("epsilon_start", self.start, low=0.0, high=1.0)
        check_range("epsilon_end", self.end, low=0.0, high=1.0)
        check_range("epsilon_decay", self.decay, low=0.0, high=1.0)
        if self.end > self.start:
            raise ConfigError("epsilon_end", f"must be <= epsilon_start ({self.start}), got {self.end}")

    def value(self, episodes_done: int) -> float:
        return max(self.end, self.start * self.decay**episodes_done)


def greedy_action(q_values: np.ndarray, rng: np.random.Generator) -> int:
    """Index of the largest value; ties broken uniformly at random."""
    best = np.flatnonzero(q_values == q_values.max())
    return int(best[0]) if best.size == 1 else int(rng.choice(best))


def epsilon_greedy(q_values: np.ndarray, epsilon: float, rng: np.random.Generator) -> int:
    """A uniformly random action with probability ``epsilon``, else :func:`greedy_action`."""
    if epsilon > 0.0 and rng.random() < epsilon:
        return int(rng.integers(q_values.shape[-1]))
    return greedy_action(q_values, rng)
