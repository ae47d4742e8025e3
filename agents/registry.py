"""Algorithm names -> policies, and the ``--algo`` assignment syntax.

An assignment spec is a comma-separated list: ``q_learning`` (every agent), or
``org_a=q_learning,org_b=random``, or ``random,org_a=dqn`` (a default plus exceptions).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import torch
from gymnasium import spaces

from agents.base import Policy, derive_seed
from agents.baselines import AlwaysMax, AlwaysMin, MyopicGreedy, Never, RandomPolicy
from agents.config import ConfigError
from agents.dqn import DQNAgent, DQNConfig, DQNLearner, SharedDQNAgent
from agents.q_learning import QLearningAgent, QLearningConfig
from agents.team import Team


@dataclass
class AgentSettings:
    """Hyperparameters the learning algorithms are built with."""

    q_learning: QLearningConfig = field(default_factory=QLearningConfig)
    dqn: DQNConfig = field(default_factory=DQNConfig)
    device: str = "cpu"
    observation_fields: tuple[str, ...] | None = None
    """the env's names of its observation fields (``env.observation_fields``), if it has them"""


@dataclass(frozen=True)
class GroupSpec:
    """The agents assigned to one algorithm, with their spaces and seeds."""

    agents: list[str]
    observation_spaces: dict[str, spaces.Space]
    action_spaces: dict[str, spaces.Space]
    seeds: dict[str, int]
    group_seed: int
    settings: AgentSettings


Builder = Callable[[GroupSpec], dict[str, Policy]]


@dataclass(frozen=True)
class Algorithm:
    name: str
    summary: str
    build: Builder
    learns: bool


def _independent(make: Callable[[spaces.Space, spaces.Space, int, AgentSettings], Policy]) -> Builder:
    def build(group: GroupSpec) -> dict[str, Policy]:
        return {a: make(group.observation_spaces[a], group.action_spaces[a], group.seeds[a],
                        group.settings) for a in group.agents}
    return build


def _q_learner(obs_space: spaces.Space, act_space: spaces.Space, seed: int,
               settings: AgentSettings, *, stateless: bool = False) -> Policy:
    config = replace(settings.q_learning, state=()) if stateless else settings.q_learning
    try:
        return QLearningAgent(obs_space, act_space, seed=seed, config=config,
                              field_names=settings.observation_fields)
    except ConfigError as error:  # a state design that does not fit this env's observations
        raise ConfigError(f"q_learning.{error.field}", error.problem) from None
    except ValueError as error:  # bins over fields without finite bounds
        raise ConfigError("q_learning.state", str(error)) from None


def observation_fields(env: object) -> tuple[str, ...] | None:
    """The names an env gives its observation fields (``env.observation_fields``), if any."""
    names = getattr(env, "observation_fields", None)
    return tuple(str(n) for n in names) if names is not None else None


def _shared_dqn(group: GroupSpec) -> dict[str, Policy]:
    first = group.agents[0]
    obs_space, act_space = group.observation_spaces[first], group.action_spaces[first]
    for agent in group.agents:
        if (group.observation_spaces[agent] != obs_space
                or group.action_spaces[agent] != act_space):
            raise ConfigError("algo", f"shared_dqn needs identical spaces for all its agents; "
                                      f"{agent!r} differs from {first!r}")
    n = len(group.agents)
    cfg = group.settings.dqn
    learner = DQNLearner(SharedDQNAgent.input_dim(obs_space, n), int(act_space.n), config=cfg,
                         seed=group.group_seed, device=group.settings.device)
    return {agent: SharedDQNAgent(obs_space, act_space, seed=group.seeds[agent], learner=learner,
                                  index=i, n_agents=n, config=cfg)
            for i, agent in enumerate(group.agents)}


ALGORITHMS: dict[str, Algorithm] = {
    a.name: a for a in (
        Algorithm("q_learning", "independent tabular Q-learning over a discretized state",
                  learns=True, build=_independent(_q_learner)),
        Algorithm("q_learning_stateless", "tabular Q-learning with a single state (a bandit)",
                  learns=True, build=_independent(
                      lambda o, a, s, st: _q_learner(o, a, s, st, stateless=True))),
        Algorithm("dqn", "independent deep Q-network per agent", learns=True,
                  build=_independent(lambda o, a, s, st: DQNAgent(
                      o, a, seed=s, config=st.dqn, device=st.device))),
        Algorithm("shared_dqn", "one deep Q-network for all its agents (identity one-hot)",
                  learns=True, build=_shared_dqn),
        Algorithm("myopic_greedy", "level with the best last observed net reward", learns=True,
                  build=_independent(lambda o, a, s, st: MyopicGreedy(o, a, seed=s))),
        Algorithm("random", "uniformly random level", learns=False,
                  build=_independent(lambda o, a, s, st: RandomPolicy(o, a, seed=s))),
        Algorithm("always_max", "always the highest level", learns=False,
                  build=_independent(lambda o, a, s, st: AlwaysMax(o, a, seed=s))),
        Algorithm("always_min", "always the lowest level (1)", learns=False,
                  build=_independent(lambda o, a, s, st: AlwaysMin(o, a, seed=s))),
        Algorithm("never", "always sits out", learns=False,
                  build=_independent(lambda o, a, s, st: Never(o, a, seed=s))),
    )
}


def parse_algo_spec(spec: str) -> tuple[str | None, dict[str, str]]:
    """Split a spec into (default algorithm or None, {agent: algorithm}); checks names exist."""
    default: str | None = None
    per_agent: dict[str, str] = {}
    items = [item.strip() for item in spec.split(",")]
    if not spec.strip() or any(not item for item in items):
        raise ConfigError("algo", f"empty entry in {spec!r}")
    for item in items:
        agent, _, algo = item.rpartition("=")
        agent, algo = agent.strip(), algo.strip()
        if algo not in ALGORITHMS:
            raise ConfigError("algo", f"unknown algorithm {algo!r} (known: {', '.join(ALGORITHMS)})")
        if "=" not in item:
            if default is not None:
                raise ConfigError("algo", f"two default algorithms ({default!r}, {algo!r})")
            default = algo
        elif not agent or agent in per_agent:
            raise ConfigError("algo", f"{'missing' if not agent else 'repeated'} agent in {item!r}")
        else:
            per_agent[agent] = algo
    return default, per_agent


def resolve_assignment(spec: str, agents: Sequence[str]) -> dict[str, str]:
    """``{agent: algorithm}`` for every agent of the env, from an ``--algo`` spec."""
    default, per_agent = parse_algo_spec(spec)
    unknown = [a for a in per_agent if a not in agents]
    if unknown:
        raise ConfigError("algo", f"unknown organization(s) {', '.join(map(repr, unknown))} "
                                  f"(the env has: {', '.join(agents)})")
    missing = [a for a in agents if a not in per_agent and default is None]
    if missing:
        raise ConfigError("algo", f"no algorithm for {', '.join(missing)}; name them or give a "
                                  f"default (e.g. 'random,{agents[0]}=q_learning')")
    return {a: per_agent.get(a, default) for a in agents}  # type: ignore[misc]


def build_team(assignment: Mapping[str, str], observation_spaces: Mapping[str, spaces.Space],
               action_spaces: Mapping[str, spaces.Space], *, seed: int,
               settings: AgentSettings | None = None) -> Team:
    """Build every agent's policy; agent ``i`` (in ``assignment`` order) gets seed ``(seed, 0, i)``."""
    settings = settings or AgentSettings()
    unknown = sorted(set(assignment.values()) - set(ALGORITHMS))
    if unknown:
        raise ConfigError("algo", f"unknown algorithm(s) {unknown} (known: {', '.join(ALGORITHMS)})")
    torch.device(settings.device)  # fail early on a malformed device string
    agents = list(assignment)
    seeds = {a: derive_seed(seed, 0, i) for i, a in enumerate(agents)}
    policies: dict[str, Policy] = {}
    for group_index, name in enumerate(ALGORITHMS):
        members = [a for a in agents if assignment[a] == name]
        if members:
            policies.update(ALGORITHMS[name].build(GroupSpec(
                members, dict(observation_spaces), dict(action_spaces), seeds,
                derive_seed(seed, 1, group_index), settings)))
    return Team({a: policies[a] for a in agents}, assignment)
