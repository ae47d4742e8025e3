"""Tabular Q-learning: discretizer, update rule, exploration schedule, exact checkpoint round
trip, learning."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces
from support_envs import parallel_env

from agents.base import Transition
from agents.config import ConfigError
from agents.discretizer import BoxDiscretizer, make_discretizer
from agents.exploration import EpsilonSchedule
from agents.q_learning import QLearningAgent, QLearningConfig
from agents.registry import AgentSettings, build_team
from agents.rollout import evaluate, mean_returns, run_episode
from agents.serialization import atomic_save, load_state

BOX = spaces.Box(np.array([0, -1, -np.inf], np.float32), np.array([1, 1, np.inf], np.float32))
ACTIONS = spaces.Discrete(3)


def test_discretizer_bins_each_field_between_the_bounds_and_clips():
    d = BoxDiscretizer(BOX, (4, 2, 1))
    assert d.n_states == 8
    assert d.bin_indices(np.array([0.0, -1.0, 5.0])).tolist() == [0, 0, 0]
    assert d.bin_indices(np.array([0.26, 0.1, -7.0])).tolist() == [1, 1, 0]
    assert d.bin_indices(np.array([1.0, 1.0, 0.0])).tolist() == [3, 1, 0]  # upper bound: last bin
    assert d.bin_indices(np.array([9.0, -9.0, 0.0])).tolist() == [3, 0, 0]  # clipped
    states = {d(np.array([x, y, 0.0])) for x in np.linspace(0, 1, 9) for y in (-1, 1)}
    assert states == set(range(8))


def test_the_last_bins_value_repeats_for_the_remaining_fields():
    box = spaces.Box(np.zeros(5, np.float32), np.ones(5, np.float32))
    assert BoxDiscretizer(box, 3).bins.tolist() == [3] * 5
    assert BoxDiscretizer(box, (4, 2, 1)).bins.tolist() == [4, 2, 1, 1, 1]
    assert BoxDiscretizer(box, (4, 2, 1)).n_states == 8


def test_discretizer_rejects_what_it_cannot_bin():
    with pytest.raises(ValueError, match=r"bins\[2\].*finite bounds"):
        BoxDiscretizer(BOX, 3)
    with pytest.raises(ValueError, match="4 values given for 3"):
        BoxDiscretizer(BOX, (3, 3, 1, 1))
    with pytest.raises(ValueError, match="NaN"):
        BoxDiscretizer(BOX, (2, 2, 1))(np.array([np.nan, 0.0, 0.0]))
    with pytest.raises(ValueError, match="has 2 values"):
        BoxDiscretizer(BOX, (2, 2, 1))(np.zeros(2))
    assert make_discretizer(spaces.Discrete(5), 3)(4) == 4


def test_update_rule_bootstraps_unless_terminated():
    agent = QLearningAgent(BOX, ACTIONS, seed=0,
                           config=QLearningConfig(learning_rate=0.5, gamma=0.9, bins=(2, 1, 1)))
    low, high = np.array([0.1, 0, 0]), np.array([0.9, 0, 0])
    agent.learn(Transition(high, 2, 4.0, high, terminated=True, truncated=False))
    assert agent.q_values(high).tolist() == [0.0, 0.0, 2.0]
    metrics = agent.learn(Transition(low, 1, 1.0, high, terminated=False, truncated=True))
    assert agent.q_values(low)[1] == pytest.approx(0.5 * (1.0 + 0.9 * 2.0))
    assert metrics["td_error"] == pytest.approx(1.0 + 0.9 * 2.0)
    agent.learn(Transition(low, 0, 1.0, high, terminated=True, truncated=False))
    assert agent.q_values(low)[0] == pytest.approx(0.5)
    assert agent.act(low, explore=False) == 1 and agent.act(high, explore=False) == 2


def test_epsilon_decays_per_episode_down_to_its_floor():
    schedule = EpsilonSchedule(start=1.0, end=0.1, decay=0.5)
    assert [schedule.value(e) for e in range(5)] == [1.0, 0.5, 0.25, 0.125, 0.1]
    agent = QLearningAgent(BOX, ACTIONS, seed=0, config=QLearningConfig(
        epsilon_start=0.8, epsilon_end=0.2, epsilon_decay=0.5, bins=(2, 2, 1)))
    assert agent.epsilon == 0.8
    agent.end_episode()
    assert agent.epsilon == 0.4
    for _ in range(5):
        agent.end_episode()
    assert agent.epsilon == 0.2


@pytest.mark.parametrize("kwargs, field", [
    ({"learning_rate": 0.0}, "learning_rate"), ({"gamma": 1.5}, "gamma"),
    ({"bins": (2, 0)}, "bins"), ({"epsilon_end": 0.9, "epsilon_start": 0.5}, "epsilon_end"),
    ({"epsilon_decay": -0.1}, "epsilon_decay"),
])
def test_config_errors_name_the_field(kwargs, field):
    with pytest.raises(ConfigError) as info:
        QLearningConfig(**kwargs)
    assert info.value.field == field


def _trained_team(episodes: int, seed: int = 3, bins: tuple[int, ...] = (1,)):
    env = parallel_env("tiny")
    agents = env.possible_agents
    team = build_team({a: "q_learning" for a in agents},
                      {a: env.observation_space(a) for a in agents},
                      {a: env.action_space(a) for a in agents}, seed=seed,
                      settings=AgentSettings(q_learning=QLearningConfig(bins=bins)))
    for episode in range(episodes):
        run_episode(env, team, seed=1000 + episode)
        team.end_episode()
    return env, team


def test_checkpoint_round_trip_is_bit_exact(tmp_path):
    env, team = _trained_team(episodes=15, bins=(3,))
    agent = team.policies["org_0"]
    assert len(agent.table) > 3
    atomic_save(agent.state_dict(), tmp_path / "q.pt")  # as the trainer's checkpoints do
    clone = QLearningAgent(agent.observation_space, agent.action_space, seed=99,
                           config=agent.config)
    clone.load_state_dict(load_state(tmp_path / "q.pt"))
    assert sorted(clone.table) == sorted(agent.table)
    for state, row in agent.table.items():
        assert clone.table[state].dtype == np.float64
        assert clone.table[state].tobytes() == row.tobytes()
    assert clone.episodes_done == agent.episodes_done == 15
    # Same generator state: the same exploratory choices from here on.
    observations = [env.observation_space("org_0").sample() for _ in range(50)]
    assert [agent.act(o) for o in observations] == [clone.act(o) for o in observations]


def test_a_q_table_for_other_actions_is_refused():
    agent = QLearningAgent(BOX, ACTIONS, seed=0, config=QLearningConfig(bins=(2, 2, 1)))
    other = QLearningAgent(BOX, spaces.Discrete(4), seed=0, config=QLearningConfig(bins=(2, 2, 1)))
    with pytest.raises(ValueError, match="does not fit 4 actions"):
        other.load_state_dict(agent.state_dict())


@pytest.mark.parametrize("bins", [(1,), (3, 3, 1)])
def test_q_learners_beat_random_play_on_the_support_game(bins):
    env, team = _trained_team(episodes=80, bins=bins)
    seeds = list(range(500, 520))
    learned = mean_returns(evaluate(env, team, seeds))
    agents = env.possible_agents
    random_team = build_team({a: "random" for a in agents},
                             {a: env.observation_space(a) for a in agents},
                             {a: env.action_space(a) for a in agents}, seed=3)
    random_returns = mean_returns(evaluate(env, random_team, seeds))
    assert all(learned[a] > random_returns[a] for a in agents), (learned, random_returns)
    # org_1's best level is 1 whatever the others do: the greedy policy found it.
    obs = np.array([0.4, 1 / 3, 1.0, 0.5], dtype=np.float32)
    assert team.policies["org_1"].act(obs, explore=False) == 1
