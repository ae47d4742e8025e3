"""Comparing incentive mechanisms on the same scenarios, seeds and policies.

A *run* is one (scenario, mechanism, seed): the scenario's env with ``incentives.mechanism`` set
to the mechanism, a controller from the caller's policy factory (which may first train on that
env, with :func:`play_episode` and ``learn=True``), and ``episodes`` evaluation episodes whose
reset seeds derive from the run's seed alone (``derive_seed(seed, "evaluation", episode)``,
:mod:`fedenv.seeding`).
Every mechanism thus meets the same world, the same episode seeds and the same policy seeds
(common random numbers): what differs between two rows is the mechanism, and how the policy
answers it.  The scenario keeps its own ``seed`` (its data, base model and identities).

Each metric (:data:`~fedenv.evaluation.metrics.METRICS`) is computed per episode from the env's
round records (:mod:`fedenv.evaluation.metrics`), then averaged over the run's episodes;
:mod:`fedenv.evaluation.report` aggregates runs over seeds and writes the outputs.

This module knows nothing of ``agents/``: a policy factory is any picklable callable
``factory(env, seed) -> controller`` whose controller maps the live organizations'
observations to actions (``controller.act(observations) -> {org: action}``).
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from fedenv.data import PRIVATE_DOMAINS
from fedenv.errors import ConfigError
from fedenv.evaluation.metrics import (
    METRICS,
    EpisodeRecord,
    episode_metrics,
    jain_index,
    mean_metrics,
    pearson,
)
from fedenv.scenario import Scenario, load_scenario
from fedenv.scoring.contribution import METHODS
from fedenv.scoring.incentives import MECHANISMS
from fedenv.seeding import derive_seed

__all__ = [
    "BACKENDS",
    "METRICS",
    "Comparison",
    "Controller",
    "EpisodeRecord",
    "Learner",
    "Plan",
    "PolicyFactory",
    "RunResult",
    "RunSpec",
    "compare",
    "episode_metrics",
    "jain_index",
    "mean_metrics",
    "pearson",
    "plan_comparison",
    "play_episode",
    "run_one",
    "unknown_domains",
]

BACKENDS = ("process", "ray")
"""Where :func:`compare` plays runs: this process or a process pool, or Ray tasks."""
_OWN_DOMAIN = "own_domain_score"
_GLOBAL = "global_score"


class Controller(Protocol):
    """Chooses the actions of the live organizations (evaluation: no exploring, no learning)."""

    def act(self, observations: Mapping[str, np.ndarray]) -> Mapping[str, int]: ...


class Learner(Controller, Protocol):
    """A controller that also learns from each step (as ``agents.Team`` does)."""

    def learn(
        self,
        observations: Mapping[str, np.ndarray],
        actions: Mapping[str, int],
        rewards: Mapping[str, float],
        next_observations: Mapping[str, np.ndarray],
        terminations: Mapping[str, bool],
        truncations: Mapping[str, bool],
    ) -> Mapping[str, float]: ...


PolicyFactory = Callable[[Any, int], Controller]
"""``factory(env, seed)``: the controller of one run; it may train on ``env`` first."""


# --- playing an episode ----------------------------------------------------------------------


def play_episode(
    env: Any,
    controller: Controller | Learner,
    *,
    seed: int,
    unknown_domains: Sequence[str] = (),
    learn: bool = False,
) -> EpisodeRecord:
    """Reset a fedenv ``env`` with ``seed``, play until every organization is done, record it.

    The episode's rounds are the env's own records (``env.round_log``).  With ``learn``, the
    controller (a :class:`Learner`) learns from every step.  The base model's scores are read
    from the reset observations (scores / 10, float32)."""
    from fedenv.fedorg import OBS_FIELDS

    observations, _ = env.reset(seed=seed)
    organizations = tuple(env.possible_agents)
    domain_of = {o.name: o.domain for o in env.scenario.organizations}
    first = observations[organizations[0]]
    base_score = 10.0 * float(first[OBS_FIELDS.index(_GLOBAL)])
    base_domains = {
        domain_of[org]: 10.0 * float(obs[OBS_FIELDS.index(_OWN_DOMAIN)])
        for org, obs in observations.items()
    }
    while env.agents:
        actions = dict(controller.act({org: observations[org] for org in env.agents}))
        next_observations, rewards, terminations, truncations, _ = env.step(actions)
        if learn:
            controller.learn(
                observations, actions, rewards, next_observations, terminations, truncations
            )
        observations = next_observations
    malicious = frozenset(o.name for o in env.scenario.organizations if o.behaviour != "honest")
    return EpisodeRecord(
        organizations,
        base_score,
        base_domains,
        tuple(env.round_log),
        malicious,
        tuple(unknown_domains),
    )


# --- the plan: which runs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RunSpec:
    """One (scenario, mechanism, seed) with its episode count and env folder."""

    scenario: Scenario
    mechanism: str
    seed: int
    episodes: int
    run_dir: str | None = None
    store_adapters: bool = True


@dataclass(frozen=True)
class Plan:
    """The validated comparison: every scenario x mechanism x seed."""

    scenarios: tuple[Scenario, ...]
    mechanisms: tuple[str, ...]
    seeds: tuple[int, ...]
    episodes: int

    def runs(
        self, env_root: str | Path | None = None, *, store_adapters: bool = True
    ) -> list[RunSpec]:
        """The runs in table order; with ``env_root``, each keeps its env folder under
        ``<env_root>/<scenario>/<mechanism>/seed-<seed>`` (ledgers, and adapters unless
        ``store_adapters`` is false)."""

        def folder(s: Scenario, m: str, seed: int) -> str | None:
            return None if env_root is None else str(Path(env_root) / s.name / m / f"seed-{seed}")

        return [
            RunSpec(s, m, seed, self.episodes, folder(s, m, seed), store_adapters)
            for s in self.scenarios
            for m in self.mechanisms
            for seed in self.seeds
        ]


def plan_comparison(
    scenarios: Sequence[str | Path | Scenario],
    mechanisms: Sequence[str] = (),
    seeds: Sequence[int] = (0,),
    episodes: int = 1,
    *,
    overrides: Mapping[str, Any] | None = None,
    contribution: str | None = None,
) -> Plan:
    """Load and check everything a comparison needs before any run starts.

    ``mechanisms`` empty: every registered one.  ``overrides`` apply to every scenario (as in
    ``fedenv.parallel_env``); ``contribution`` sets ``scoring.contribution``.  Errors are
    :class:`ConfigError` naming ``scenario``, ``mechanisms``, ``seeds``, ``episodes``,
    ``override`` or ``contribution``."""
    mechanisms = tuple(mechanisms) or tuple(MECHANISMS)
    for name in mechanisms:
        if name not in MECHANISMS:
            raise ConfigError(
                "mechanisms", f"unknown mechanism {name!r} (known: {', '.join(MECHANISMS)})"
            )
    if len(set(mechanisms)) != len(mechanisms):
        raise ConfigError("mechanisms", f"repeated mechanism in {', '.join(mechanisms)}")
    seeds = tuple(seeds)
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        raise ConfigError("seeds", f"need one or more integers >= 0, got {list(seeds)}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError("seeds", f"repeated seed in {list(seeds)}")
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ConfigError("episodes", f"must be an integer >= 1, got {episodes!r}")
    if contribution is not None and contribution not in METHODS:
        raise ConfigError(
            "contribution", f"unknown method {contribution!r} (known: {', '.join(METHODS)})"
        )
    if not scenarios:
        raise ConfigError("scenario", "name at least one scenario")
    loaded = tuple(_load(s, dict(overrides or {}), contribution) for s in scenarios)
    names = [s.name for s in loaded]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError("scenario", f"two scenarios are named {name!r}")
    return Plan(loaded, mechanisms, seeds, episodes)


def _load(
    source: str | Path | Scenario, overrides: dict[str, Any], contribution: str | None
) -> Scenario:
    try:
        scenario = source if isinstance(source, Scenario) else load_scenario(source)
    except ConfigError as error:  # the file's path, and what is wrong in it
        where = f"{error.source}: " if error.source else f"{source}: "
        what = error.problem if error.field == "scenario" else f"{error.field}: {error.problem}"
        raise ConfigError("scenario", where + what) from None
    try:
        scenario = scenario.with_overrides(**overrides) if overrides else scenario
    except ConfigError as error:
        raise ConfigError("override", f"{error.field}: {error.problem}") from None
    if contribution is not None:
        try:
            scenario = scenario.with_overrides(contribution=contribution)
        except ConfigError as error:
            raise ConfigError("contribution", f"{scenario.name}: {error.problem}") from None
    return scenario


# --- running ------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    """One run's metrics (means over its episodes), per-episode metrics and records."""

    scenario: str
    mechanism: str
    seed: int
    metrics: dict[str, float | None]
    episode_metrics: list[dict[str, float | None]]
    episodes: list[EpisodeRecord]
    seconds: float
    run_dir: str | None


def unknown_domains(scenario: Scenario) -> tuple[str, ...]:
    """The scenario's domains that an embedded base model was not pretrained on."""
    from fedenv.data.model import PRESETS

    if scenario.model.preset not in PRESETS:
        return ()
    return tuple(
        d for d in dict.fromkeys(o.domain for o in scenario.organizations) if d in PRIVATE_DOMAINS
    )


def run_one(spec: RunSpec, policy: PolicyFactory) -> RunResult:
    """Build the run's env, get its controller, play its evaluation episodes."""
    from fedenv.fedorg import parallel_env

    start = time.perf_counter()
    env = parallel_env(
        spec.scenario,
        run_dir=spec.run_dir,
        store_adapters=spec.store_adapters,
        mechanism=spec.mechanism,
    )
    try:
        controller = policy(env, spec.seed)
        domains = unknown_domains(spec.scenario)
        episodes = [
            play_episode(
                env,
                controller,
                seed=derive_seed(spec.seed, "evaluation", e),
                unknown_domains=domains,
            )
            for e in range(spec.episodes)
        ]
    finally:
        env.close()
    per_episode = [episode_metrics(e) for e in episodes]
    return RunResult(
        spec.scenario.name,
        spec.mechanism,
        spec.seed,
        mean_metrics(per_episode),
        per_episode,
        episodes,
        time.perf_counter() - start,
        spec.run_dir,
    )


@dataclass
class Comparison:
    """A finished comparison: the plan and its runs, in the plan's order."""

    plan: Plan
    runs: list[RunResult]


def compare(
    plan: Plan,
    policy: PolicyFactory,
    *,
    workers: int = 1,
    env_root: str | Path | None = None,
    store_adapters: bool = True,
    progress: Callable[[RunResult, int, int], None] | None = None,
    backend: str = "process",
    address: str | None = None,
) -> Comparison:
    """Play every run of ``plan``; ``workers > 1`` runs them in a process pool (``spawn``;
    ``policy`` must then be picklable, and each worker gets its share of the CPUs as torch
    threads, see :func:`fedenv.device.cpu_threads`).  ``backend="ray"``: every run is a Ray task
    (:mod:`fedenv.evaluation.ray_backend`; a local Ray of ``workers`` CPUs, or the cluster at
    ``address``).  ``env_root``: keep each run's env folder there (default: temporary folders);
    ``store_adapters=False`` keeps only the hashes.  ``progress(result, done, total)`` is
    called as runs finish."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError("workers", f"must be an integer >= 1, got {workers!r}")
    if backend not in BACKENDS:
        raise ConfigError("backend", f"must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if address is not None and backend != "ray":
        raise ConfigError("address", "is the Ray cluster of --backend ray")
    specs = plan.runs(env_root, store_adapters=store_adapters)
    results: dict[int, RunResult] = {}

    def finished(index: int, result: RunResult) -> None:
        results[index] = result
        if progress is not None:
            progress(result, len(results), len(specs))

    if backend == "ray":
        from fedenv.evaluation.ray_backend import run_on_ray

        run_on_ray(specs, run_one, policy, workers=workers, address=address, finished=finished)
    elif workers == 1 or len(specs) == 1:
        for index, spec in enumerate(specs):
            finished(index, run_one(spec, policy))
    else:
        processes = min(workers, len(specs))
        with ProcessPoolExecutor(
            processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_share_cpus,
            initargs=(processes,),
        ) as pool:
            futures = {pool.submit(run_one, spec, policy): i for i, spec in enumerate(specs)}
            try:
                for future in as_completed(futures):
                    finished(futures[future], future.result())
            except BaseException:  # a failed run (or Ctrl-C): start no further ones
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    return Comparison(plan, [results[i] for i in range(len(specs))])


def _share_cpus(processes: int) -> None:
    """Worker start: ``processes`` workers share this machine's CPUs (see fedenv.device)."""
    import torch

    from fedenv.device import PROCESSES_VARIABLE, cpu_threads

    os.environ[PROCESSES_VARIABLE] = str(processes)
    torch.set_num_threads(cpu_threads(processes))
