"""Deep Q-network (Mnih et al. 2015) in torch, independent or shared by all agents.

``DQNAgent``: one MLP Q-network per agent, with a replay buffer and a target network that is
hard-copied every ``target_update_interval`` gradient steps (CleanRL's ``dqn.py``, per agent).
``SharedDQNAgent``: parameter sharing; every agent is a view on one :class:`DQNLearner` whose
input is the observation plus the agent's identity one-hot, and all agents fill one buffer.
Box fields with finite bounds are scaled to [-1, 1]; exploration is epsilon-greedy, decayed per
episode. Networks are initialised from the agent's seed, so runs are reproducible on CPU.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn

from agents.base import Policy, Stateful, Transition
from agents.config import check_int, check_range
from agents.exploration import EpsilonSchedule, greedy_action
from agents.replay_buffer import ReplayBuffer


@dataclass
class DQNConfig:
    """Deep Q-network (independent or shared)."""

    learning_rate: float = 1e-3
    """Adam learning rate"""
    gamma: float = 0.9
    """discount factor"""
    hidden_size: int = 64
    """width of the two hidden layers"""
    buffer_size: int = 10_000
    """replay buffer capacity"""
    batch_size: int = 64
    """minibatch size of a gradient step"""
    learning_starts: int = 64
    """transitions stored before the first gradient step"""
    train_frequency: int = 1
    """one gradient step every this many transitions"""
    target_update_interval: int = 50
    """gradient steps between target network copies"""
    max_grad_norm: float = 10.0
    """gradient norm clip"""
    epsilon_start: float = 1.0
    """exploration rate at the start"""
    epsilon_end: float = 0.05
    """lowest exploration rate"""
    epsilon_decay: float = 0.95
    """exploration rate multiplier per training episode"""

    def __post_init__(self) -> None:
        check_range("learning_rate", self.learning_rate, low=0.0, low_open=True)
        check_range("gamma", self.gamma, low=0.0, high=1.0)
        check_range("max_grad_norm", self.max_grad_norm, low=0.0, low_open=True)
        for name in ("hidden_size", "buffer_size", "batch_size", "train_frequency",
                     "target_update_interval"):
            check_int(name, getattr(self, name), low=1)
        check_int("learning_starts", self.learning_starts, low=0)
        EpsilonSchedule(self.epsilon_start, self.epsilon_end, self.epsilon_decay)  # validates

    @property
    def schedule(self) -> EpsilonSchedule:
        return EpsilonSchedule(self.epsilon_start, self.epsilon_end, self.epsilon_decay)


class QNetwork(nn.Module):
    def __init__(self, input_dim: int, n_actions: int, hidden_size: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(input_dim, hidden_size), nn.ReLU(),
            nn.Linear(hidden_size, hidden_size), nn.ReLU(),
            nn.Linear(hidden_size, n_actions),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ObservationEncoder:
    """Flattens a Box observation, scaling finite-bounded fields to [-1, 1]."""

    def __init__(self, space: spaces.Space) -> None:
        if not isinstance(space, spaces.Box):
            raise TypeError(f"DQN agents need a Box observation space, got {space!r}")
        low = np.asarray(space.low, np.float64).reshape(-1)
        high = np.asarray(space.high, np.float64).reshape(-1)
        finite = np.isfinite(low) & np.isfinite(high) & (high > low)
        self.dim = low.size
        self._center = np.where(finite, (low + high) / 2, 0.0)
        self._half = np.where(finite, (high - low) / 2, 1.0)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        x = np.asarray(obs, np.float64).reshape(-1)
        if x.size != self.dim:
            raise ValueError(f"observation has {x.size} values, the space has {self.dim}")
        return ((x - self._center) / self._half).astype(np.float32)


class DQNLearner:
    """Q-network, target network, Adam optimizer and replay buffer: the learning state."""

    def __init__(self, input_dim: int, n_actions: int, *, config: DQNConfig, seed: int,
                 device: str | torch.device = "cpu") -> None:
        self.config = config
        self.device = torch.device(device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.q_network = QNetwork(input_dim, n_actions, config.hidden_size).to(self.device)
        self.target_network = copy.deepcopy(self.q_network)
        self.optimizer = torch.optim.Adam(self.q_network.parameters(), lr=config.learning_rate)
        self.buffer = ReplayBuffer(config.buffer_size, input_dim, seed=seed + 1)
        self.transitions = 0
        self.gradient_steps = 0

    def q_values(self, features: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(features).to(self.device).unsqueeze(0)
            return self.q_network(x)[0].double().cpu().numpy()

    def add(self, features: np.ndarray, action: int, reward: float, next_features: np.ndarray,
            terminated: bool) -> dict[str, float]:
        """Store a transition; take a gradient step when due. Returns the step's metrics."""
        self.buffer.add(features, action, reward, next_features, terminated)
        self.transitions += 1
        cfg = self.config
        if self.transitions < max(cfg.learning_starts, 1) or self.transitions % cfg.train_frequency:
            return {}
        return self._gradient_step()

    def _gradient_step(self) -> dict[str, float]:
        batch = self.buffer.sample(self.config.batch_size, self.device)
        with torch.no_grad():
            next_q = self.target_network(batch.next_obs).max(dim=1).values
            target = batch.rewards + self.config.gamma * next_q * (1.0 - batch.terminated)
        q = self.q_network(batch.obs).gather(1, batch.actions.unsqueeze(1)).squeeze(1)
        loss = F.mse_loss(q, target)
        self.optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(self.q_network.parameters(), self.config.max_grad_norm)
        self.optimizer.step()
        self.gradient_steps += 1
        if self.gradient_steps % self.config.target_update_interval == 0:
            self.target_network.load_state_dict(self.q_network.state_dict())
        return {"td_error": float((target - q).detach().abs().mean()), "td_loss": float(loss.detach())}

    def state_dict(self) -> dict[str, Any]:
        return {
            "q_network": self.q_network.state_dict(),
            "target_network": self.target_network.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "buffer": self.buffer.state_dict(),
            "transitions": self.transitions,
            "gradient_steps": self.gradient_steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.q_network.load_state_dict(state["q_network"])
        self.target_network.load_state_dict(state["target_network"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.buffer.load_state_dict(state["buffer"])
        self.transitions = int(state["transitions"])
        self.gradient_steps = int(state["gradient_steps"])


class DQNAgent(Policy):
    """Independent DQN: this agent's own network, buffer and optimizer."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, *, seed: int,
                 config: DQNConfig | None = None, device: str | torch.device = "cpu") -> None:
        super().__init__(observation_space, action_space, seed=seed)
        self.config = config or DQNConfig()
        self.schedule = self.config.schedule
        self.encoder = ObservationEncoder(observation_space)
        self.episodes_done = 0
        self.learner = self._make_learner(seed, device)

    def _make_learner(self, seed: int, device: str | torch.device) -> DQNLearner:
        return DQNLearner(self.encoder.dim, self.n_actions, config=self.config, seed=seed,
                          device=device)

    def features(self, obs: np.ndarray) -> np.ndarray:
        """The network input for ``obs``."""
        return self.encoder(obs)

    @property
    def epsilon(self) -> float:
        return self.schedule.value(self.episodes_done)

    def q_values(self, obs: np.ndarray) -> np.ndarray:
        return self.learner.q_values(self.features(obs))

    def act(self, obs: np.ndarray, *, explore: bool = True) -> int:
        if explore and self.epsilon > 0.0 and self.rng.random() < self.epsilon:
            return int(self.rng.integers(self.n_actions))
        return greedy_action(self.q_values(obs), self.rng)

    def learn(self, transition: Transition) -> dict[str, float]:
        return self.learner.add(self.features(transition.obs), transition.action,
                                float(transition.reward), self.features(transition.next_obs),
                                transition.terminated)

    def end_episode(self) -> None:
        self.episodes_done += 1

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "episodes_done": self.episodes_done,
                "learner": self.learner.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.episodes_done = int(state["episodes_done"])
        self.learner.load_state_dict(state["learner"])


class SharedDQNAgent(DQNAgent):
    """One agent's view on a shared :class:`DQNLearner` (its identity one-hot in the input)."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, *, seed: int,
                 learner: DQNLearner, index: int, n_agents: int,
                 config: DQNConfig | None = None) -> None:
        if not 0 <= index < n_agents:
            raise ValueError(f"index {index} outside 0..{n_agents - 1}")
        self._shared_learner = learner
        self.index, self.n_agents = index, n_agents
        super().__init__(observation_space, action_space, seed=seed, config=config)

    @staticmethod
    def input_dim(observation_space: spaces.Space, n_agents: int) -> int:
        return ObservationEncoder(observation_space).dim + n_agents

    def _make_learner(self, seed: int, device: str | torch.device) -> DQNLearner:
        return self._shared_learner

    def features(self, obs: np.ndarray) -> np.ndarray:
        identity = np.zeros(self.n_agents, dtype=np.float32)
        identity[self.index] = 1.0
        return np.concatenate([self.encoder(obs), identity])

    def shared_parts(self) -> dict[str, Stateful]:
        return {"shared_dqn": self.learner}

    def state_dict(self) -> dict[str, Any]:
        return {**Policy.state_dict(self), "episodes_done": self.episodes_done}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        Policy.load_state_dict(self, state)
        self.episodes_done = int(state["episodes_done"])
