"""# Federated organizations (``fedorg_v0``)

| Import             | ``import fedenv; env = fedenv.parallel_env("default")``       |
| ------------------ | ------------------------------------------------------------- |
| Actions            | Discrete                                                      |
| Parallel API       | Yes (``fedenv.env()`` is the AEC version)                     |
| Manual Control     | No                                                            |
| Agents             | one per organization, named by it: ``env.possible_agents``    |
| Action Shape       | ``Discrete(1 + R)``, R = number of resource levels            |
| Action Values      | 0 = sit the round out, k = take part at resource level k      |
| Observation Shape  | ``(10,)``, ``float32``                                        |
| Observation Values | see Observations                                              |

Organizations decide, round after round, whether and how hard to take part in federated LoRA
fine-tuning of a causal language model.  Every ``step`` is one real federated round: the
participants train their adapters (``FederatedEngine.train_updates``), sign their updates'
hashes onto a public ledger and store the raw updates in their private data collections on a
permissioned consortium channel; contributions are scored on the held-out benchmark, recorded
by an endorsed scoring transaction, the accepted updates are aggregated into the new global
adapter, whose hash is anchored on the public ledger.  Scenarios (``scenarios/*.toml``, see
:mod:`fedenv.scenario`) set the organizations, the model, the rules and the costs.

## Actions

``Discrete(1 + R)``: 0 sits the round out; k in 1..R trains at ``resource_levels[k-1]``
(its local steps and data share) and pays its compute cost.  An agent missing from the action
dict sits the round out (action 0).  An action outside the space, or an agent not in
``env.agents``, raises :class:`InvalidActionError` before anything runs.

## Observations

A ``Box`` of ``len(OBS_FIELDS)`` floats, the same space for every agent.  Scores (0..10 on the
benchmark) are divided by 10; money is divided by the scenario's reward pool (by 1 if it is 0).

| field                | meaning                                              | range    |
| -------------------- | ---------------------------------------------------- | -------- |
| round_fraction       | rounds played / max_rounds                           | [0, 1]   |
| budget_fraction      | budget left / initial budget                         | [0, 1]   |
| last_reward          | own reward last round (money, clipped)               | [-10, 10]|
| last_contribution    | own contribution last round (score points / 10)      | [-1, 1]  |
| last_payout          | own payout last round (money)                        | [0, 1]   |
| global_score         | benchmark score of the global model                  | [0, 1]   |
| own_domain_score     | the global model's score on the org's own domain     | [0, 1]   |
| others_participation | share of the other organizations in the last round   | [0, 1]   |
| reputation           | share of the org's updates so far that were accepted | [0, 1]   |
| last_level           | own last action / R                                  | [0, 1]   |

## Rewards

``reward = payout + model_value_weight * (own-domain score after - before) - costs`` for a
participant, 0 for an organization that sat out (it neither pays nor gets the new model).
Contributions (``scoring.contribution``: ``loo``, ``shapley``, ``tmc_shapley``) are differences
of coalition values, ``value(S)`` = the benchmark score of the aggregate of S's updates
(``value({})`` = the current global's).  When ``scoring.reject_negative`` is set, an update
with a negative contribution is rejected (it stays out of the aggregate and is paid nothing),
and if the aggregate of the others would lower the global's score, every update is rejected
and the global model stays as it was.
The mechanism (``incentives.mechanism``, see :mod:`fedenv.scoring.incentives`) splits the round's pool
among the accepted participants.  Costs (:mod:`fedenv.scoring.costs`): compute, communication, ledger
fees; they are reported in the infos.  Organizations whose scenario ``behaviour`` is not
``honest`` send free-ridden, noisy or boosted updates (:mod:`fedenv.scoring.behaviours`); scoring and
rejection treat them like any other update.

## Episodes

``reset(seed)`` restores the base global adapter and every organization's budget; the seed
drives local training and sampling (the scenario's own ``seed`` fixes data, base model and
identities).  An organization whose budget is spent is terminated; after ``max_rounds``
rounds the others are truncated.  ``infos[agent]`` carries the keys of :data:`INFO_KEYS`
(``round`` is the 0-based index of the round just played, ``tx_ids`` the org's public
update-hash and private-collection transactions, ``public_height`` the public ledger's height
after the round's block).  ``env.round_log`` keeps this episode's rounds as typed records
(:class:`fedenv.records.RoundOutcome`, one :class:`~fedenv.records.OrgOutcome` per live
organization): the infos are ``round_log[-1].info(agent)``, and the records add what infos leave
out (the global digest, the scoring and anchor transactions, wall-clock timings).  Pickling an env copies its configuration: the copy builds its own engine,
opens the same run folder (a new temporary one if none was given) and must be reset.

## The run folder

``run_dir`` (:mod:`fedenv.run_folder`) has one writer: the env holds its lock until ``close()``,
and a second env on it, in this process or another, a copy included, gets
:class:`~fedenv.errors.FolderBusyError` naming the holder.  A write that fails for want of space
raises :class:`~fedenv.errors.StorageError` (what, where, how much space is left); the folder
holds every round committed before it: close the env, free space and open the folder again.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import gymnasium
import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv
from pettingzoo.utils.conversions import parallel_to_aec

from fedenv.disk import storage_errors
from fedenv.errors import ConfigError, FedenvError
from fedenv.records import INFO_KEYS, RoundOutcome
from fedenv.render import round_table
from fedenv.scenario import Scenario, load_scenario

__all__ = [
    "INFO_KEYS",
    "OBS_FIELDS",
    "FedOrgParallelEnv",
    "InvalidActionError",
    "env",
    "parallel_env",
    "raw_env",
]

_OBSERVATIONS = (  # field, low, high: see the Observations table above
    ("round_fraction", 0, 1),
    ("budget_fraction", 0, 1),
    ("last_reward", -10, 10),
    ("last_contribution", -1, 1),
    ("last_payout", 0, 1),
    ("global_score", 0, 1),
    ("own_domain_score", 0, 1),
    ("others_participation", 0, 1),
    ("reputation", 0, 1),
    ("last_level", 0, 1),
)
OBS_FIELDS = tuple(name for name, _, _ in _OBSERVATIONS)
_OBS_LOW = np.array([low for _, low, _ in _OBSERVATIONS], dtype=np.float32)
_OBS_HIGH = np.array([high for _, _, high in _OBSERVATIONS], dtype=np.float32)


class InvalidActionError(FedenvError, ValueError):
    """An action outside the action space, or for an agent that is not in ``env.agents``."""


@dataclass
class _OrgState:
    spent: float = 0.0
    reward: float = 0.0
    contribution: float = 0.0
    payout: float = 0.0
    level: int = 0
    submitted: int = 0
    accepted: int = 0


class FedOrgParallelEnv(ParallelEnv):
    """The PettingZoo ParallelEnv; see the module docstring.  Build with :func:`parallel_env`."""

    metadata: ClassVar[dict[str, Any]] = {
        "name": "fedorg_v0",
        "render_modes": ["ansi", "human"],
        "is_parallelizable": True,
    }

    def __init__(
        self,
        scenario: Scenario,
        *,
        run_dir: str | Path | None = None,
        render_mode: str | None = None,
        store_adapters: bool = True,
        keep_adapter_episodes: int = 0,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ConfigError(
                "render_mode",
                f"must be one of {self.metadata['render_modes']} or None, got {render_mode!r}",
            )
        self.scenario = scenario
        self.render_mode = render_mode
        self._init_args = {
            "run_dir": run_dir,
            "render_mode": render_mode,
            "store_adapters": store_adapters,
            "keep_adapter_episodes": keep_adapter_episodes,
        }
        self.possible_agents = list(scenario.org_names)
        self._orgs = {o.name: o for o in scenario.organizations}
        self.agents: list[str] = []
        self._action_space = spaces.Discrete(1 + scenario.num_levels)
        self._observation_space = spaces.Box(_OBS_LOW, _OBS_HIGH, dtype=np.float32)
        self._money_scale = scenario.incentives.reward_pool or 1.0
        from fedenv.round import RoundPlayer  # torch, transformers, the ledgers: load on use
        from fedenv.run_folder import RunFolder

        with storage_errors("the env folder", run_dir or "a temporary folder"):
            self.run = RunFolder(
                run_dir,
                scenario,
                store_adapters=store_adapters,
                keep_adapter_episodes=keep_adapter_episodes,
            )
        try:
            self._player = RoundPlayer(scenario, self.run)
        except BaseException:
            self.run.close()
            raise
        self._seed = scenario.seed
        self._resets_since_seed = 0
        self._round = 0
        self._state: dict[str, _OrgState] = {}
        self.round_log: list[RoundOutcome] = []

    # --- spaces -----------------------------------------------------------------------------
    def observation_space(self, agent: str) -> spaces.Box:
        self._check_known(agent)
        return self._observation_space

    def action_space(self, agent: str) -> spaces.Discrete:
        self._check_known(agent)
        return self._action_space

    # --- the PettingZoo API -----------------------------------------------------------------
    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._seed, self._resets_since_seed = int(seed), 0
        with storage_errors("the env folder", self.run.path):
            self._player.start_episode(self._seed, self._resets_since_seed)
        self._resets_since_seed += 1
        self.agents = list(self.possible_agents)
        self._round = 0
        self._state = {a: _OrgState() for a in self.agents}
        self._participated: set[str] = set()
        self.round_log = []
        return {a: self._observe(a) for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions: Mapping[str, Any]):
        levels = self._validate(actions)
        start = time.perf_counter()
        with storage_errors("the env folder", self.run.path):
            outcome = self._player.play(self._round, levels)
        self._round += 1
        rewards, terminations, truncations, infos = {}, {}, {}, {}
        for org in self.agents:
            row, state = outcome.orgs[org], self._state[org]
            state.spent += row.costs.total
            state.reward, state.contribution = row.reward, row.contribution
            state.payout, state.level = row.payout, row.level
            state.submitted += row.participated
            state.accepted += row.accepted
            rewards[org] = row.reward
            terminations[org] = state.spent >= self._orgs[org].budget
            truncations[org] = not terminations[org] and self._round >= self.scenario.max_rounds
            infos[org] = outcome.info(org)
        self._participated = {o for o, k in levels.items() if k}
        observations = {a: self._observe(a) for a in self.agents}
        self.agents = [a for a in self.agents if not (terminations[a] or truncations[a])]
        step_seconds = time.perf_counter() - start
        self.round_log.append(
            dataclasses.replace(outcome, timings={**outcome.timings, "step": step_seconds})
        )
        if self.render_mode == "human":
            self.render()
        return observations, rewards, terminations, truncations, infos

    def render(self) -> str | None:
        if self.render_mode is None:
            gymnasium.logger.warn(
                "render() called without a render_mode; pass render_mode="
                "'ansi' or 'human' to fedenv.parallel_env"
            )
            return None
        table = round_table(self.round_log[-1] if self.round_log else None)
        if self.render_mode == "human":
            print(table, end="")
            return None
        return table

    def close(self) -> None:
        if getattr(self, "run", None) is not None:
            self.run.close()
            self.run = None

    def state(self) -> np.ndarray:
        """Every possible agent's observation, stacked (zeros for agents that are done)."""
        return np.stack(
            [
                self._observe(a) if a in self.agents else np.zeros(len(OBS_FIELDS), np.float32)
                for a in self.possible_agents
            ]
        )

    # --- pickling: the configuration travels, not the open files ----------------------------
    def __getstate__(self) -> dict[str, Any]:
        return {"scenario": self.scenario, **self._init_args}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state.pop("scenario"), **state)

    # --- helpers ----------------------------------------------------------------------------
    def _check_known(self, agent: str) -> None:
        if agent not in self.possible_agents:
            raise InvalidActionError(f"unknown agent {agent!r} (agents: {self.possible_agents})")

    def _validate(self, actions: Mapping[str, Any]) -> dict[str, int]:
        if not self.agents:
            raise InvalidActionError("no live agents: call reset() before step()")
        if not isinstance(actions, Mapping):
            raise InvalidActionError(
                f"actions must be a dict agent -> action, got {type(actions).__name__}"
            )
        for agent, action in actions.items():
            if agent not in self.agents:
                why = (
                    "is done (terminated or truncated)"
                    if agent in self.possible_agents
                    else "is not an agent of this env"
                )
                raise InvalidActionError(
                    f"action for {agent!r}, which {why}; live agents: {self.agents}"
                )
            if isinstance(action, (bool, np.bool_)) or not self._action_space.contains(action):
                raise InvalidActionError(
                    f"action {action!r} of {agent!r} is not in "
                    f"{self._action_space} (0 = sit out, 1..{self._action_space.n - 1} "
                    f"= resource level)"
                )
        return {agent: int(actions.get(agent, 0)) for agent in self.agents}

    def _observe(self, agent: str) -> np.ndarray:
        state, org = self._state[agent], self._orgs[agent]
        scores = self._player.global_result
        others = [a for a in self.possible_agents if a != agent]
        values = (
            self._round / self.scenario.max_rounds,
            max(0.0, org.budget - state.spent) / org.budget,
            state.reward / self._money_scale,
            state.contribution / 10.0,
            state.payout / self._money_scale,
            scores.score / 10.0,
            scores.domains[org.domain].score / 10.0,
            sum(a in self._participated for a in others) / max(1, len(others)),
            state.accepted / state.submitted if state.submitted else 1.0,
            state.level / self.scenario.num_levels,
        )
        return np.clip(np.array(values, dtype=np.float32), _OBS_LOW, _OBS_HIGH)


def parallel_env(
    scenario: str | Path | Scenario = "default",
    *,
    run_dir: str | Path | None = None,
    render_mode: str | None = None,
    store_adapters: bool = True,
    keep_adapter_episodes: int = 0,
    **overrides: Any,
) -> FedOrgParallelEnv:
    """The ParallelEnv of ``scenario`` (a bundled name, a TOML file or a :class:`Scenario`).

    ``overrides`` are validated like the scenario file's keys (``seed``, ``max_rounds``,
    ``device``, ``contribution``, ``mechanism``, ``aggregator``, ``reward_pool``, ``preset``,
    or dotted paths such as ``lora.r``).  ``run_dir``: the run folder (default: a temporary
    one, removed on close; see :mod:`fedenv.run_folder`).  ``store_adapters=False`` keeps only
    hashes, no adapter files; ``keep_adapter_episodes=K`` keeps the adapters of the last K
    episodes (0: all)."""
    if isinstance(scenario, Scenario):
        scenario = scenario.with_overrides(**overrides) if overrides else scenario
    else:
        scenario = load_scenario(scenario, **overrides)
    return FedOrgParallelEnv(
        scenario,
        run_dir=run_dir,
        render_mode=render_mode,
        store_adapters=store_adapters,
        keep_adapter_episodes=keep_adapter_episodes,
    )


def env(scenario: str | Path | Scenario = "default", **kwargs: Any):
    """The AEC version of :func:`parallel_env` (``pettingzoo.utils.parallel_to_aec``)."""
    return parallel_to_aec(parallel_env(scenario, **kwargs))


raw_env = FedOrgParallelEnv
"""PettingZoo's name for the unwrapped class (a ParallelEnv here: fedorg is parallel-native)."""
