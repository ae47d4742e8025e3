"""Policies for organizations in any PettingZoo ParallelEnv with Discrete actions.

Depends only on gymnasium spaces, numpy, torch and pettingzoo (never on fedenv).
See docs/agents.md. The SB3 adapter lives in :mod:`agents.sb3` (imported on demand).
"""

from __future__ import annotations

from agents.base import Policy, Transition, derive_seed
from agents.baselines import AlwaysMax, AlwaysMin, MyopicGreedy, Never, RandomPolicy
from agents.dqn import DQNAgent, DQNConfig, SharedDQNAgent
from agents.q_learning import QLearningAgent, QLearningConfig
from agents.registry import ALGORITHMS, AgentSettings, build_team, resolve_assignment
from agents.team import Team

__all__ = [
    "ALGORITHMS", "AgentSettings", "AlwaysMax", "AlwaysMin", "DQNAgent", "DQNConfig",
    "MyopicGreedy", "Never", "Policy", "QLearningAgent", "QLearningConfig", "RandomPolicy",
    "SharedDQNAgent", "Team", "Transition", "build_team", "derive_seed", "resolve_assignment",
]
