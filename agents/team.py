"""A team: the policies that control every agent of a PettingZoo ParallelEnv."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from agents.base import Policy, Stateful, Transition


class Team:
    """Maps each agent to its :class:`Policy` and steps them together.

    Parts shared between policies (one network for several agents) are saved once.
    """

    def __init__(self, policies: Mapping[str, Policy], assignment: Mapping[str, str]) -> None:
        if set(policies) != set(assignment):
            raise ValueError("policies and assignment must name the same agents")
        self.policies = dict(policies)
        self.assignment = dict(assignment)

    @property
    def agents(self) -> list[str]:
        return list(self.policies)

    def act(self, observations: Mapping[str, np.ndarray], *, explore: bool = True) -> dict[str, int]:
        """Actions of the agents present in ``observations`` (the live ones)."""
        return {a: self.policies[a].act(obs, explore=explore) for a, obs in observations.items()}

    def learn(self, observations: Mapping[str, np.ndarray], actions: Mapping[str, int],
              rewards: Mapping[str, float], next_observations: Mapping[str, np.ndarray],
              terminations: Mapping[str, bool], truncations: Mapping[str, bool]) -> dict[str, float]:
        """Feed each acting agent its transition; returns each metric's mean over agents."""
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        for agent, action in actions.items():
            transition = Transition(
                obs=observations[agent], action=int(action), reward=float(rewards[agent]),
                next_obs=next_observations[agent], terminated=bool(terminations[agent]),
                truncated=bool(truncations[agent]))
            for key, value in self.policies[agent].learn(transition).items():
                sums[key] = sums.get(key, 0.0) + value
                counts[key] = counts.get(key, 0) + 1
        return {key: sums[key] / counts[key] for key in sums}

    def end_episode(self) -> None:
        for policy in self.policies.values():
            policy.end_episode()

    @property
    def epsilon(self) -> float | None:
        """Mean exploration rate of the epsilon-greedy policies (None if there are none)."""
        values = [p.epsilon for p in self.policies.values() if p.epsilon is not None]
        return float(np.mean(values)) if values else None

    def _shared_parts(self) -> dict[str, Stateful]:
        parts: dict[str, Stateful] = {}
        for policy in self.policies.values():
            for name, part in policy.shared_parts().items():
                if parts.setdefault(name, part) is not part:
                    raise ValueError(f"two different shared parts are both named {name!r}")
        return parts

    def state_dict(self) -> dict[str, Any]:
        return {
            "assignment": dict(self.assignment),
            "policies": {agent: policy.state_dict() for agent, policy in self.policies.items()},
            "shared": {name: part.state_dict() for name, part in self._shared_parts().items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["assignment"] != self.assignment:
            raise ValueError(f"saved team {state['assignment']} does not match {self.assignment}")
        for name, part in self._shared_parts().items():
            part.load_state_dict(state["shared"][name])
        for agent, policy in self.policies.items():
            policy.load_state_dict(state["policies"][agent])
