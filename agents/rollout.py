"""Play episodes of a PettingZoo ParallelEnv with a :class:`Team`, and record what happened.

Per organization: return, rounds played, rounds taken part in, resource level, and (when the env
reports them in ``infos``) contribution, payout and total cost. Global: the last reported
``global_score``, ``domain_scores`` and ``public_height``. Without ``participated`` /
``resource`` infos, an action > 0 counts as taking part and the action is the resource level.
The record reads infos generically, so it works on any PettingZoo env (fedenv's own typed round
records stay inside fedenv: agents never imports it).

Episode seeds: training episode ``e`` of a run with ``seed`` resets with
``episode_seed(seed, e)``, greedy evaluation episode ``i`` with ``eval_seeds(seed, n)[i]``
(:func:`agents.base.derive_seed` paths ``(2, e)`` and ``(3, i)``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from pettingzoo import ParallelEnv

from agents.base import derive_seed
from agents.team import Team

SUMMED_INFO_KEYS = {"contribution": "contribution", "payout": "payout", "cost_total": "cost"}


@dataclass
class AgentRecord:
    """One organization over one episode."""

    episode_return: float = 0.0
    rounds: int = 0
    participated: int = 0
    resource: float = 0.0
    contribution: float | None = None
    payout: float | None = None
    cost: float | None = None

    @property
    def participation_rate(self) -> float:
        return self.participated / self.rounds if self.rounds else 0.0

    @property
    def mean_resource(self) -> float:
        return self.resource / self.rounds if self.rounds else 0.0


@dataclass
class EpisodeRecord:
    """One episode: per-agent records, the env's last global figures and learner metrics.

    (``fedenv.evaluation.EpisodeRecord`` is fedenv's own: every round's typed outcome, for the
    comparison metrics.  This one sums any PettingZoo env's infos, for the trainer's logs.)"""

    agents: dict[str, AgentRecord]
    steps: int = 0
    seconds: float = 0.0
    global_score: float | None = None
    domain_scores: dict[str, float] = field(default_factory=dict)
    public_height: float | None = None
    learn_metrics: dict[str, float] = field(default_factory=dict)  # per-step means
    epsilon: float | None = None

    @property
    def mean_return(self) -> float:
        return float(np.mean([r.episode_return for r in self.agents.values()]))


def _record_infos(record: EpisodeRecord, agent: str, action: int, reward: float,
                  info: dict) -> None:
    rec = record.agents[agent]
    rec.episode_return += float(reward)
    rec.rounds += 1
    rec.participated += int(bool(info.get("participated", action > 0)))
    rec.resource += float(info.get("resource", action))
    for key, attr in SUMMED_INFO_KEYS.items():
        if key in info:
            setattr(rec, attr, (getattr(rec, attr) or 0.0) + float(info[key]))
    if "global_score" in info:
        record.global_score = float(info["global_score"])
    if "domain_scores" in info:
        record.domain_scores.update({k: float(v) for k, v in dict(info["domain_scores"]).items()})
    if "public_height" in info:
        record.public_height = float(info["public_height"])


def episode_seed(seed: int, episode: int) -> int:
    """The env reset seed of training episode ``episode`` (0-based)."""
    return derive_seed(seed, 2, episode)


def eval_seeds(seed: int, n: int) -> list[int]:
    """Env reset seeds of the greedy evaluation episodes (disjoint from training seeds)."""
    return [derive_seed(seed, 3, i) for i in range(n)]


def run_episode(env: ParallelEnv, team: Team, *, seed: int | None, explore: bool = True,
                learn: bool = True) -> EpisodeRecord:
    """Reset ``env`` with ``seed`` and play until every agent is done.

    With ``learn`` each transition goes to the team (``learn`` without ``explore`` is allowed
    but unusual); the team's ``end_episode`` is left to the caller.
    """
    start = time.perf_counter()
    observations, _ = env.reset(seed=seed)
    record = EpisodeRecord({a: AgentRecord() for a in env.possible_agents}, epsilon=team.epsilon)
    metric_sums: dict[str, float] = {}
    metric_counts: dict[str, int] = {}
    while env.agents:
        actions = team.act({a: observations[a] for a in env.agents}, explore=explore)
        next_observations, rewards, terminations, truncations, infos = env.step(actions)
        record.steps += 1
        for agent, action in actions.items():
            _record_infos(record, agent, action, rewards[agent], infos.get(agent, {}))
        if learn:
            for key, value in team.learn(observations, actions, rewards, next_observations,
                                         terminations, truncations).items():
                metric_sums[key] = metric_sums.get(key, 0.0) + value
                metric_counts[key] = metric_counts.get(key, 0) + 1
        observations = next_observations
    record.learn_metrics = {k: metric_sums[k] / metric_counts[k] for k in metric_sums}
    record.seconds = time.perf_counter() - start
    return record


def evaluate(env: ParallelEnv, team: Team, seeds: Sequence[int]) -> list[EpisodeRecord]:
    """Greedy episodes (no exploration, no learning), one per seed."""
    return [run_episode(env, team, seed=s, explore=False, learn=False) for s in seeds]


def mean_returns(records: Sequence[EpisodeRecord]) -> dict[str, float]:
    """Each organization's mean episode return over ``records``."""
    agents = records[0].agents
    return {a: float(np.mean([r.agents[a].episode_return for r in records])) for a in agents}
