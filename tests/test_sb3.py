"""The SB3 parameter-sharing adapter: VecEnv contract, early-finishing agents, training runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces
from support_envs import SCENARIOS, ParticipationGame, parallel_env

from agents.sb3 import ParallelEnvVecEnv, shared_policy_actions, train_shared_policy


@pytest.fixture(autouse=True)
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_every_agent_is_a_slot_and_the_env_auto_resets():
    venv = ParallelEnvVecEnv(parallel_env("tiny"))  # 3 orgs, 5 rounds
    venv.seed(4)
    obs = venv.reset()
    assert venv.num_envs == 3 and obs.shape == (3, 5) and obs.dtype == np.float32
    returns = np.zeros(3)
    for step in range(1, 6):
        obs, rewards, dones, infos = venv.step(np.array([2, 1, 3]))
        returns += rewards
        assert dones.tolist() == [step == 5] * 3
    assert obs[:, 0].tolist() == [0.0, 0.0, 0.0]  # observations of the new episode
    for i, info in enumerate(infos):
        assert info["TimeLimit.truncated"] is True
        assert info["terminal_observation"][0] == pytest.approx(1.0)  # round 5 of 5
        assert info["episode"]["l"] == 5
        assert info["episode"]["r"] == pytest.approx(returns[i], rel=1e-6)
        assert info["resource"] == [2, 1, 3][i]  # the env's own infos pass through


def test_agents_that_finish_early_hold_a_placeholder_until_the_env_resets():
    venv = ParallelEnvVecEnv(parallel_env("budget"))  # budget 1.5, 8 rounds
    venv.reset()
    actions = np.array([1, 3, 0])  # org_1 spends 4.5 at once; org_0 0.25 a round; org_2 nothing
    obs, rewards, dones, infos = venv.step(actions)
    assert dones.tolist() == [False, True, False]
    assert infos[1]["TimeLimit.truncated"] is False and infos[1]["episode"]["l"] == 1
    for step in range(2, 8):
        obs, rewards, dones, infos = venv.step(actions)
        assert obs[1].tolist() == [0.0] * 5 and rewards[1] == 0.0 and infos[1] == {}
        assert dones.tolist() == [step == 6, False, False]
    assert obs[0].tolist() == [0.0] * 5  # org_0 ran out of budget at round 6
    obs, rewards, dones, infos = venv.step(actions)  # round 8: org_2 truncated, env resets
    assert dones.tolist() == [True, True, True]
    assert infos[2]["TimeLimit.truncated"] is True and infos[2]["episode"]["l"] == 8
    for i in (0, 1):  # the placeholders end without an "episode" record and without value
        assert "episode" not in infos[i] and infos[i]["TimeLimit.truncated"] is False
        assert infos[i]["terminal_observation"].tolist() == [0.0] * 5
    assert np.count_nonzero(obs[:, 2]) == 0 and obs[:, 0].tolist() == [0.0] * 3  # a fresh round 0


def test_parameter_sharing_needs_identical_spaces():
    class Mixed(ParticipationGame):
        def action_space(self, agent):
            return spaces.Discrete(2) if agent == "org_2" else super().action_space(agent)

    with pytest.raises(ValueError, match="identical spaces.*org_2"):
        ParallelEnvVecEnv(Mixed(SCENARIOS["tiny"]))


@pytest.mark.parametrize("algo, kwargs", [
    ("ppo", {"n_steps": 16, "batch_size": 24, "n_epochs": 2}),
    ("dqn", {"learning_starts": 30, "buffer_size": 500, "train_freq": 1}),
])
def test_one_shared_sb3_policy_trains_on_the_support_game(algo, kwargs):
    env = parallel_env("budget")
    model = train_shared_policy(env, algo=algo, total_timesteps=150, seed=0, **kwargs)
    assert model.num_timesteps >= 150
    assert len(model.ep_info_buffer) > 0  # real agent episodes were reported to SB3
    observations, _ = env.reset(seed=1)
    actions = shared_policy_actions(model, observations, env.possible_agents)
    assert set(actions) == set(env.possible_agents)
    assert all(env.action_space(a).contains(v) for a, v in actions.items())


def test_unknown_sb3_algorithm_is_named():
    with pytest.raises(ValueError, match="unknown SB3 algorithm 'sac'"):
        train_shared_policy(parallel_env("tiny"), algo="sac", total_timesteps=10)


def test_one_shared_ppo_policy_trains_on_fedenv_tiny(tmp_path):
    import fedenv

    env = fedenv.parallel_env("tiny", run_dir=str(tmp_path / "env"), device="cpu")
    try:
        # 3 organizations, 3 rounds, budgets that run out: placeholders and auto-resets happen.
        model = train_shared_policy(env, algo="ppo", total_timesteps=18, seed=0, n_steps=6,
                                    batch_size=9, n_epochs=1)
        assert model.num_timesteps == 18
        assert len(model.ep_info_buffer) >= 3  # every organization finished an episode
        observations, _ = env.reset(seed=1)
        actions = shared_policy_actions(model, observations, env.possible_agents)
        assert set(actions) == set(env.possible_agents)
        assert all(env.action_space(a).contains(v) for a, v in actions.items())
    finally:
        env.close()
