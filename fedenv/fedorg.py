"""# Federated organizations (``fedorg_v0``)

| Import             | ``import fedenv; env = fedenv.parallel_env("default")``       |
| ------------------ | ------------------------------------------------------------- |
| Actions            | Discrete, masked by the budget                                |
| Parallel API       | Yes (``fedenv.env()`` is the AEC version)                     |
| Manual Control     | No                                                            |
| Agents             | one per organization, named by it: ``env.possible_agents``    |
| Action Shape       | ``Discrete(1 + R)``, R = number of resource levels            |
| Action Values      | 0 = sit the round out, k = take part at resource level k      |
| Observation Shape  | ``(11,)``, ``float32`` (a ``Dict`` with ``mask_observations``) |
| Observation Values | see Observations                                              |
| State Shape        | ``(10 N,)``, ``float32``: the N organizations' observations  |

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
(its local steps and data share) and pays its costs.  Budgets are hard
(:mod:`fedenv.budgets`): a level whose costs would take the organization's spending past its
``budget`` is masked.  The mask (``int8``, 1 = allowed, action 0 always) is in every info
(``infos[agent]["action_mask"]``, after ``reset`` too) and, with ``mask_observations=True``, in
the observation (``{"observation": Box, "action_mask": Box}``, PettingZoo's classic convention).
An agent missing from the action dict sits the round out.  By default a masked level plays the
highest affordable level below it (0 if none; the info's ``resource`` is the level played) and
an action for an agent that is done is ignored (as PettingZoo's ``aec_to_parallel`` does); with
``strict=True`` both raise :class:`InvalidActionError`.  An action outside the space, or for an
agent the env does not have, always raises before anything runs (:mod:`fedenv.actions`).

## Observations

A ``Box`` of ``len(OBS_FIELDS)`` floats, the same space for every agent.  Scores (0..10 on the
benchmark) are divided by 10; money is divided by the scenario's reward pool (by 1 if it is 0).
``env.observation_fields`` names the fields in order (:data:`OBS_FIELDS`), so a learner can be
told which to observe by name (``q_learning``'s ``state``).
``env.state()`` concatenates the observations of ``possible_agents`` in order (zeros for those
that are done), for centralised critics; ``env.state_space`` is its ``Box``.

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
| acceptance_rate      | share of the org's updates so far that were accepted | [0, 1]   |
| last_level           | own last action / R                                  | [0, 1]   |
| channel_participation | share of its channel partners in the last round    | [0, 1]   |

Channel partners are the other members of the organization's updates channel
(:mod:`fedenv.ledgers.layout`): its sub-consortium (0 when it is alone there); without
``[[channels]]`` they are all the others.

## Rewards

``reward = payout + model_value - costs``, with ``model_value = model_value_weight * (own-domain
score after - before) + collective_weight * (global score after - before)``, for a
participant, 0 for an organization that sat out (it neither pays nor gets the new model).
Contributions (``scoring.contribution``: ``loo``, ``shapley``, ``tmc_shapley``) are differences
of coalition values, ``value(S)`` = the benchmark score of the aggregate of S's updates
(``value({})`` = the current global's).  When ``scoring.reject_negative`` is set, an update
whose contribution is below ``-scoring.reject_margin`` x the benchmark's resolution (one fact
probe's worth of score) is rejected (it stays out of the aggregate and is paid nothing),
and if the aggregate of the others would lower the global's score, every update is rejected
and the global model stays as it was.
The mechanism (``incentives.mechanism``, see :mod:`fedenv.scoring.incentives`) splits the round's pool
among the accepted participants.  Costs (:mod:`fedenv.scoring.costs`): compute, communication, ledger
fees; they are reported in the infos.  Organizations whose scenario ``behaviour`` is not
``honest`` attack (:mod:`fedenv.scoring.attacks`); the scenario's defences screen every update
and record why they reject or down-weight one (:mod:`fedenv.scoring.defence`, docs/incentives.md).

## Unlearning

An organization can be forgotten (:mod:`fedenv.unlearning`, docs/unlearning.md): scheduled by
the scenario (``[[unlearning]]``) or asked at run time with
``env.unwrapped.request_unlearning(org, method=...)``, it is carried out at the start of the
next step (at once when the episode is over): a signed request, its raw updates purged, the
global model rebuilt and certified; the organization is terminated in that step (its action
ignored, its reward minus the clawback of ``[unlearning_policy]``), and
``infos[org]["unlearning"]`` holds the measures.  ``env.unwrapped.unlearning_log`` keeps the
episode's outcomes.

## Episodes

``reset(seed)`` restores the base global adapter and every organization's budget; the seed
drives local training and sampling (the scenario's own ``seed`` fixes data, base model and
identities) and seeds ``env.np_random``.  Ends, as Gymnasium defines them: an organization that
can afford no level any more is *terminated* (a terminal state: sitting out forever is worth
0); the round ``max_rounds`` (alias ``max_cycles``) *truncates* every organization still live in
it, those terminated in that same round included (both flags true, as Gymnasium's ``TimeLimit``
does; ``terminated`` decides bootstrapping).  So the last round ends every agent at once and
``all(truncations.values())`` holds on it.  ``infos[agent]`` carries the keys of
:data:`INFO_KEYS` and ``action_mask``
(``round`` is the 0-based index of the round just played, ``tx_ids`` the org's public
update-hash and private-collection transactions, ``public_height`` the public ledger's height
after the round's block).  ``env.round_log`` keeps this episode's rounds as typed records
(:class:`fedenv.records.RoundOutcome`, one :class:`~fedenv.records.OrgOutcome` per live
organization): the infos are ``round_log[-1].info(agent)`` (plus the mask), and the records add
what infos leave out (the global digest, the scoring and anchor transactions, wall-clock timings).

Copies (``pickle``, ``copy.deepcopy``) carry the live episode: the copy continues exactly as the
original would (same observations, rewards, infos, ledger heights and transaction ids) and the
original is untouched.  A copy never opens its original's run folder: it gets a folder of its
own holding a copy of the original's files (:mod:`fedenv.folder_copies`): a new temporary one,
or ``<run_dir>.copy-<n>`` beside a named one.  After ``close()``, ``reset``, ``step``,
``state``, ``render`` and copies raise :class:`EnvClosedError`.

## The run folder

``run_dir`` (:mod:`fedenv.run_folder`) has one writer: the env holds its lock until ``close()``,
and a second env on it, in this process or another, gets
:class:`~fedenv.errors.FolderBusyError` naming the holder.  A write that fails for want of space
raises :class:`~fedenv.errors.StorageError` (what, where, how much space is left); the folder
holds every round committed before it: close the env, free space and open the folder again.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from pettingzoo import ParallelEnv
from pettingzoo.utils.conversions import parallel_to_aec

from fedenv.actions import InvalidActionError, resolve_actions
from fedenv.budgets import Budgets
from fedenv.disk import storage_errors
from fedenv.errors import ConfigError, FedenvError
from fedenv.observations import (
    ACTION_MASK,
    OBS_FIELDS,
    OrgMemory,
    observation_box,
    observation_spaces,
)
from fedenv.records import INFO_KEYS, RoundOutcome
from fedenv.render import round_table
from fedenv.scenario import Scenario, load_scenario

__all__ = [
    "INFO_KEYS",
    "OBS_FIELDS",
    "EnvClosedError",
    "FedOrgParallelEnv",
    "InvalidActionError",
    "env",
    "parallel_env",
    "raw_env",
]


class EnvClosedError(FedenvError, RuntimeError):
    """``reset``, ``step``, ``state``, ``render`` or a copy of an env after ``close()``."""


_OrgState = OrgMemory  # its former name here (copies pickled before the move still load)


class FedOrgParallelEnv(ParallelEnv):
    """The PettingZoo ParallelEnv; see the module docstring.  Build with :func:`parallel_env`."""

    metadata: ClassVar[dict[str, Any]] = {
        "name": "fedorg_v0",
        "render_modes": ["ansi", "human"],
        "is_parallelizable": True,
        "render_fps": 1,
    }

    def __init__(
        self,
        scenario: Scenario,
        *,
        run_dir: str | Path | None = None,
        render_mode: str | None = None,
        store_adapters: bool = True,
        strict: bool = False,
        mask_observations: bool = False,
        keep_adapter_episodes: int = 0,
        _files: Mapping[str, bytes] | None = None,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ConfigError(
                "render_mode",
                f"must be one of {self.metadata['render_modes']} or None, got {render_mode!r}",
            )
        self.scenario = scenario
        self.render_mode = render_mode
        self.strict = bool(strict)
        self.mask_observations = bool(mask_observations)
        self._init_args = {
            "run_dir": run_dir,
            "render_mode": render_mode,
            "store_adapters": store_adapters,
            "strict": self.strict,
            "mask_observations": self.mask_observations,
            "keep_adapter_episodes": keep_adapter_episodes,
        }
        self.possible_agents = list(scenario.org_names)
        self.observation_fields = OBS_FIELDS  # names of the observation's fields, in order
        self._orgs = {o.name: o for o in scenario.organizations}
        self.agents: list[str] = []
        self._action_space = spaces.Discrete(1 + scenario.num_levels)
        self._observation_space, self.state_space = observation_spaces(
            self._action_space.n, len(self.possible_agents), with_mask=self.mask_observations
        )
        self._money_scale = scenario.incentives.reward_pool or 1.0
        from fedenv.round import RoundPlayer  # torch, transformers, the ledgers: load on use
        from fedenv.run_folder import RunFolder

        with storage_errors("the env folder", run_dir or "a temporary folder"):
            self.run = RunFolder(
                run_dir,
                scenario,
                store_adapters=store_adapters,
                keep_adapter_episodes=keep_adapter_episodes,
                files=_files,
            )
        from fedenv.unlearning.unlearner import Unlearner

        try:
            self._player = RoundPlayer(scenario, self.run)
        except BaseException:
            self.run.close()
            raise
        self._unlearner = Unlearner(self._player)
        self.unlearning_log: list = []  # this episode's UnlearningOutcome records
        self._partners = {
            a: [m for m in self.run.ledgers.layout.updates_channel(a).members if m != a]
            for a in self.possible_agents
        }
        self._budgets = Budgets(
            {o.name: o.budget for o in scenario.organizations},
            scenario.num_levels,
            lambda org, level: self._player.level_costs(org, level).total,
        )
        self._seed = scenario.seed
        self._resets_since_seed = 0
        self._round = 0
        self._state: dict[str, OrgMemory] = {}
        self._participated: set[str] = set()
        self.round_log: list[RoundOutcome] = []
        self._np_random, self._np_random_seed = seeding.np_random(scenario.seed)

    # --- spaces -----------------------------------------------------------------------------
    def observation_space(self, agent: str) -> spaces.Box | spaces.Dict:
        self._check_known(agent)
        return self._observation_space

    def action_space(self, agent: str) -> spaces.Discrete:
        self._check_known(agent)
        return self._action_space

    @property
    def np_random(self) -> np.random.Generator:
        """A generator seeded by ``reset(seed)`` (before any: by the scenario's seed), for
        wrappers and users; the env's own randomness derives from the seed by name."""
        return self._np_random

    @property
    def np_random_seed(self) -> int:
        return self._np_random_seed

    # --- the PettingZoo API -----------------------------------------------------------------
    def reset(self, seed: int | None = None, options: dict | None = None):
        self._check_open()
        if seed is not None:
            self._seed, self._resets_since_seed = int(seed), 0
            self._np_random, self._np_random_seed = seeding.np_random(int(seed))
        with self._threads(), storage_errors("the env folder", self.run.path):
            self._player.start_episode(self._seed, self._resets_since_seed)
        self._resets_since_seed += 1
        self.agents = list(self.possible_agents)
        self._round = 0
        self._budgets.reset()
        self._state = {a: OrgMemory() for a in self.agents}
        self._participated = set()
        self.round_log = []
        self._unlearner.start_episode()
        self.unlearning_log = []
        return (
            {a: self._observe(a) for a in self.agents},
            {a: {ACTION_MASK: self._budgets.mask(a)} for a in self.agents},
        )

    def request_unlearning(self, org: str, method: str = "exact_replay"):
        """Ask to forget ``org`` with ``method`` (see :mod:`fedenv.unlearning`) at the start of
        the next step: it is then done (terminated, its action ignored, no future payouts).
        When the episode is over (no step follows), it is carried out at once and its
        :class:`~fedenv.unlearning.unlearner.UnlearningOutcome` returned (None otherwise).
        Raises now, changing nothing, for an unknown organization or method, a method the
        aggregator cannot work with, an organization already forgotten or that never took
        part in this episode."""
        self._check_open()
        self._unlearner.request(org, method, self.round_log)
        if self.agents or not self.round_log:
            return None
        with self._threads():
            outcome = self._unlearner.apply(org, method, self.round_log, self._round)
        self.unlearning_log.append(outcome)
        return outcome

    def compare_unlearning(self, org: str, methods: tuple[str, ...]) -> dict[str, dict]:
        """What each unlearning method would make of forgetting ``org`` now, against the
        ``retrain`` oracle; nothing is recorded and the global model stays (for studies)."""
        with self._threads():
            return self._unlearner.compare(org, methods, self.round_log)

    def _threads(self):
        """The engine's CPU threads (``training.cpu_threads``, or this process's share of the
        CPUs) for everything a step computes, restored for the caller after."""
        return self._player.engine.threads()

    def step(self, actions: Mapping[str, Any]):
        self._check_open()
        if not self.agents and self.round_log:
            raise InvalidActionError(
                "the episode is over (every agent is done): call reset() to start the next one. "
                "A wrapper that steps on past the last round cannot drive fedenv: SuperSuit "
                "3.11.0's black_death_v3 ends an episode only when every agent is both "
                "terminated and truncated; see docs/integrations.md for the SB3 path"
            )
        levels = resolve_actions(
            actions,
            live=self.agents,
            possible=self.possible_agents,
            space=self._action_space,
            budgets=self._budgets,
            strict=self.strict,
        )
        start = time.perf_counter()
        with self._threads(), storage_errors("the env folder", self.run.path):
            forgotten = {}
            for org, method in self._unlearner.due(self._round):
                forgotten[org] = self._unlearner.apply(org, method, self.round_log, self._round)
                self.unlearning_log.append(forgotten[org])
            levels = {o: 0 if o in forgotten else k for o, k in levels.items()}
            outcome = self._player.play(self._round, levels)
        self._round += 1
        last_round = self._round >= self.scenario.max_rounds
        rewards, terminations, truncations, infos = {}, {}, {}, {}
        for org in self.agents:
            row, state = outcome.orgs[org], self._state[org]
            self._budgets.spend(org, row.costs.total)
            state.reward, state.contribution = row.reward, row.contribution
            state.payout, state.level = row.payout, row.level
            state.submitted += row.participated
            state.accepted += row.accepted
            rewards[org] = row.reward
            terminations[org] = self._budgets.out(org)
            truncations[org] = last_round
            infos[org] = {**outcome.info(org), ACTION_MASK: self._budgets.mask(org)}
            if org in forgotten:  # done; past payouts clawed back with [unlearning_policy]
                rewards[org] -= forgotten[org].clawback
                terminations[org] = True
                infos[org]["unlearning"] = forgotten[org].info()
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

    def render(self, mode: str | None = None) -> str | None:
        """The last round as a table (``ansi``: returned; ``human``: printed).  ``mode``: the
        old-style argument some wrappers still pass (RLlib's ``ParallelPettingZooEnv``); None
        means the env's ``render_mode``."""
        self._check_open()
        mode = mode or self.render_mode
        if mode is None:
            gymnasium.logger.warn(
                "render() called without a render_mode; pass render_mode="
                "'ansi' or 'human' to fedenv.parallel_env"
            )
            return None
        if mode not in self.metadata["render_modes"]:
            raise ConfigError("render_mode", f"must be one of {self.metadata['render_modes']}")
        table = round_table(self.round_log[-1] if self.round_log else None)
        if mode == "human":
            print(table, end="")
            return None
        return table

    def close(self) -> None:
        if getattr(self, "run", None) is not None:
            self.run.close()
            self.run = None

    def state(self) -> np.ndarray:
        """``possible_agents``' observations, concatenated (zeros for one that is done)."""
        self._check_open()
        return np.concatenate(
            [
                self._box(a) if a in self.agents else np.zeros(len(OBS_FIELDS), np.float32)
                for a in self.possible_agents
            ]
        )

    # --- copies (pickle, copy.deepcopy): the live state travels, with the folder's files ---
    def __getstate__(self) -> dict[str, Any]:
        self._check_open()
        from fedenv.folder_copies import folder_files

        episode = None
        if self._state:  # reset at least once: the episode goes on in the copy
            names = ("agents", "_round", "_state", "_participated", "round_log", "unlearning_log")
            episode = {name: getattr(self, name) for name in names}
            episode["budgets"] = dict(self._budgets.spent)
            episode["player"] = self._player.episode_state()
            episode["unlearner"] = self._unlearner.episode_state()
        named = self._init_args["run_dir"]
        return {
            "scenario": self.scenario,
            "options": {**self._init_args, "run_dir": None if named is None else str(named)},
            "files": folder_files(self.run.path),
            "episode": episode,
            "np_random": (self._np_random.bit_generator.state, self._np_random_seed),
            "seed": (self._seed, self._resets_since_seed),
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        from fedenv.folder_copies import copy_destination

        options = dict(state["options"])
        if options["run_dir"] is not None:  # never the original's folder: a new sibling
            options["run_dir"] = copy_destination(options["run_dir"])
        self.__init__(state["scenario"], **options, _files=state["files"])
        self._restore(state)

    @classmethod
    def reopen(cls, state: Mapping[str, Any], run_dir: str | Path) -> FedOrgParallelEnv:
        """An env that continues ``state`` (this class's ``__getstate__()``, saved before a
        step) in ``run_dir``, the folder it was saved from, as that folder is now: not a copy.
        For a step killed while it carried out an unlearning: the step repeated finds what the
        killed one had committed (:mod:`fedenv.unlearning.journal`) and ends with the same
        certificate.  ``state["files"]`` is not written: the folder's own files are used."""
        env = cls.__new__(cls)
        env.__init__(state["scenario"], **{**state["options"], "run_dir": Path(run_dir)})
        env._restore(state)
        return env

    def _restore(self, state: Mapping[str, Any]) -> None:
        """The live state of ``state`` (RNG, seed, the episode) on this freshly built env."""
        bit_state, self._np_random_seed = state["np_random"]
        self._np_random.bit_generator.state = bit_state
        self._seed, self._resets_since_seed = state["seed"]
        episode = None if state["episode"] is None else dict(state["episode"])
        if episode is not None:
            self._budgets.spent = episode.pop("budgets")
            self._player.restore_episode_state(episode.pop("player"))
            self._unlearner.restore_episode_state(episode.pop("unlearner"))
            vars(self).update(episode)

    # --- helpers ----------------------------------------------------------------------------
    def _check_open(self) -> None:
        if getattr(self, "run", None) is None:
            raise EnvClosedError(
                f"this {self.metadata['name']} env is closed; build a new one "
                "(fedenv.parallel_env) to go on"
            )

    def _check_known(self, agent: str) -> None:
        if agent not in self.possible_agents:
            raise InvalidActionError(f"unknown agent {agent!r} (agents: {self.possible_agents})")

    def _observe(self, agent: str) -> np.ndarray | dict[str, np.ndarray]:
        if self.mask_observations:
            return {"observation": self._box(agent), ACTION_MASK: self._budgets.mask(agent)}
        return self._box(agent)

    def _box(self, agent: str) -> np.ndarray:
        org = self._orgs[agent]
        return observation_box(
            self._state[agent],
            round_fraction=self._round / self.scenario.max_rounds,
            budget_fraction=self._budgets.left(agent) / org.budget,
            money_scale=self._money_scale,
            scores=self._player.global_result,
            domain=org.domain,
            participated=self._participated,
            others=[a for a in self.possible_agents if a != agent],
            partners=self._partners[agent],
            level_fraction=self._state[agent].level / self.scenario.num_levels,
        )


def parallel_env(
    scenario: str | Path | Scenario = "default",
    *,
    run_dir: str | Path | None = None,
    render_mode: str | None = None,
    store_adapters: bool = True,
    strict: bool = False,
    mask_observations: bool = False,
    max_cycles: int | None = None,
    keep_adapter_episodes: int = 0,
    **overrides: Any,
) -> FedOrgParallelEnv:
    """The ParallelEnv of ``scenario`` (a bundled name, a TOML file or a :class:`Scenario`).

    ``overrides`` are validated like the scenario file's keys (``seed``, ``max_rounds``,
    ``device``, ``contribution``, ``mechanism``, ``aggregator``, ``reward_pool``, ``preset``,
    or dotted paths such as ``lora.r``); ``max_cycles`` is PettingZoo's name for ``max_rounds``.
    ``run_dir``: the run folder (default: a temporary one, removed on close; see
    :mod:`fedenv.run_folder`).  ``store_adapters=False`` keeps only hashes, no adapter files;
    ``keep_adapter_episodes=K`` keeps the adapters of the last K episodes (0: all).
    ``strict``: actions for done agents and masked levels are errors (see Actions).
    ``mask_observations``: Dict observations ``{"observation", "action_mask"}`` (PettingZoo's
    classic convention)."""
    if max_cycles is not None:
        if "max_rounds" in overrides:
            raise ConfigError("max_cycles", "is PettingZoo's name for max_rounds: give one")
        overrides["max_rounds"] = max_cycles
    if isinstance(scenario, Scenario):
        scenario = scenario.with_overrides(**overrides) if overrides else scenario
    else:
        scenario = load_scenario(scenario, **overrides)
    return FedOrgParallelEnv(
        scenario,
        run_dir=run_dir,
        render_mode=render_mode,
        store_adapters=store_adapters,
        strict=strict,
        mask_observations=mask_observations,
        keep_adapter_episodes=keep_adapter_episodes,
    )


def env(scenario: str | Path | Scenario = "default", **kwargs: Any):
    """The AEC version of :func:`parallel_env` (``pettingzoo.utils.parallel_to_aec``)."""
    return parallel_to_aec(parallel_env(scenario, **kwargs))


raw_env = FedOrgParallelEnv
"""PettingZoo's name for the unwrapped class (a ParallelEnv here: fedorg is parallel-native)."""
