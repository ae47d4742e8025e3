"""Tabular Q-learning: discretizer, update rule, exploration schedule, exact checkpoint round
trip, learning."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces
from support_envs import parallel_env

from agents.base import Transition
from agents.config import ConfigError
from agents.discretizer import BoxDiscretizer, make_discretizer, state_bins
from agents.exploration import EpsilonSchedule
from agents.q_learning import QLearningAgent, QLearningConfig
from agents.registry import AgentSettings, build_team
from agents.rollout import evaluate, mean_returns, run_episode
from agents.serialization import atomic_save, load_state
from agents.state_split import critical_gap, split_values, standard_errors, update_entry

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


def test_update_rule_bootstraps_unless_the_episode_ends():
    agent = QLearningAgent(BOX, ACTIONS, seed=0,
                           config=QLearningConfig(learning_rate=0.5, gamma=0.9, state=("0=2",),
                                                  continuation="state", backoff=0.0))
    low, high = np.array([0.1, 0, 0]), np.array([0.9, 0, 0])
    agent.learn(Transition(high, 2, 4.0, high, terminated=True, truncated=False))
    assert agent.q_values(high).tolist() == [0.0, 0.0, 4.0]  # first update: step 1
    metrics = agent.learn(Transition(low, 1, 1.0, high, terminated=False, truncated=False))
    assert agent.q_values(low)[1] == pytest.approx(1.0 + 0.9 * 4.0)
    assert metrics["td_error"] == pytest.approx(1.0 + 0.9 * 4.0)
    agent.learn(Transition(low, 0, 1.0, high, terminated=True, truncated=False))
    assert agent.q_values(low)[0] == pytest.approx(1.0)
    agent.learn(Transition(low, 1, 0.0, high, terminated=True, truncated=False))
    assert agent.q_values(low)[1] == pytest.approx(0.5 * 4.6)  # second update: step 1/2
    assert agent.act(low, explore=False) == 1 and agent.act(high, explore=False) == 2
    # the time limit ends the bootstrap too, unless bootstrap_truncation (states without time)
    agent.learn(Transition(low, 2, 1.0, high, terminated=False, truncated=True))
    assert agent.q_values(low)[2] == pytest.approx(1.0)
    timeless = QLearningAgent(BOX, ACTIONS, seed=0, config=QLearningConfig(
        state=("0=2",), continuation="state", backoff=0.0, gamma=0.9,
        bootstrap_truncation=True))
    timeless.learn(Transition(high, 2, 4.0, high, terminated=True, truncated=False))
    timeless.learn(Transition(low, 2, 1.0, high, terminated=False, truncated=True))
    assert timeless.q_values(low)[2] == pytest.approx(1.0 + 0.9 * 4.0)


def test_step_size_is_a_running_mean_until_it_reaches_the_learning_rate():
    agent = QLearningAgent(BOX, ACTIONS, seed=0, config=QLearningConfig(learning_rate=0.25,
                                                                        state=()))
    obs = np.zeros(3)
    seen = []
    for reward in (4.0, 2.0, 0.0, 8.0, 0.0):
        agent.learn(Transition(obs, 1, reward, obs, terminated=True, truncated=False))
        seen.append(agent.q_values(obs)[1])
    assert seen[:4] == pytest.approx([4.0, 3.0, 2.0, 3.5])  # means of the targets so far
    assert seen[4] == pytest.approx(3.5 - 0.25 * 3.5)  # then steps of learning_rate
    assert agent.visits[agent.discretizer(obs)].tolist() == [0, 5, 0]


def test_a_state_reads_its_own_values_shrunk_towards_the_state_free_ones_by_backoff():
    agent = QLearningAgent(BOX, ACTIONS, seed=0, config=QLearningConfig(
        learning_rate=0.1, state=("0=2",), backoff=2.0))
    low, high = np.array([0.1, 0, 0]), np.array([0.9, 0, 0])
    for reward in (4.0, 2.0, 6.0):  # three updates of action 1 in the low state
        agent.learn(Transition(low, 1, reward, low, terminated=True, truncated=False))
    assert agent.table[agent.discretizer(low)].tolist() == pytest.approx([0.0, 4.0, 0.0])
    assert agent.prior.tolist() == pytest.approx([0.0, 4.0, 0.0])  # every transition's mean
    # the high state was never updated: it acts on the state-free values
    assert agent.q_values(high).tolist() == pytest.approx([0.0, 4.0, 0.0])
    assert agent.act(high, explore=False) == 1
    # one update of its own: (1 * 10 + 2 * prior) / (1 + 2), the prior now (4+2+6+10)/4
    agent.learn(Transition(high, 1, 10.0, high, terminated=True, truncated=False))
    assert agent.q_values(high)[1] == pytest.approx((10.0 + 2 * 5.5) / 3)
    assert agent.q_values(low)[1] == pytest.approx((3 * 4.0 + 2 * 5.5) / 5)
    assert agent.visits[agent.discretizer(high)].tolist() == [0, 1, 0]
    assert agent.prior_visits.tolist() == [0, 4, 0]
    off = QLearningAgent(BOX, ACTIONS, seed=0, config=QLearningConfig(state=("0=2",),
                                                                      backoff=0.0))
    off.learn(Transition(low, 1, 4.0, low, terminated=True, truncated=False))
    assert off.q_values(high).tolist() == [0.0, 0.0, 0.0]
    assert off.q_values(low).tolist() == [0.0, 4.0, 0.0]


def test_the_state_free_continuation_bootstraps_from_the_state_free_values():
    """A target continues with max_a Qbar(a), whatever the next state: moving into a state that
    is visited late in episodes (few rounds left, low values) costs nothing of itself, where
    Watkins's max_a Q(s', a) charges it; the episode's end still does."""
    low, high = np.array([0.1, 0, 0]), np.array([0.9, 0, 0])
    learners = {continuation: QLearningAgent(BOX, ACTIONS, seed=0, config=QLearningConfig(
        learning_rate=0.5, gamma=0.9, state=("0=2",), backoff=0.0, continuation=continuation))
        for continuation in ("state_free", "state")}
    for agent in learners.values():
        agent.learn(Transition(high, 2, 4.0, high, terminated=True, truncated=False))
        agent.learn(Transition(low, 0, 1.0, low, terminated=True, truncated=False))
        assert agent.prior.tolist() == pytest.approx([1.0, 0.0, 4.0])
        agent.learn(Transition(high, 1, 0.0, low, terminated=False, truncated=False))
        agent.learn(Transition(high, 0, 2.0, low, terminated=True, truncated=False))
    high_row = {c: agent.table[agent.discretizer(high)] for c, agent in learners.items()}
    assert high_row["state_free"][1] == pytest.approx(0.9 * 4.0)  # max Qbar
    assert high_row["state"][1] == pytest.approx(0.9 * 1.0)  # max Q(low)
    assert high_row["state_free"][0] == high_row["state"][0] == pytest.approx(2.0)  # no bootstrap


def test_with_one_state_continuation_and_backoff_change_nothing():
    """q_learning_stateless stays Watkins's bandit, bit for bit, whatever the two options."""
    rng = np.random.default_rng(0)
    stream = [Transition(rng.random(3), int(rng.integers(3)), float(rng.normal()), rng.random(3),
                         terminated=bool(rng.random() < 0.1), truncated=False) for _ in range(200)]
    agents = [QLearningAgent(BOX, ACTIONS, seed=0, config=QLearningConfig(state=(), **kwargs))
              for kwargs in ({"continuation": "state_free", "backoff": 10.0},
                             {"continuation": "state", "backoff": 0.0})]
    for transition in stream:
        for agent in agents:
            agent.learn(transition)
    assert agents[0].table[0].tobytes() == agents[1].table[0].tobytes()
    assert agents[0].q_values(stream[0].obs).tobytes() == agents[1].table[0].tobytes()


def test_an_entrys_standard_error_is_its_targets_sample_sd_over_root_n_while_steps_are_1_over_n():
    mean, spread, weight2 = 0.0, 0.0, 0.0
    targets = [1.0, 2.0, 4.0, 9.0]
    assert np.isinf(standard_errors(np.array([spread]), np.array([weight2]))).all()  # no update
    for n, target in enumerate(targets, start=1):
        mean, spread, weight2 = update_entry(mean, spread, weight2, target, 1.0 / n)
        if n == 1:  # one update: no standard error yet
            assert np.isinf(standard_errors(np.array([spread]), np.array([weight2]))).all()
    assert mean == pytest.approx(np.mean(targets))
    assert standard_errors(np.array([spread]), np.array([weight2]))[0] == pytest.approx(
        np.std(targets, ddof=1) / np.sqrt(len(targets)))
    # a constant step keeps the weights from vanishing: the error levels off, it never reaches 0
    for _ in range(500):
        mean, spread, weight2 = update_entry(mean, spread, weight2, 1.0 + (_ % 2), 0.1)
    assert weight2 == pytest.approx(0.1 / 1.9)
    assert standard_errors(np.array([spread]), np.array([weight2]))[0] == pytest.approx(
        0.5 * np.sqrt(0.1 / 1.9 / (1 - 0.1 / 1.9)), rel=0.05)


def _split_learner(z: float) -> QLearningAgent:
    return QLearningAgent(BOX, ACTIONS, seed=0, config=QLearningConfig(
        state=("0=2",), split_z=z))


def test_split_z_acts_like_the_bandit_until_a_state_has_evidence_of_a_better_action():
    """States whose best action is the state-free one are never split: the learner's values,
    choices and random draws are the stateless bandit's, bit for bit."""
    rng = np.random.default_rng(1)
    split, bandit = _split_learner(2.0), QLearningAgent(BOX, ACTIONS, seed=0,
                                                        config=QLearningConfig(state=()))
    for step in range(300):
        obs = np.array([rng.random(), 0.0, 0.0])
        action = split.act(obs)
        assert action == bandit.act(obs)
        transition = Transition(obs, action, float(action + rng.normal(0.0, 0.3)),
                                np.array([rng.random(), 0.0, 0.0]),
                                terminated=bool(rng.random() < 0.1), truncated=False)
        split.learn(transition)
        bandit.learn(transition)
        if step % 10 == 9:
            split.end_episode()
            bandit.end_episode()
    assert split.prior.tobytes() == bandit.table[0].tobytes()
    assert len(split.table) == 2 and all(v.min() >= 2 for v in split.visits.values())


def test_split_z_trusts_a_state_once_its_best_action_wins_by_z_standard_errors():
    low, high = np.array([0.1, 0, 0]), np.array([0.9, 0, 0])
    rng = np.random.default_rng(0)

    def feed(agent, obs, action, mean, n):
        for _ in range(n):
            agent.learn(Transition(obs, action, float(mean + rng.normal(0.0, 0.5)), obs,
                                   terminated=True, truncated=False))

    agent = _split_learner(2.0)
    feed(agent, low, 1, 5.0, 30)      # the low state: action 1 pays most everywhere ...
    feed(agent, low, 2, 1.0, 30)
    feed(agent, high, 1, -2.0, 1)     # ... but in the high state one sample says action 2
    feed(agent, high, 2, 1.0, 1)
    assert agent.act(high, explore=False) == 1  # one sample each: no standard error, no split
    feed(agent, high, 1, -2.0, 4)
    feed(agent, high, 2, 1.0, 4)
    assert np.argmax(agent.prior) == 1 and agent.act(high, explore=False) == 2  # far apart
    assert agent.act(low, explore=False) == 1
    assert agent.q_values(high)[0] == -np.inf  # never taken there: not a candidate
    cautious = _split_learner(1e6)
    rng = np.random.default_rng(0)
    feed(cautious, low, 1, 5.0, 30)
    feed(cautious, low, 2, 1.0, 30)
    feed(cautious, high, 1, -2.0, 5)
    feed(cautious, high, 2, 1.0, 5)
    assert cautious.act(high, explore=False) == 1
    assert cautious.q_values(high).tobytes() == cautious.prior.tobytes()


def test_the_split_bar_is_welchs_t_so_a_couple_of_targets_make_a_wide_one():
    """Two targets each: t with 2 degrees of freedom, not the normal 2 SE (a 2-sample spread is
    itself noise); many targets: the normal bar; a noiseless pair: any gap."""
    assert critical_gap(1.0, 1.0, 0.5, 0.5, 2.0) > 2 * 2.0 * np.sqrt(2.0)
    assert critical_gap(1.0, 1.0, 1e-4, 1e-4, 2.0) == pytest.approx(2.0 * np.sqrt(2.0), rel=1e-3)
    assert critical_gap(0.0, 0.0, 0.5, 0.5, 2.0) == 0.0


def test_split_values_needs_evidence_against_every_state_free_choice():
    row, spread = np.array([0.0, 1.0, 5.0]), np.array([0.0, 1.0, 1.0])
    weight2 = np.array([0.0, 0.25, 0.25])  # action 0 never taken in the state
    assert split_values(row, spread, weight2, np.array([0.0, 2.0, 1.0]), 2.0).tolist() == [
        -np.inf, 1.0, 5.0]
    assert split_values(row, spread, weight2, np.array([2.0, 1.0, 1.0]), 2.0) is None
    assert split_values(row, spread, weight2, np.array([0.0, 1.0, 2.0]), 2.0) is None
    assert split_values(row, spread, weight2, np.array([0.0, 2.0, 1.0]), 20.0) is None


def test_a_state_design_names_fields_by_name_or_index():
    names = ("round_fraction", "budget_fraction", "last_reward")
    assert state_bins(("round_fraction=5", "2=3"), 3, names) == [5, 1, 3]
    assert state_bins((), 3) == [1, 1, 1]
    for spec, problem in [(("round=5",), "unknown observation field 'round'"),
                          (("7=2",), "out of range"), (("0=2", "round_fraction=3"), "twice"),
                          (("0=x",), "BINS must be"), (("0",), "FIELD=BINS")]:
        with pytest.raises(ValueError, match=problem):
            state_bins(spec, 3, names)
    with pytest.raises(ValueError, match="names no observation fields"):
        state_bins(("round_fraction=2",), 3)
    box = spaces.Box(np.zeros(3, np.float32), np.ones(3, np.float32))
    agent = QLearningAgent(box, ACTIONS, seed=0, field_names=names,
                           config=QLearningConfig(state=("budget_fraction=4",)))
    assert agent.discretizer.bins.tolist() == [1, 4, 1] and agent.discretizer.n_states == 4
    with pytest.raises(ConfigError) as info:
        QLearningAgent(box, ACTIONS, seed=0, config=QLearningConfig())  # no names given
    assert info.value.field == "state"


def test_the_registry_builds_the_stateful_default_and_the_stateless_option():
    env = parallel_env("tiny")
    agents = env.possible_agents
    team = build_team({agents[0]: "q_learning", agents[1]: "q_learning_stateless",
                       agents[2]: "q_learning"},
                      {a: env.observation_space(a) for a in agents},
                      {a: env.action_space(a) for a in agents}, seed=0,
                      settings=AgentSettings(observation_fields=env.observation_fields))
    stateful, stateless = team.policies[agents[0]], team.policies[agents[1]]
    assert stateful.discretizer.bins.tolist() == [1, 3, 1, 1, 1]
    assert stateless.discretizer.n_states == 1
    with pytest.raises(ConfigError) as info:
        build_team({a: "q_learning" for a in agents},
                   {a: env.observation_space(a) for a in agents},
                   {a: env.action_space(a) for a in agents}, seed=0,
                   settings=AgentSettings(q_learning=QLearningConfig(state=("wealth=3",)),
                                          observation_fields=env.observation_fields))
    assert info.value.field == "q_learning.state" and "wealth" in info.value.problem


def test_epsilon_decays_per_episode_down_to_its_floor():
    schedule = EpsilonSchedule(start=1.0, end=0.1, decay=0.5)
    assert [schedule.value(e) for e in range(5)] == [1.0, 0.5, 0.25, 0.125, 0.1]
    agent = QLearningAgent(BOX, ACTIONS, seed=0, config=QLearningConfig(
        epsilon_start=0.8, epsilon_end=0.2, epsilon_decay=0.5, state=("0=2", "1=2")))
    assert agent.epsilon == 0.8
    agent.end_episode()
    assert agent.epsilon == 0.4
    for _ in range(5):
        agent.end_episode()
    assert agent.epsilon == 0.2


@pytest.mark.parametrize("kwargs, field", [
    ({"learning_rate": 0.0}, "learning_rate"), ({"gamma": 1.5}, "gamma"),
    ({"state": ("0=0",)}, "state"), ({"state": ("round",)}, "state"),
    ({"epsilon_end": 0.9, "epsilon_start": 0.5}, "epsilon_end"),
    ({"epsilon_decay": -0.1}, "epsilon_decay"), ({"backoff": -1.0}, "backoff"),
    ({"continuation": "next"}, "continuation"), ({"split_z": -1.0}, "split_z"),
    ({"split_z": 2.0, "backoff": 10.0}, "split_z"),
])
def test_config_errors_name_the_field(kwargs, field):
    with pytest.raises(ConfigError) as info:
        QLearningConfig(**kwargs)
    assert info.value.field == field


def _trained_team(episodes: int, seed: int = 3, state: tuple[str, ...] = ()):
    env = parallel_env("tiny")
    agents = env.possible_agents
    team = build_team({a: "q_learning" for a in agents},
                      {a: env.observation_space(a) for a in agents},
                      {a: env.action_space(a) for a in agents}, seed=seed,
                      settings=AgentSettings(q_learning=QLearningConfig(state=state),
                                             observation_fields=env.observation_fields))
    for episode in range(episodes):
        run_episode(env, team, seed=1000 + episode)
        team.end_episode()
    return env, team


def test_checkpoint_round_trip_is_bit_exact(tmp_path):
    env, team = _trained_team(episodes=15, state=("0=3", "2=3", "3=3", "4=3"))
    agent = team.policies["org_0"]
    assert len(agent.table) > 3
    atomic_save(agent.state_dict(), tmp_path / "q.pt")  # as the trainer's checkpoints do
    clone = QLearningAgent(agent.observation_space, agent.action_space, seed=99,
                           config=agent.config, field_names=env.observation_fields)
    clone.load_state_dict(load_state(tmp_path / "q.pt"))
    assert sorted(clone.table) == sorted(agent.table)
    for state, row in agent.table.items():
        assert clone.table[state].dtype == np.float64
        assert clone.table[state].tobytes() == row.tobytes()
        assert clone.visits[state].tolist() == agent.visits[state].tolist()
    assert clone.prior.tobytes() == agent.prior.tobytes()
    assert clone.prior_visits.tolist() == agent.prior_visits.tolist()
    assert clone.episodes_done == agent.episodes_done == 15
    # Same generator state: the same exploratory choices from here on.
    observations = [env.observation_space("org_0").sample() for _ in range(50)]
    assert [agent.act(o) for o in observations] == [clone.act(o) for o in observations]
    assert all(agent.q_values(o).tobytes() == clone.q_values(o).tobytes() for o in observations)


def test_a_q_table_for_other_actions_is_refused():
    design = QLearningConfig(state=("0=2", "1=2"))
    agent = QLearningAgent(BOX, ACTIONS, seed=0, config=design)
    other = QLearningAgent(BOX, spaces.Discrete(4), seed=0, config=design)
    with pytest.raises(ValueError, match="does not fit 4 actions"):
        other.load_state_dict(agent.state_dict())
    older = {k: v for k, v in agent.state_dict().items() if k not in ("visits", "prior")}
    with pytest.raises(ValueError, match="lacks prior, visits: saved by an older version"):
        agent.load_state_dict(older)




@pytest.mark.parametrize("state", [(), ("round_fraction=3", "last_level=3")])
def test_q_learners_beat_random_play_on_the_support_game(state):
    env, team = _trained_team(episodes=80, state=state)
    seeds = list(range(500, 520))
    learned = mean_returns(evaluate(env, team, seeds))
    agents = env.possible_agents
    random_team = build_team({a: "random" for a in agents},
                             {a: env.observation_space(a) for a in agents},
                             {a: env.action_space(a) for a in agents}, seed=3)
    random_returns = mean_returns(evaluate(env, random_team, seeds))
    assert all(learned[a] > random_returns[a] for a in agents), (learned, random_returns)
    # org_1's best level is 1 whatever the others do: the greedy policy found it.
    obs = np.array([0.4, 1.0, 1 / 3, 1.0, 0.5], dtype=np.float32)
    assert team.policies["org_1"].act(obs, explore=False) == 1
