"""Baseline policies: fixed levels, seeded random play, and the myopic greedy rule."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces
from support_envs import parallel_env

from agents.base import Transition
from agents.baselines import AlwaysMax, AlwaysMin, MyopicGreedy, Never, RandomPolicy
from agents.registry import build_team
from agents.rollout import evaluate, mean_returns
from agents.serialization import atomic_save, load_state

OBS = spaces.Box(np.zeros(2, np.float32), np.ones(2, np.float32))
ACTIONS = spaces.Discrete(4)
X = np.zeros(2, np.float32)


def _step(policy, action: int, reward: float) -> None:
    policy.learn(Transition(X, action, reward, X, terminated=False, truncated=False))


def test_fixed_levels():
    assert AlwaysMax(OBS, ACTIONS, seed=0).act(X) == 3
    assert AlwaysMin(OBS, ACTIONS, seed=0).act(X) == 1
    assert Never(OBS, ACTIONS, seed=0).act(X) == 0
    with pytest.raises(ValueError, match="participation level"):
        AlwaysMin(OBS, spaces.Discrete(1), seed=0)
    with pytest.raises(TypeError, match="Discrete action space"):
        Never(OBS, spaces.Box(0, 1, (1,)), seed=0)


def test_random_policy_is_uniform_and_seeded():
    a, b = RandomPolicy(OBS, ACTIONS, seed=5), RandomPolicy(OBS, ACTIONS, seed=5)
    draws = [a.act(X) for _ in range(4000)]
    assert draws == [b.act(X) for _ in range(4000)]
    counts = np.bincount(draws, minlength=4)
    assert counts.min() > 900 and counts.max() < 1100
    assert draws != [RandomPolicy(OBS, ACTIONS, seed=6).act(X) for _ in range(4000)]


def test_myopic_greedy_tries_every_level_then_follows_the_last_reward():
    policy = MyopicGreedy(OBS, ACTIONS, seed=0)
    rewards = {0: 0.0, 1: 0.5, 2: 2.0, 3: 1.0}
    tried = []
    for _ in range(4):
        action = policy.act(X)
        tried.append(action)
        _step(policy, action, rewards[action])
    assert sorted(tried) == [0, 1, 2, 3]  # each untried level once, before any repeat
    assert policy.act(X) == 2
    _step(policy, 2, -1.0)  # the last observation of a level is what counts
    assert policy.act(X) == 3


def test_myopic_greedy_evaluation_picks_only_tried_levels_and_state_round_trips(tmp_path):
    policy = MyopicGreedy(OBS, ACTIONS, seed=0)
    _step(policy, 1, -0.5)
    assert policy.act(X, explore=False) == 1  # only tried level, even with a negative reward
    assert policy.act(X) in (0, 2, 3)  # exploring: an untried level
    atomic_save(policy.state_dict(), tmp_path / "m.pt")  # as the trainer's checkpoints do
    clone = MyopicGreedy(OBS, ACTIONS, seed=1)
    clone.load_state_dict(load_state(tmp_path / "m.pt"))
    assert np.array_equal(clone.last_reward, policy.last_reward, equal_nan=True)
    assert [clone.act(X) for _ in range(20)] == [policy.act(X) for _ in range(20)]


def test_fixed_baselines_earn_the_support_games_exact_payoffs():
    env = parallel_env("tiny", noise=0.0)  # 3 orgs, 5 rounds, levels 0..3
    agents = env.possible_agents

    def returns(algo: str) -> dict[str, float]:
        team = build_team({a: algo for a in agents}, {a: env.observation_space(a) for a in agents},
                          {a: env.action_space(a) for a in agents}, seed=0)
        return mean_returns(evaluate(env, team, seeds=[0, 1]))

    # Everyone at level L: org i earns value_i * L * 1.2 - cost_i * L**2 per round.
    assert returns("never") == dict.fromkeys(agents, 0.0)
    expected_max = [5 * (1.0 * 3 * 1.2 - 0.25 * 9), 5 * (1.0 * 3 * 1.2 - 0.5 * 9),
                    5 * (0.6 * 3 * 1.2 - 0.1 * 9)]
    assert list(returns("always_max").values()) == pytest.approx(expected_max)
    expected_min = [5 * (1.2 - 0.25), 5 * (1.2 - 0.5), 5 * (0.72 - 0.1)]
    assert list(returns("always_min").values()) == pytest.approx(expected_min)
