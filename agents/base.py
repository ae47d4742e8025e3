"""The policy interface: what a training loop sees of an agent.

A :class:`Policy` controls one agent of any PettingZoo ``ParallelEnv`` whose action space is
``Discrete``: it acts on an observation, learns from a :class:`Transition`, and saves/loads its
whole state (tables, networks, optimizer, replay buffer, random generator). It depends only on
gymnasium spaces, numpy and torch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from gymnasium import spaces

from agents.serialization import atomic_save, load_state

POLICY_FILE_FORMAT = "agents.policy/1"


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
    """A 32-bit seed for a sub-component (``path`` e.g. ``(agent_index,)``), stable across runs."""
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

    def signature(self) -> dict[str, Any]:
        """What a saved state must match to be loaded here."""
        return {
            "class": type(self).__name__,
            "observation_shape": list(self.observation_space.shape or ()),
            "n_actions": self.n_actions,
        }

    def save(self, path: str | Path) -> None:
        """Write this policy (and its shared parts) to ``path`` atomically."""
        atomic_save(
            {
                "format": POLICY_FILE_FORMAT,
                "signature": self.signature(),
                "state": self.state_dict(),
                "shared": {name: part.state_dict() for name, part in self.shared_parts().items()},
            },
            path,
        )

    def load(self, path: str | Path) -> None:
        """Restore a state written by :meth:`save` of a policy with the same signature."""
        saved = load_state(path)
        if not isinstance(saved, dict) or saved.get("format") != POLICY_FILE_FORMAT:
            raise ValueError(f"{path}: not a saved policy (format {POLICY_FILE_FORMAT!r})")
        if saved["signature"] != self.signature():
            raise ValueError(f"{path}: saved policy {saved['signature']} does not match "
                             f"{self.signature()}")
        for name, part in self.shared_parts().items():
            part.load_state_dict(saved["shared"][name])
        self.load_state_dict(saved["state"])
