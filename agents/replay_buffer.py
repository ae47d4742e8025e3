"""A fixed-capacity ring buffer of transitions with seeded uniform sampling."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class Batch:
    obs: torch.Tensor  # float32 [B, D]
    actions: torch.Tensor  # int64 [B]
    rewards: torch.Tensor  # float32 [B]
    next_obs: torch.Tensor  # float32 [B, D]
    terminated: torch.Tensor  # float32 [B], 1.0 where the episode ended for good


class ReplayBuffer:
    """Stores the last ``capacity`` transitions (oldest overwritten first)."""

    def __init__(self, capacity: int, obs_dim: int, *, seed: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.actions = np.zeros(capacity, dtype=np.int64)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.terminated = np.zeros(capacity, dtype=np.float32)
        self.pos = 0
        self.size = 0
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.size

    def add(self, obs: np.ndarray, action: int, reward: float, next_obs: np.ndarray,
            terminated: bool) -> None:
        i = self.pos
        self.obs[i], self.next_obs[i] = obs, next_obs
        self.actions[i], self.rewards[i], self.terminated[i] = action, reward, float(terminated)
        self.pos = (self.pos + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int, device: torch.device) -> Batch:
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx = self.rng.integers(0, self.size, size=batch_size)

        def tensor(array: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(array[idx]).to(device)

        return Batch(tensor(self.obs), tensor(self.actions), tensor(self.rewards),
                     tensor(self.next_obs), tensor(self.terminated))

    def state_dict(self) -> dict[str, Any]:
        n = self.size
        return {
            "pos": self.pos,
            "size": n,
            "rng": self.rng.bit_generator.state,
            **{name: torch.from_numpy(getattr(self, name)[:n].copy())
               for name in ("obs", "next_obs", "actions", "rewards", "terminated")},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        n = int(state["size"])
        if n > self.capacity or state["obs"].shape[1:] != self.obs.shape[1:]:
            raise ValueError(f"saved buffer ({n} x {tuple(state['obs'].shape[1:])}) does not fit "
                             f"capacity {self.capacity} x {self.obs.shape[1:]}")
        for name in ("obs", "next_obs", "actions", "rewards", "terminated"):
            target = getattr(self, name)
            target[:] = 0
            target[:n] = state[name].numpy()
        self.pos, self.size = int(state["pos"]), n
        self.rng.bit_generator.state = state["rng"]
