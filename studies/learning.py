"""Q-learning convergence on fedenv, and the learners' greedy return against the baselines.

    python -m studies.learning                        # the docs' figure and table (5 seeds, ~1 h)
    python -m studies.learning --scenario tiny --seeds 0,1 --episodes 4 --out runs/study-tiny
    python -m studies.learning --from-results runs/study-learning/results.json   # redraw only

For every seed, on the scenario's env: each learner (``q_learning``, ``q_learning_stateless``)
trains ``--episodes`` episodes exactly as ``train_agents.py --seed <seed>`` does (episode ``e``
resets with ``agents.training.episode_seed(seed, e)``), recording each organization's return
and participation per episode; then plays ``--eval-episodes`` greedy episodes on the
evaluation seeds of ``train_agents.py --eval-episodes`` (``agents.training.eval_seeds``).
The baselines play the same evaluation episodes (``myopic_greedy`` first trains
``--myopic-episodes`` episodes: it only needs to try each level once).

A seed's *greedy return* of a policy is the mean, over organizations and evaluation episodes,
of the organization's episode return.  Policies are compared to ``--reference`` by paired
per-seed differences with 95% CIs, paired tests and Holm's correction
(:mod:`fedenv.evaluation.statistics`).  Outputs in ``--out``: ``seed-<s>.json`` per seed as it
finishes (a rerun into the same ``--out`` reuses the seeds finished with the same settings),
``results.json`` (all of it), ``greedy.md`` (the table); ``--figure`` is the
convergence figure (mean and 95% t-band over seeds, per organization: return and participation
vs episode).
"""

from __future__ import annotations

import json
import multiprocessing
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np

from agents.cli import comma_list, fail, parse, parse_overrides
from agents.q_learning import QLearningConfig
from agents.registry import (
    ALGORITHMS,
    AgentSettings,
    build_team,
    observation_fields,
    resolve_assignment,
)
from agents.rollout import episode_seed, eval_seeds, evaluate, run_episode
from fedenv.evaluation.statistics import compare_paired, mean_interval
from studies import save_figure

PROG = "python -m studies.learning"
LEARNERS = ("q_learning", "q_learning_stateless")
BASELINES = ("myopic_greedy", "random", "always_max", "always_min", "never")


@dataclass
class LearningStudyConfig:
    """Q-learning convergence curves and the greedy comparison with the baselines."""

    scenario: str = "default"
    """scenario name or TOML file"""
    seeds: Annotated[tuple[int, ...], comma_list(int)] = (0, 1, 2, 3, 4)
    """seeds: each trains its own learners and plays its own evaluation episodes"""
    episodes: int = 55
    """training episodes of each learner (55: the main job)"""
    eval_episodes: int = 3
    """greedy evaluation episodes per policy and seed"""
    myopic_episodes: int = 5
    """training episodes of myopic_greedy before its greedy evaluation"""
    learners: Annotated[tuple[str, ...], comma_list(str)] = LEARNERS
    """learning algorithms whose convergence is drawn"""
    baselines: Annotated[tuple[str, ...], comma_list(str)] = BASELINES
    """policies compared in greedy evaluation only"""
    reference: str = "q_learning"
    """the policy every other is compared to"""
    override: tuple[str, ...] = ()
    """scenario overrides KEY=VALUE, as in train_agents.py"""
    workers: int = 1
    """processes, one seed each at a time (each gets cpu_count // workers torch threads)"""
    out: str = "runs/study-learning"
    """folder of the raw results"""
    figure: str = "docs/figures/learning_convergence.png"
    """the convergence figure ('' : none)"""
    from_results: str = ""
    """redraw from this results.json instead of running"""
    reuse: str = ""
    """an earlier results.json (same scenario, episodes, evaluation episodes and overrides):
    its seeds' results for the policies not run now are reused"""
    q_learning: QLearningConfig = field(default_factory=QLearningConfig)
    """the Q-learners' hyperparameters (q_learning and q_learning_stateless)"""

    def __post_init__(self) -> None:
        from agents.config import ConfigError

        for name in ("episodes", "eval_episodes", "workers"):
            if getattr(self, name) < 1:
                raise ConfigError(name, f"must be >= 1, got {getattr(self, name)}")
        if self.myopic_episodes < 0:
            raise ConfigError("myopic_episodes", f"must be >= 0, got {self.myopic_episodes}")
        for option in ("learners", "baselines"):
            for name in getattr(self, option):
                if name not in ALGORITHMS:
                    raise ConfigError(option, f"unknown algorithm {name!r}")
        if self.reference not in (*self.learners, *self.baselines):
            raise ConfigError("reference", f"{self.reference!r} is neither a learner nor a baseline")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError("seeds", f"need distinct seeds, got {list(self.seeds)}")
        parse_overrides(self.override)


# --- one seed ------------------------------------------------------------------------------------


def _team(env: Any, algorithm: str, seed: int, q_learning: QLearningConfig):
    orgs = list(env.possible_agents)
    return build_team(
        resolve_assignment(algorithm, orgs),
        {a: env.observation_space(a) for a in orgs},
        {a: env.action_space(a) for a in orgs},
        seed=seed,
        settings=AgentSettings(q_learning=q_learning, observation_fields=observation_fields(env)),
    )


def _greedy_returns(env: Any, team: Any, seeds: Sequence[int]) -> dict[str, float]:
    records = evaluate(env, team, seeds)
    return {
        org: float(np.mean([r.agents[org].episode_return for r in records]))
        for org in env.possible_agents
    }


def run_seed(config: LearningStudyConfig, seed: int, threads: int = 0) -> dict[str, Any]:
    """Train the learners and evaluate every policy for one seed (a worker's job)."""
    import fedenv

    if threads:
        import torch

        torch.set_num_threads(threads)
    start = time.perf_counter()
    overrides = parse_overrides(config.override)
    if threads:
        overrides.setdefault("training.cpu_threads", threads)
    env = fedenv.parallel_env(config.scenario, store_adapters=False, **overrides)
    evaluation = eval_seeds(seed, config.eval_episodes)
    curves: dict[str, dict[str, dict[str, list[float]]]] = {}
    greedy: dict[str, dict[str, float]] = {}
    try:
        for algorithm in config.learners:
            team = _team(env, algorithm, seed, config.q_learning)
            curve = {"return": {o: [] for o in env.possible_agents},
                     "participation": {o: [] for o in env.possible_agents}}
            for episode in range(config.episodes):
                record = run_episode(env, team, seed=episode_seed(seed, episode))
                team.end_episode()
                for org, rec in record.agents.items():
                    curve["return"][org].append(rec.episode_return)
                    curve["participation"][org].append(rec.participation_rate)
            curves[algorithm] = curve
            greedy[algorithm] = _greedy_returns(env, team, evaluation)
        for algorithm in config.baselines:
            team = _team(env, algorithm, seed, config.q_learning)
            if ALGORITHMS[algorithm].learns:
                for episode in range(config.myopic_episodes):
                    run_episode(env, team, seed=episode_seed(seed, episode))
                    team.end_episode()
            greedy[algorithm] = _greedy_returns(env, team, evaluation)
    finally:
        env.close()
    return {"seed": seed, "run": run_key(config), "curves": curves, "greedy": greedy,
            "seconds": round(time.perf_counter() - start, 1)}


def run_key(config: LearningStudyConfig) -> dict[str, Any]:
    """What a seed's results depend on (a finished seed file is reused only when it matches)."""
    keys = ("scenario", "episodes", "eval_episodes", "myopic_episodes", "learners", "baselines",
            "override", "q_learning")
    return json.loads(json.dumps({k: asdict(config)[k] for k in keys}))


def finished_seed(config: LearningStudyConfig, seed: int) -> dict[str, Any] | None:
    """The seed's results from an earlier (killed or partial) run into the same --out, if they
    were made with the same settings."""
    path = Path(config.out) / f"seed-{seed}.json"
    if not path.is_file():
        return None
    result = json.loads(path.read_text())
    return result if result.get("run") == run_key(config) else None


def run_study(config: LearningStudyConfig) -> dict[str, Any]:
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[int, dict[str, Any]] = {}

    def finished(result: dict[str, Any]) -> None:
        results[result["seed"]] = result
        (out / f"seed-{result['seed']}.json").write_text(json.dumps(result) + "\n")
        mean = {p: np.mean(list(r.values())) for p, r in result["greedy"].items()}
        print(f"seed {result['seed']} ({result['seconds']} s): greedy return "
              + ", ".join(f"{p} {v:.2f}" for p, v in mean.items()), file=sys.stderr, flush=True)

    todo = []
    for seed in config.seeds:
        earlier = finished_seed(config, seed)
        if earlier is None:
            todo.append(seed)
        else:
            results[seed] = earlier
            print(f"seed {seed}: reusing {out / f'seed-{seed}.json'}", file=sys.stderr)
    if config.workers == 1:
        for seed in todo:
            finished(run_seed(config, seed))
    else:
        threads = max(1, (multiprocessing.cpu_count() or 1) // config.workers)
        with ProcessPoolExecutor(config.workers,
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(run_seed, config, seed, threads) for seed in todo]
            for future in as_completed(futures):
                finished(future.result())
    document = {"config": asdict(config), "seeds": [results[s] for s in config.seeds]}
    if config.reuse:
        document = merge_reused(document, json.loads(Path(config.reuse).read_text()))
    (out / "results.json").write_text(json.dumps(document, indent=1) + "\n")
    return document


SAME = ("scenario", "episodes", "eval_episodes", "myopic_episodes", "override")


def merge_reused(document: dict[str, Any], earlier: Mapping[str, Any]) -> dict[str, Any]:
    """``document`` completed with ``earlier``'s results for the policies it did not run (the
    same seeds: the evaluation episodes are the seeds'); ValueError if the runs differ."""
    mine, theirs = document["config"], earlier["config"]
    for key in SAME:
        if json.dumps(mine[key]) != json.dumps(theirs[key]):  # tuples and lists alike
            raise ValueError(f"reuse: {key} differs ({mine[key]!r} vs {theirs[key]!r})")
    by_seed = {s["seed"]: s for s in earlier["seeds"]}
    missing = [s["seed"] for s in document["seeds"] if s["seed"] not in by_seed]
    if missing:
        raise ValueError(f"reuse: the earlier results lack seeds {missing}")
    learners = [*mine["learners"], *(p for p in theirs["learners"] if p not in mine["learners"])]
    baselines = [*mine["baselines"],
                 *(p for p in theirs["baselines"] if p not in mine["baselines"])]
    for seed in document["seeds"]:
        old = by_seed[seed["seed"]]
        seed["curves"] = {**old["curves"], **seed["curves"]}
        seed["greedy"] = {**old["greedy"], **seed["greedy"]}
    merged = {**mine, "learners": learners, "baselines": baselines,
              "reused": {"from": mine["reuse"], "config": theirs}}
    return {**document, "config": merged}


# --- the table and the figure --------------------------------------------------------------------


def greedy_table(document: Mapping[str, Any]) -> str:
    """Markdown: each policy's greedy return (mean, 95% CI over seeds) and its paired
    difference to the reference (95% CI, test, Holm-adjusted p)."""
    config, seeds = document["config"], document["seeds"]
    reference = config["reference"]
    policies = [*config["learners"], *config["baselines"]]
    per_seed = {
        p: {s["seed"]: float(np.mean(list(s["greedy"][p].values()))) for s in seeds}
        for p in policies
    }
    comparisons = {c.mechanism: c for c in compare_paired("greedy return", per_seed, reference)}
    lines = [
        (f"| policy | greedy return (95% CI) | {reference} minus policy (95% CI) | test | "
        f"p (Holm) | {reference} better? |"),
        "|---|---|---|---|---|---|",
    ]
    for policy in policies:
        mean = mean_interval(list(per_seed[policy].values()))
        cell = f"{mean.mean:.2f} [{mean.low:.2f}, {mean.high:.2f}]"
        if policy == reference:
            lines.append(f"| **{policy}** | {cell} | | | | |")
            continue
        c = comparisons[policy]
        d = c.difference
        assert d is not None
        # the table reads "reference minus policy": flip the sign of policy - reference
        diff = f"{-d.mean:+.2f} [{-d.high:+.2f}, {-d.low:+.2f}]"
        needed = (f"~{c.seeds_needed} seeds" if c.seeds_needed is not None
                  else "no difference of any size to detect, or over 100,000 seeds")
        better = "yes" if c.detected and d.mean < 0 else ("no: worse" if c.detected else
                                                          f"not detected ({needed})")
        lines.append(f"| {policy} | {cell} | {diff} | {c.test} | {c.p_holm:.3g} | {better} |")
    return "\n".join(lines) + "\n"


def draw_convergence(document: Mapping[str, Any], path: str | Path) -> Path:
    """Return and participation per organization vs episode: mean and 95% t-band over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from scipy import stats

    config, seeds = document["config"], document["seeds"]
    learners = list(config["learners"])
    orgs = list(seeds[0]["curves"][learners[0]]["return"])
    figure, axes = plt.subplots(2, len(orgs), figsize=(3.4 * len(orgs), 6.2), sharex=True,
                                squeeze=False)
    n = len(seeds)
    factor = float(stats.t.ppf(0.975, n - 1)) / np.sqrt(n) if n > 1 else 0.0
    for row, key in enumerate(("return", "participation")):
        for col, org in enumerate(orgs):
            ax = axes[row][col]
            for learner in learners:
                values = np.array([s["curves"][learner][key][org] for s in seeds])
                mean, std = values.mean(axis=0), values.std(axis=0, ddof=1) if n > 1 else 0.0
                x = np.arange(1, values.shape[1] + 1)
                (line,) = ax.plot(x, mean, label=learner, linewidth=1.3)
                low, high = mean - factor * std, mean + factor * std
                if key == "participation":  # a rate: the band stays within [0, 1]
                    low, high = np.clip(low, 0.0, 1.0), np.clip(high, 0.0, 1.0)
                ax.fill_between(x, low, high, alpha=0.2, color=line.get_color())
            ax.set_title(org if row == 0 else "", fontsize=10)
            if col == 0:
                ax.set_ylabel("episode return" if key == "return" else "participation rate")
            if row == 1:
                ax.set_xlabel("training episode")
    axes[0][0].legend(fontsize=8)
    figure.suptitle(f"{config['scenario']}: mean and 95% band over {n} seeds", fontsize=11)
    return save_figure(figure, path)


def main(argv: Sequence[str] | None = None) -> int:
    config, _ = parse(LearningStudyConfig, argv, prog=PROG)
    if config.from_results:
        try:
            document = json.loads(Path(config.from_results).read_text())
        except (OSError, json.JSONDecodeError) as error:
            fail(PROG, "from_results", f"cannot read {config.from_results}: {error}")
    else:
        document = run_study(config)
    table = greedy_table(document)
    Path(config.out).mkdir(parents=True, exist_ok=True)
    (Path(config.out) / "greedy.md").write_text(table)
    print(table)
    if config.figure:
        print(f"figure: {draw_convergence(document, config.figure)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
