"""The policy interface: what a training loop sees of an agent.

A :class:`Policy` controls one agent of any PettingZoo ``ParallelEnv`` whose action space is
``Discrete``: it acts on an observation, learns from a :class:`Transition`, and gives and takes
its whole state (tables, networks, optimizer, replay buffer, random generator) as a
``state_dict``, which the team's checkpoints save. It depends only on gymnasium spaces, numpy and
torch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from gymnasium import spaces


@dataclass(frozen=True)
class Transition:
    """One agent's step: ``obs --action--> reward, next_obs``.

    ``terminated``: the agent's episode ended for good (no bootstrapping from ``next_obs``).
    ``truncated``: the episode was cut by a time limit (``next_obs`` still has a value).
    """

    obs: np.ndarray
    action: int
    reward: float
    next_obs: np.ndarray
    terminated: bool
    truncated: bool


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def derive_seed(seed: int, *path: int) -> int:
    """A 32-bit seed for a sub-component, stable across runs: numpy's ``SeedSequence`` over
    ``[seed, *path]`` (every part an integer >= 0).

    The agents' paths: ``(seed, 0, agent_index)`` a policy, ``(seed, 1, group_index)`` a shared
    network, ``(seed, 2, episode)`` a training episode's reset, ``(seed, 3, episode)`` a greedy
    evaluation episode's (:mod:`agents.rollout`).  fedenv's ``fedenv.seeding.derive_seed`` is
    the same rule (it also takes strings); agents keeps its own copy because it never imports
    fedenv.
    """
    return int(np.random.SeedSequence([seed, *path]).generate_state(1)[0])


class Policy(ABC):
    """One agent's decision rule over a ``Discrete(n)`` action space."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, *, seed: int):
        if not isinstance(action_space, spaces.Discrete) or int(action_space.start) != 0:
            raise TypeError(f"{type(self).__name__} needs a Discrete action space starting at 0, "
                            f"got {action_space!r}")
        self.observation_space = observation_space
        self.action_space = action_space
        self.n_actions = int(action_space.n)
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    @abstractmethod
    def act(self, obs: np.ndarray, *, explore: bool = True) -> int:
        """The action for ``obs``; ``explore=False`` asks for the greedy (evaluation) choice."""

    def learn(self, transition: Transition) -> dict[str, float]:
        """Update from one transition; returns metrics such as ``{"td_error": ...}``."""
        return {}

    def end_episode(self) -> None:
        """Called once after every training episode (exploration schedules step here)."""

    @property
    def epsilon(self) -> float | None:
        """Current exploration rate, or None for policies without epsilon-greedy exploration."""
        return None

    def shared_parts(self) -> dict[str, Stateful]:
        """Named state shared with other policies (one network for several agents).

        A team saves each shared part once; :meth:`state_dict` covers only this policy's own state.
        """
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly where this policy is (tensors and plain values)."""
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
