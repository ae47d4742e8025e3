"""Stable-Baselines3 on a PettingZoo ParallelEnv, with parameter sharing.

:class:`ParallelEnvVecEnv` is an SB3 ``VecEnv`` in which every agent of one ParallelEnv is one
slot, so a single SB3 policy (PPO, DQN, ...) acts for, and learns from, all organizations.
All agents must share one observation space and one action space.

Agents that finish early: on the step an agent terminates (or is truncated) its slot reports
``done`` with ``infos[i]["terminal_observation"]``; until the whole env finishes, the slot then
holds a placeholder ("black death", as in SuperSuit): a zero observation, reward 0, its actions
ignored. When every agent is done the env is reset (auto-reset), and the placeholder slots end
their episode too (``done``, zero terminal observation, value 0). Each real agent episode adds
``infos[i]["episode"] = {"r", "l", "t"}``, so SB3's ``rollout/ep_rew_mean`` counts real episodes only.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvStepReturn


class ParallelEnvVecEnv(VecEnv):
    """An SB3 VecEnv over one ParallelEnv: slot ``i`` is ``env.possible_agents[i]``."""

    def __init__(self, env: ParallelEnv) -> None:
        self.env = env
        self.agent_names = list(env.possible_agents)
        if not self.agent_names:
            raise ValueError("the env has no agents")
        first = self.agent_names[0]
        obs_space, act_space = env.observation_space(first), env.action_space(first)
        for agent in self.agent_names:
            if env.observation_space(agent) != obs_space or env.action_space(agent) != act_space:
                raise ValueError(f"parameter sharing needs identical spaces; {agent!r} differs "
                                 f"from {first!r}")
        super().__init__(len(self.agent_names), obs_space, act_space)
        self._actions: np.ndarray | None = None
        self._placeholders: set[int] = set()
        self._returns = np.zeros(self.num_envs, dtype=np.float64)
        self._lengths = np.zeros(self.num_envs, dtype=np.int64)
        self._start = time.perf_counter()

    # -- stepping --------------------------------------------------------------------------
    def reset(self) -> np.ndarray:
        options = self._options[0] or None
        observations, infos = self.env.reset(seed=self._seeds[0], options=options)
        self._reset_seeds()
        self._reset_options()
        return self._start_episode(observations, infos)

    def _start_episode(self, observations: dict, infos: dict) -> np.ndarray:
        self.reset_infos = [dict(infos.get(a, {})) for a in self.agent_names]
        self._placeholders = set()
        self._returns[:] = 0.0
        self._lengths[:] = 0
        return self._stack(observations)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("step_wait() called without step_async()")
        live = set(self.env.agents)
        actions = {a: self._action(self._actions[i]) for i, a in enumerate(self.agent_names)
                   if a in live}
        self._actions = None
        observations, rewards, terminations, truncations, infos = self.env.step(actions)
        rews = np.zeros(self.num_envs, dtype=np.float32)
        dones = np.zeros(self.num_envs, dtype=bool)
        out_infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for i, agent in enumerate(self.agent_names):
            if agent not in actions:
                continue
            rews[i] = rewards[agent]
            self._returns[i] += rewards[agent]
            self._lengths[i] += 1
            out_infos[i] = dict(infos.get(agent, {}))
            terminated, truncated = bool(terminations[agent]), bool(truncations[agent])
            if terminated or truncated:
                dones[i] = True
                out_infos[i]["terminal_observation"] = np.asarray(observations[agent])
                out_infos[i]["TimeLimit.truncated"] = truncated and not terminated
                out_infos[i]["episode"] = {"r": float(self._returns[i]),
                                           "l": int(self._lengths[i]),
                                           "t": round(time.perf_counter() - self._start, 6)}
                self._placeholders.add(i)
        if self.env.agents:
            return self._stack(observations), rews, dones, out_infos
        # Every agent is done: auto-reset. Slots that were placeholders before this step end now.
        for i in self._placeholders:
            if not dones[i]:
                dones[i] = True
                out_infos[i] = {"terminal_observation": self._placeholder(),
                                "TimeLimit.truncated": False}
        reset_observations, reset_infos = self.env.reset()
        return self._start_episode(reset_observations, reset_infos), rews, dones, out_infos

    def _action(self, action: np.ndarray) -> Any:
        if isinstance(self.action_space, spaces.Discrete):
            return int(action)
        return np.asarray(action)

    def _placeholder(self) -> np.ndarray:
        return np.zeros(self.observation_space.shape, dtype=self.observation_space.dtype)

    def _stack(self, observations: dict) -> np.ndarray:
        return np.stack([np.asarray(observations[a], dtype=self.observation_space.dtype)
                         if a in observations and i not in self._placeholders
                         else self._placeholder()
                         for i, a in enumerate(self.agent_names)])

    def close(self) -> None:
        self.env.close()

    # -- attribute access: every slot is the same env ---------------------------------------
    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        if attr_name == "render_mode":
            value = getattr(self.env, "render_mode", None)
        else:
            value = getattr(self.env, attr_name)
        return [value] * len(self._get_indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        setattr(self.env, attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None,
                   **method_kwargs: Any) -> list[Any]:
        """Calls the method once (all slots share the env) and repeats the result per slot."""
        result = getattr(self.env, method_name)(*method_args, **method_kwargs)
        return [result] * len(self._get_indices(indices))

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        return [False] * len(self._get_indices(indices))


def train_shared_policy(env: ParallelEnv, *, algo: str = "ppo", total_timesteps: int,
                        seed: int = 0, device: str = "cpu", tensorboard_log: str | None = None,
                        **algo_kwargs: Any):
    """Train one SB3 policy for every agent of ``env``; returns the trained SB3 model.

    ``total_timesteps`` counts agent-steps (one env round with N live agents is N timesteps).
    """
    from stable_baselines3 import A2C, DQN, PPO

    classes = {"ppo": PPO, "dqn": DQN, "a2c": A2C}
    if algo not in classes:
        raise ValueError(f"algo: unknown SB3 algorithm {algo!r} (known: {', '.join(classes)})")
    venv = ParallelEnvVecEnv(env)
    model = classes[algo]("MlpPolicy", venv, seed=seed, device=device,
                          tensorboard_log=tensorboard_log, verbose=0, **algo_kwargs)
    model.learn(total_timesteps=total_timesteps)
    return model


def shared_policy_actions(model: Any, observations: dict[str, np.ndarray],
                          agents: Sequence[str], *, deterministic: bool = True) -> dict[str, int]:
    """Actions of a trained shared SB3 model for the live agents in ``observations``."""
    live = [a for a in agents if a in observations]
    if not live:
        return {}
    batch = np.stack([np.asarray(observations[a]) for a in live])
    actions, _ = model.predict(batch, deterministic=deterministic)
    return {a: int(act) for a, act in zip(live, actions)}
