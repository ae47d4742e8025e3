"""RLlib (extra ``rllib``): fedenv on RLlib's multi-agent env runners, one env per runner process.

    import ray
    from fedenv.integrations.rllib import ppo_config

    ray.init()                                   # or ray.init(address="auto") on a cluster
    algo = ppo_config("tiny", num_env_runners=2).build_algo()
    for _ in range(10):
        print(algo.train()["env_runners"]["episode_return_mean"])

The env goes through RLlib's own ``ParallelPettingZooEnv`` unchanged: the last round truncates
every live organization, so RLlib's ``__all__`` ends the episode, and ``render()`` takes the
argument RLlib passes.  RLlib's default modules do not read action masks: a masked level plays
the highest level the organization can still afford (:mod:`fedenv.actions`).

Every env runner builds its own env (its own temporary run folder, or ``run_dir`` from the env
config, which one runner only should name).  ``processes``: how many env runners share one
machine; each runner's engine then takes its share of the CPUs as torch threads (one each when
runners = cores; :func:`fedenv.device.cpu_threads`), which matters: on 2 cores, 2 runners with
2 threads each trained 10-20x slower than with 1.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv
from ray.tune.registry import register_env

from fedenv.device import PROCESSES_VARIABLE
from fedenv.errors import ConfigError
from fedenv.fedorg import parallel_env

ENV_NAME = "fedorg_v0"
SHARED_POLICY = "shared"


def env_creator(env_config: Mapping[str, Any]) -> ParallelPettingZooEnv:
    """RLlib's env creator: ``env_config`` holds :func:`fedenv.parallel_env`'s arguments
    (``scenario`` first) and ``processes``, the env processes that share this machine."""
    config = dict(env_config)
    processes = config.pop("processes", None)
    if processes is not None:
        if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
            raise ConfigError("processes", f"must be an integer >= 1, got {processes!r}")
        os.environ[PROCESSES_VARIABLE] = str(processes)  # this runner process's torch threads
    return ParallelPettingZooEnv(parallel_env(**config))


def register(name: str = ENV_NAME) -> str:
    """Register :func:`env_creator` with Ray Tune under ``name``; returns the name."""
    register_env(name, env_creator)
    return name


def shared_policy(agent_id: str, episode: Any = None, **kwargs: Any) -> str:
    """Every organization acts through one policy (parameter sharing)."""
    return SHARED_POLICY


def ppo_config(
    scenario: str = "default",
    *,
    num_env_runners: int = 2,
    processes: int | None = None,
    **env_kwargs: Any,
) -> PPOConfig:
    """PPO with one shared policy over every organization, sampling ``num_env_runners`` envs in
    as many processes (``processes`` per machine, default ``num_env_runners``).  ``env_kwargs``
    go to :func:`fedenv.parallel_env` (overrides such as ``max_rounds``, ``mechanism``).  Tune
    the rest on the returned config (``.training(...)``, ``.env_runners(...)``)."""
    if isinstance(num_env_runners, bool) or not isinstance(num_env_runners, int):
        raise ConfigError("num_env_runners", f"must be an integer, got {num_env_runners!r}")
    if num_env_runners < 0:
        raise ConfigError("num_env_runners", f"must be >= 0, got {num_env_runners}")
    env_config = {
        "scenario": scenario,
        "processes": processes or max(1, num_env_runners),
        **env_kwargs,
    }
    return (
        PPOConfig()
        .environment(register(), env_config=env_config)
        .env_runners(num_env_runners=num_env_runners, num_cpus_per_env_runner=1)
        .multi_agent(policies={SHARED_POLICY}, policy_mapping_fn=shared_policy)
    )
