"""Independent tabular Q-learning, one table per agent, over a designed state.

The state is a design (``QLearningConfig.state``): the observation fields the learner sees, each
cut into equal-width bins (:mod:`agents.discretizer`); ``state=()`` is a single state, the
stateless bandit of ``q_learning_stateless``.  The table is sparse (a row per visited state,
created at ``initial_q``), so fine discretizations cost memory only where the agent goes.

Besides each state's row ``Q[s]`` the agent keeps the state-free values ``Qbar`` (the same
targets, whatever the state: the bandit's table).  Update, for a transition ``(s, a, r, s')``:
``target = r + gamma * max_a' C(s')[a'] * (1 - done)``, then ``Q[s,a]`` and ``Qbar[a]`` each move
towards it with ``alpha = max(learning_rate, 1 / n)`` (``n``: that entry's updates so far): a
running mean of its targets until ``1/n`` reaches ``learning_rate``, exponential recency
weighting after.  The continuation ``C`` is the next state's values with ``continuation="state"`` (Watkins, the
default) and ``Qbar`` with ``"state_free"``.  The agent acts on
``(n(s,a) Q[s,a] + backoff Qbar[a]) / (n(s,a) + backoff)``: a state's own estimate shrunk towards
the state-free one, the more the fewer updates it has (hierarchical backoff; a never-visited
state acts on ``Qbar``).  Or, with ``split_z`` (:mod:`agents.state_split`), a state acts on its
own row only where its best action beats ``Qbar``'s choice in that state by ``split_z`` standard
errors, and on ``Qbar`` elsewhere: the bandit, bit for bit, until a state shows evidence.  With
one state all of these are the bandit's own table (Watkins, exactly).

Why a state-free continuation (an option: on the default scenario it measured no better than
Watkins, on ``tiny`` worse; docs/agents.md): a coarse state without the time (budget left) ranks states by
the rounds they still have, so ``max Q(s')`` charges every move into a state seen late in
episodes (less budget left) with the rounds that pass anyway, and sitting out (which keeps the
state) looks like saving; continuing with ``Qbar`` charges only what ends the episode early
(docs/agents.md, "The state design").  A time-limit truncation ends the bootstrap like a
termination unless ``bootstrap_truncation``: fedenv's fixed number of rounds is part of the task
(Pardo et al., "Time Limits in Reinforcement Learning", ICML 2018).  Exploration is
epsilon-greedy, decayed per episode.

The default design is fedenv's: ``budget_fraction`` in 3 bins, the budget left; the env names its
fields (``env.observation_fields``), and any env's fields can be named by index (``"0=5"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from agents.base import Policy, Transition
from agents.config import ConfigError, check_range
from agents.discretizer import make_discretizer, state_bins
from agents.exploration import EpsilonSchedule, epsilon_greedy, greedy_action
from agents.state_split import split_values, update_entry

CONTINUATIONS = ("state_free", "state")


@dataclass
class QLearningConfig:
    """Tabular Q-learning."""

    learning_rate: float = 0.1
    """smallest step size of the Q-table update (1/n for a pair's first n updates, then this)"""
    gamma: float = 0.9
    """discount factor"""
    epsilon_start: float = 1.0
    """exploration rate at the start"""
    epsilon_end: float = 0.05
    """lowest exploration rate"""
    epsilon_decay: float = 0.9
    """exploration rate multiplier per training episode"""
    state: tuple[str, ...] = ("budget_fraction=3",)
    """observed fields as FIELD=BINS (a name the env declares, or an index); () = stateless"""
    initial_q: float = 0.0
    """initial value of unseen Q entries"""
    bootstrap_truncation: bool = False
    """bootstrap from the next state after a time-limit truncation (for states without the time)"""
    continuation: str = "state"
    """what targets continue with: state_free (max of the state-free values) or state (Watkins)"""
    backoff: float = 0.0
    """weight of the state-free values in a state's: (n Q[s,a] + backoff Qbar[a]) / (n + backoff)"""
    split_z: float = 0.0
    """a state's values act only where they beat Qbar's choice by Welch's t at z=this (0: off)"""

    def __post_init__(self) -> None:
        check_range("learning_rate", self.learning_rate, low=0.0, high=1.0, low_open=True)
        check_range("gamma", self.gamma, low=0.0, high=1.0)
        check_range("initial_q", self.initial_q)
        self.state = tuple(self.state)
        for entry in self.state:
            field, sep, bins = str(entry).partition("=")
            if not sep or not field.strip() or not bins.strip().isdigit() or int(bins) < 1:
                raise ConfigError("state", f"expected FIELD=BINS with BINS >= 1, got {entry!r}")
        check_range("backoff", self.backoff, low=0.0)
        check_range("split_z", self.split_z, low=0.0)
        if self.split_z and self.backoff:
            raise ConfigError("split_z", f"split_z ({self.split_z}) and backoff "
                                         f"({self.backoff}) are alternatives; set one to 0")
        if self.continuation not in CONTINUATIONS:
            raise ConfigError("continuation", f"expected one of {', '.join(CONTINUATIONS)}, "
                                              f"got {self.continuation!r}")
        EpsilonSchedule(self.epsilon_start, self.epsilon_end, self.epsilon_decay)  # validates

    @property
    def schedule(self) -> EpsilonSchedule:
        return EpsilonSchedule(self.epsilon_start, self.epsilon_end, self.epsilon_decay)


class QLearningAgent(Policy):
    """Epsilon-greedy tabular Q-learner over a discretized observation."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, *, seed: int,
                 config: QLearningConfig | None = None,
                 field_names: Sequence[str] | None = None) -> None:
        """``field_names``: the env's names of its observation fields, for ``config.state``."""
        super().__init__(observation_space, action_space, seed=seed)
        self.config = config or QLearningConfig()
        bins: Any = 1
        if isinstance(observation_space, spaces.Box):
            n_fields = int(np.prod(observation_space.shape))
            try:
                bins = state_bins(self.config.state, n_fields, field_names)
            except ValueError as error:
                raise ConfigError("state", str(error)) from None
        self.discretizer = make_discretizer(observation_space, bins)
        # one state has no state-free values apart from its own: the bandit is Watkins's, exactly
        self.backoff = self.config.backoff if self.discretizer.n_states > 1 else 0.0
        self.split_z = self.config.split_z if self.discretizer.n_states > 1 else 0.0
        self.schedule = self.config.schedule
        self.episodes_done = 0
        self.table: dict[int, np.ndarray] = {}
        self.visits: dict[int, np.ndarray] = {}
        # per entry: weighted variance of its targets and sum of squared weights (state_split)
        self.spread: dict[int, np.ndarray] = {}
        self.weight2: dict[int, np.ndarray] = {}
        # the state-free action values: every transition's target, whatever its state
        self.prior = np.full(self.n_actions, self.config.initial_q, dtype=np.float64)
        self.prior_visits = np.zeros(self.n_actions, dtype=np.int64)

    @property
    def epsilon(self) -> float:
        return self.schedule.value(self.episodes_done)

    def q_values(self, obs: np.ndarray) -> np.ndarray:
        """The values the agent acts on in ``obs``'s state: the state's own estimates, shrunk
        towards the state-free ones by ``backoff`` (``initial_q`` where neither has data)."""
        state = self.discretizer(obs)
        row = self.table.get(state)
        if self.split_z:
            split = None if row is None else split_values(
                row, self.spread[state], self.weight2[state], self.prior, self.split_z)
            return self.prior.copy() if split is None else split
        backoff = self.backoff
        if row is None:
            return (self.prior.copy() if backoff else
                    np.full(self.n_actions, self.config.initial_q, np.float64))
        if not backoff:
            return row.copy()
        visits = self.visits[state]
        return (visits * row + backoff * self.prior) / (visits + backoff)

    def act(self, obs: np.ndarray, *, explore: bool = True) -> int:
        q = self.q_values(obs)
        return epsilon_greedy(q, self.epsilon, self.rng) if explore else greedy_action(q, self.rng)

    def learn(self, transition: Transition) -> dict[str, float]:
        state = self.discretizer(transition.obs)
        row = self.table.get(state)
        if row is None:
            row = self.table[state] = np.full(self.n_actions, self.config.initial_q, np.float64)
            self.visits[state] = np.zeros(self.n_actions, np.int64)
            self.spread[state] = np.zeros(self.n_actions, np.float64)
            self.weight2[state] = np.zeros(self.n_actions, np.float64)
        target = float(transition.reward)
        if not transition.terminated and (self.config.bootstrap_truncation
                                           or not transition.truncated):
            following = (self.prior if self.config.continuation == "state_free"
                         else self.q_values(transition.next_obs))
            target += self.config.gamma * float(following.max())
        a = transition.action
        td_error = target - row[a]
        visits = self.visits[state]
        visits[a] += 1
        alpha = max(self.config.learning_rate, 1.0 / visits[a])
        row[a], self.spread[state][a], self.weight2[state][a] = update_entry(
            row[a], self.spread[state][a], self.weight2[state][a], target, alpha)
        self.prior_visits[a] += 1
        self.prior[a] += max(self.config.learning_rate, 1.0 / self.prior_visits[a]) * (
            target - self.prior[a])
        return {"td_error": abs(float(td_error))}

    def end_episode(self) -> None:
        self.episodes_done += 1

    def state_dict(self) -> dict[str, Any]:
        states = sorted(self.table)
        values = (np.stack([self.table[s] for s in states]) if states
                  else np.zeros((0, self.n_actions), dtype=np.float64))
        visits = (np.stack([self.visits[s] for s in states]) if states
                  else np.zeros((0, self.n_actions), dtype=np.int64))
        spread, weight2 = ((np.stack([table[s] for s in states]) if states
                            else np.zeros((0, self.n_actions), dtype=np.float64))
                           for table in (self.spread, self.weight2))
        return {
            **super().state_dict(),
            "episodes_done": self.episodes_done,
            "states": torch.tensor(states, dtype=torch.int64),
            "values": torch.from_numpy(values.copy()),
            "visits": torch.from_numpy(visits.copy()),
            "spread": torch.from_numpy(spread.copy()),
            "weight2": torch.from_numpy(weight2.copy()),
            "prior": torch.from_numpy(self.prior.copy()),
            "prior_visits": torch.from_numpy(self.prior_visits.copy()),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        missing = sorted({"values", "visits", "states", "prior", "prior_visits", "spread",
                          "weight2", "episodes_done"} - set(state))
        if missing:  # a Q-table saved before visit counts and the prior existed
            raise ValueError(f"Q-learning state lacks {', '.join(missing)}: saved by an older "
                             f"version; train anew")
        values, visits = state["values"].numpy(), state["visits"].numpy()
        if values.ndim != 2 or values.shape[1] != self.n_actions or values.dtype != np.float64:
            raise ValueError(f"Q-table of shape {values.shape} / {values.dtype} does not fit "
                             f"{self.n_actions} actions (float64)")
        spread, weight2 = state["spread"].numpy(), state["weight2"].numpy()
        for name, array in (("visit counts", visits), ("spreads", spread), ("weights", weight2)):
            if array.shape != values.shape:
                raise ValueError(f"{name} of shape {array.shape} do not fit the Q-table's "
                                 f"{values.shape}")
        super().load_state_dict(state)
        self.episodes_done = int(state["episodes_done"])
        states = state["states"].tolist()
        self.table = {int(s): values[i].copy() for i, s in enumerate(states)}
        self.visits = {int(s): visits[i].astype(np.int64) for i, s in enumerate(states)}
        self.spread = {int(s): spread[i].astype(np.float64) for i, s in enumerate(states)}
        self.weight2 = {int(s): weight2[i].astype(np.float64) for i, s in enumerate(states)}
        self.prior = state["prior"].numpy().astype(np.float64).copy()
        self.prior_visits = state["prior_visits"].numpy().astype(np.int64).copy()
