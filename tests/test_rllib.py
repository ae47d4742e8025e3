"""RLlib PPO trains on the tiny scenario with 2 env runners on a local Ray, unpatched."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("ray.rllib", reason="needs the optional 'rllib' extra")

import ray

from fedenv.errors import ConfigError
from fedenv.integrations.rllib import SHARED_POLICY, env_creator, ppo_config

pytestmark = pytest.mark.usefixtures("shared_cache")


def weights(algo) -> np.ndarray:
    state = algo.get_module(SHARED_POLICY).get_state()
    return np.concatenate([np.ravel(np.asarray(v)) for _, v in sorted(state.items())])


def test_ppo_trains_with_two_env_runners_on_a_local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        config = ppo_config("tiny", num_env_runners=2).training(
            train_batch_size_per_learner=24, minibatch_size=12, num_epochs=1
        )
        algo = config.build_algo()
        try:
            before = weights(algo)
            for _ in range(2):
                result = algo.train()
            runners = result["env_runners"]
            assert runners["num_env_steps_sampled_lifetime"] >= 48
            assert runners["num_episodes_lifetime"] >= 2  # episodes ended (RLlib's __all__)
            assert math.isfinite(runners["episode_return_mean"])
            assert not np.allclose(weights(algo), before)  # the shared policy learned
        finally:
            algo.stop()
    finally:
        ray.shutdown()


def test_the_creator_checks_its_own_key():
    with pytest.raises(ConfigError, match="processes: must be an integer >= 1, got 0"):
        env_creator({"scenario": "tiny", "processes": 0})
