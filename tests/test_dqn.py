"""Deep Q-network agents: seeding, replay buffer, target network, sharing, save/load, learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces
from support_envs import parallel_env

from agents.base import Transition
from agents.config import ConfigError
from agents.dqn import DQNAgent, DQNConfig, SharedDQNAgent
from agents.registry import AgentSettings, build_team
from agents.replay_buffer import ReplayBuffer
from agents.rollout import evaluate, mean_returns, run_episode
from agents.serialization import atomic_save, load_state
from agents.team import Team

OBS = spaces.Box(np.zeros(4, np.float32), np.ones(4, np.float32))
ACTIONS = spaces.Discrete(4)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny networks run fastest on one thread (and do not fight other processes for cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


SMALL = DQNConfig(hidden_size=16, batch_size=8, learning_starts=8, target_update_interval=5)


def _feed(agent: DQNAgent, n: int, seed: int = 0) -> list[dict[str, float]]:
    rng = np.random.default_rng(seed)
    metrics = []
    for _ in range(n):
        obs, nxt = rng.random(4).astype(np.float32), rng.random(4).astype(np.float32)
        metrics.append(agent.learn(Transition(obs, int(rng.integers(4)), float(rng.normal()),
                                              nxt, terminated=bool(rng.random() < 0.2),
                                              truncated=False)))
    return metrics


def _params(agent: DQNAgent) -> list[torch.Tensor]:
    return [p.detach().clone() for p in agent.learner.q_network.parameters()]


def test_same_seed_same_network_and_training():
    a, b = (DQNAgent(OBS, ACTIONS, seed=7, config=SMALL) for _ in range(2))
    c = DQNAgent(OBS, ACTIONS, seed=8, config=SMALL)
    assert all(torch.equal(x, y) for x, y in zip(_params(a), _params(b)))
    assert not all(torch.equal(x, y) for x, y in zip(_params(a), _params(c)))
    _feed(a, 40)
    _feed(b, 40)
    assert all(torch.equal(x, y) for x, y in zip(_params(a), _params(b)))


def test_gradient_steps_start_late_and_the_target_network_follows_at_its_interval():
    agent = DQNAgent(OBS, ACTIONS, seed=0, config=SMALL)
    metrics = _feed(agent, 7)
    assert metrics == [{}] * 7  # fewer than learning_starts transitions: no step yet
    target_before = [p.clone() for p in agent.learner.target_network.parameters()]
    metrics = _feed(agent, 4, seed=1)  # gradient steps 1..4
    assert all("td_error" in m and m["td_error"] >= 0 for m in metrics)
    assert all(torch.equal(x, y) for x, y in
               zip(target_before, agent.learner.target_network.parameters()))
    _feed(agent, 1, seed=2)  # step 5: copy
    assert all(torch.equal(x, y) for x, y in zip(agent.learner.q_network.parameters(),
                                                  agent.learner.target_network.parameters()))


def test_replay_buffer_overwrites_the_oldest_and_round_trips():
    buffer = ReplayBuffer(3, 2, seed=0)
    for i in range(5):
        buffer.add(np.full(2, i), i, float(i), np.full(2, i + 1), terminated=i == 4)
    assert len(buffer) == 3 and sorted(buffer.actions.tolist()) == [2, 3, 4]
    clone = ReplayBuffer(3, 2, seed=1)
    clone.load_state_dict(buffer.state_dict())
    a, b = buffer.sample(16, torch.device("cpu")), clone.sample(16, torch.device("cpu"))
    assert torch.equal(a.obs, b.obs) and torch.equal(a.terminated, b.terminated)
    with pytest.raises(ValueError, match="does not fit"):
        ReplayBuffer(2, 2, seed=0).load_state_dict(buffer.state_dict())


def test_checkpoint_restores_networks_optimizer_buffer_and_generators(tmp_path):
    agent = DQNAgent(OBS, ACTIONS, seed=0, config=SMALL)
    _feed(agent, 30)
    agent.end_episode()
    atomic_save(agent.state_dict(), tmp_path / "dqn.pt")  # as the trainer's checkpoints do
    clone = DQNAgent(OBS, ACTIONS, seed=123, config=SMALL)
    clone.load_state_dict(load_state(tmp_path / "dqn.pt"))
    assert clone.epsilon == agent.epsilon
    # Continuing both gives identical weights and actions: nothing of the state was lost.
    _feed(agent, 20, seed=5)
    _feed(clone, 20, seed=5)
    assert all(torch.equal(x, y) for x, y in zip(_params(agent), _params(clone)))
    obs = [OBS.sample() for _ in range(30)]
    assert [agent.act(o) for o in obs] == [clone.act(o) for o in obs]


def _team(env, algo: str, seed: int = 0, config: DQNConfig = SMALL) -> Team:
    agents = env.possible_agents
    return build_team({a: algo for a in agents}, {a: env.observation_space(a) for a in agents},
                      {a: env.action_space(a) for a in agents}, seed=seed,
                      settings=AgentSettings(dqn=config))


def test_shared_dqn_is_one_network_with_the_identity_in_its_input(tmp_path):
    env = parallel_env("tiny")
    team = _team(env, "shared_dqn")
    views = list(team.policies.values())
    assert all(isinstance(v, SharedDQNAgent) for v in views)
    assert len({id(v.learner) for v in views}) == 1
    obs = env.observation_space("org_0").sample()
    assert views[0].features(obs)[-3:].tolist() == [1, 0, 0]
    assert views[2].features(obs)[-3:].tolist() == [0, 0, 1]
    for episode in range(4):
        run_episode(env, team, seed=episode)
        team.end_episode()
    assert views[0].learner.transitions == 4 * 5 * 3  # every agent fills the one buffer
    state = team.state_dict()
    assert list(state["shared"]) == ["shared_dqn"]
    assert "learner" not in state["policies"]["org_0"]  # saved once, not per agent
    clone = _team(env, "shared_dqn", seed=9)
    clone.load_state_dict(state)
    assert all(torch.equal(x, y) for x, y in zip(_params(views[1]),
                                                  _params(clone.policies["org_1"])))


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="batch_size"):
        DQNConfig(batch_size=0)
    with pytest.raises(ConfigError, match="learning_rate"):
        DQNConfig(learning_rate=-1.0)


@pytest.mark.parametrize("algo", ["dqn", "shared_dqn"])
def test_dqn_beats_random_play_on_the_support_game(algo):
    env = parallel_env("tiny")
    config = DQNConfig(hidden_size=32, batch_size=32, learning_starts=32, epsilon_decay=0.93)
    team = _team(env, algo, seed=1, config=config)
    for episode in range(60):
        run_episode(env, team, seed=episode)
        team.end_episode()
    seeds = list(range(500, 515))
    learned = mean_returns(evaluate(env, team, seeds))
    random_returns = mean_returns(evaluate(env, _team(env, "random"), seeds))
    assert sum(learned.values()) > sum(random_returns.values()) + 2.0, (learned, random_returns)
