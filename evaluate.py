"""Compare incentive mechanisms on the same scenarios and seeds.

    python evaluate.py                                           # every mechanism, default scenario
    python evaluate.py --scenario tiny --mechanisms shapley,equal,none --seeds 0,1
    python evaluate.py --policy q_learning --train-episodes 20 --workers 2 --plot
    python evaluate.py --override max_rounds=4 --contribution shapley
    python evaluate.py --scenario tiny --sweep 'incentives.reward_pool=5,10' --sweep 'lora.r=4,8'
    python evaluate.py --backend ray --address auto --seeds 0,1,2,3,4,5,6,7   # on a Ray cluster

Answers "which mechanism gets the best model for the least cost, fairly, and without paying
attackers?" with paired differences to ``--reference`` over the seeds (95% CIs, paired tests,
Holm's correction): tables and a verdict on stdout, ``results.json`` / ``results.csv`` /
``summary.csv`` / ``paired.csv`` (and plots with ``--plot``) in ``--out``; with ``--sweep``, the
grid's tables (``grid.csv``, ``grid/``) and figures (``plots/grid/``).  Every option: ``python evaluate.py --help``; the metrics and
how to read the table: docs/evaluate.md.  The runs live in :mod:`fedenv.evaluation.play`, the metrics
in :mod:`fedenv.evaluation.metrics`, the aggregation and outputs in
:mod:`fedenv.evaluation.report`; this file is the command line, and wires the agents' registry
(``agents/``) in as the policy factory.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np

from agents.cli import comma_list, fail, parse, parse_overrides
from agents.config import ConfigError as AgentsConfigError
from agents.dashboard import flat_hparams, write_hparams, write_layout
from agents.registry import (
    ALGORITHMS,
    AgentSettings,
    build_team,
    observation_fields,
    parse_algo_spec,
    resolve_assignment,
)
from agents.rollout import episode_seed
from fedenv.device import check_device, resolve_device
from fedenv.disk import storage_error
from fedenv.errors import ConfigError, FedenvError, FolderBusyError
from fedenv.evaluation.play import (
    BACKENDS,
    Plan,
    RunResult,
    compare,
    plan_comparison,
    play_episode,
)
from fedenv.evaluation.plots import plot_grid, plot_summary, require_matplotlib
from fedenv.evaluation.ray_backend import require_ray
from fedenv.evaluation.report import (
    DEFAULT_REFERENCE,
    attack_table,
    grid_table,
    paired_comparisons,
    paired_table,
    summarize_comparison,
    summary_table,
    write_grid,
    write_results,
)
from fedenv.evaluation.sweep import SweepAxis, check_duplicate_keys, expand_plan, parse_sweeps
from fedenv.evaluation.tidy import has_parquet, write_tidy
from fedenv.evaluation.verdict import verdict
from fedenv.folder_lock import LOCK_FILE, FolderLock

PROG = "evaluate.py"


@dataclass
class EvaluateConfig:
    """Compare incentive mechanisms (who gets paid what) on the same scenarios and seeds.

    Mechanisms (--mechanisms): shapley, loo, equal, data_size, none.  Policies (--policy):
    random, always_max, always_min, never, myopic_greedy, q_learning, q_learning_stateless, dqn,
    shared_dqn.  Metrics: docs/evaluate.md.  Outputs: <out>/results.json, results.csv, summary.csv,
    envs/ (each run's ledgers), plots/"""

    scenario: Annotated[tuple[str, ...], comma_list(str)] = ("default",)
    """scenario names (scenarios/<name>.toml) or TOML files, comma-separated or repeated"""
    mechanisms: Annotated[tuple[str, ...], comma_list(str)] = ()
    """incentive mechanisms to compare, comma-separated (default: every registered one)"""
    seeds: Annotated[tuple[int, ...], comma_list(int)] = (0, 1, 2)
    """seeds, comma-separated: each drives the episode resets and the policies alike"""
    episodes: int = 1
    """evaluation episodes per (scenario, mechanism, seed)"""
    policy: str = "random"
    """the organizations' policy from the agents' registry, or per org: 'random,org_a=never'"""
    train_episodes: int = 0
    """training episodes of a learning policy on each run's env before its greedy evaluation"""
    contribution: str = ""
    """contribution scoring: loo, shapley or tmc_shapley ('': the scenario's)"""
    device: str = ""
    """torch device of the env: auto, cpu, cuda or cuda:N ('': the scenario's)"""
    override: tuple[str, ...] = ()
    """scenario overrides KEY=VALUE (JSON, else a string): max_rounds=4 lora.r=4 (each key once)"""
    sweep: tuple[str, ...] = ()
    """a grid axis KEY=V1,V2,... (repeat for more axes; the grid is their product, same seeds)"""
    reference: str = ""
    """the mechanism the others are compared to over seeds ('': equal if compared, else the first)"""
    workers: int = 1
    """processes running runs in parallel (1: this process; --backend ray: the local Ray's CPUs)"""
    backend: str = "process"
    """process (this process or --workers processes) or ray (every run a Ray task; ray extra)"""
    address: str = ""
    """the Ray cluster of --backend ray: auto or ray://host:10001 ('': a local Ray, started for the run)"""
    out: str = ""
    """output folder ('': runs/eval-<scenarios>__<policy>__<time>)"""
    adapters: bool = True
    """keep every update's adapter in <out>/envs for python -m chains verify (no: ledgers only)"""
    plot: bool = False
    """also draw one bar chart per metric into <out>/plots (needs matplotlib)"""
    progress: bool = True
    """print a line per finished run to stderr"""

    def __post_init__(self) -> None:
        if self.episodes < 1:
            raise ConfigError("episodes", f"must be >= 1, got {self.episodes}")
        if self.train_episodes < 0:
            raise ConfigError("train_episodes", f"must be >= 0, got {self.train_episodes}")
        if self.workers < 1:
            raise ConfigError("workers", f"must be >= 1, got {self.workers}")
        if self.backend not in BACKENDS:
            known = ", ".join(BACKENDS)
            raise ConfigError("backend", f"must be one of {known}, got {self.backend!r}")
        if self.address and self.backend != "ray":
            raise ConfigError("address", "is the Ray cluster of --backend ray")
        if self.backend == "ray":
            require_ray()
        if self.device:
            check_device(self.device)
        try:
            default, per_org = parse_algo_spec(self.policy)
        except AgentsConfigError as error:
            raise ConfigError("policy", error.problem) from None
        learners = sorted({a for a in (default, *per_org.values()) if a and ALGORITHMS[a].learns})
        if learners and self.train_episodes == 0:
            raise ConfigError(
                "train_episodes",
                f"{', '.join(learners)} learn(s): give --train-episodes N >= 1 to train "
                f"before the greedy evaluation",
            )
        overrides = self.overrides()  # checks the KEY=VALUE syntax and repeated keys
        check_duplicate_keys(overrides, self.sweeps())

    def sweeps(self) -> list[SweepAxis]:
        return parse_sweeps(self.sweep)

    def overrides(self) -> dict[str, Any]:
        values = parse_overrides(self.override)
        if self.device:
            values["device"] = self.device
        return values

    def out_dir(self, plan: Plan) -> Path:
        if self.out:
            return Path(self.out)
        slug = re.sub(r"[^A-Za-z0-9_.+-]+", "-", self.policy)
        return Path("runs") / (
            f"eval-{'+'.join(s.name for s in plan.scenarios)}__{slug}__{int(time.time())}"
        )


# --- the agents, as a policy factory ------------------------------------------------------------


@dataclass(frozen=True)
class AgentsPolicy:
    """``--policy``: the team of :mod:`agents.registry`; learners first train for
    ``train_episodes`` on the run's env (the episodes train_agents.py would play with that seed,
    through the same :func:`~fedenv.evaluation.play.play_episode` loop as the evaluation), then
    every policy acts greedily."""

    spec: str
    train_episodes: int

    def check(self, organizations: Sequence[str]) -> None:
        """Raise ConfigError("policy") unless the spec fits these organizations."""
        try:
            resolve_assignment(self.spec, list(organizations))
        except AgentsConfigError as error:
            raise ConfigError("policy", error.problem) from None

    def __call__(self, env: Any, seed: int) -> GreedyTeam:
        orgs = list(env.possible_agents)
        team = build_team(
            resolve_assignment(self.spec, orgs),
            {a: env.observation_space(a) for a in orgs},
            {a: env.action_space(a) for a in orgs},
            seed=seed,
            settings=AgentSettings(observation_fields=observation_fields(env)),
        )
        if any(ALGORITHMS[name].learns for name in team.assignment.values()):
            for episode in range(self.train_episodes):
                play_episode(env, team, seed=episode_seed(seed, episode), learn=True)
                team.end_episode()
        return GreedyTeam(team)


@dataclass
class GreedyTeam:
    """A trained team as a controller: no exploration, no learning."""

    team: Any

    def act(self, observations: Mapping[str, np.ndarray]) -> dict[str, int]:
        return self.team.act(observations, explore=False)


# --- TensorBoard -------------------------------------------------------------------------------------


def write_tensorboard(comparison: Any, rows: Sequence[Any], cells: Mapping[str, Any],
                      out: Path, config: EvaluateConfig) -> Path:
    """``<out>/tensorboard/<scenario or cell>/<mechanism>/``: per (scenario, mechanism) the
    HParams plugin's summaries (the scenario, the swept values, the mechanism and the CLI
    options; each metric's mean over seeds as ``hparams/<metric>``), and per evaluation episode
    (seeds in order) each organization's return, participation and payout under the Custom
    Scalars layout's tags."""
    from torch.utils.tensorboard import SummaryWriter

    root = out / "tensorboard"
    options = flat_hparams({k: v for k, v in dataclasses.asdict(config).items()
                            if k in ("policy", "train_episodes", "episodes", "contribution")})
    for row in rows:
        cell = cells.get(row.scenario)
        folder = root / re.sub(r"[^A-Za-z0-9_.=,+-]+", "_", row.scenario) / row.mechanism
        writer = SummaryWriter(str(folder))
        try:
            write_layout(writer)
            step = 0
            for run in comparison.runs:
                if (run.scenario, run.mechanism) != (row.scenario, row.mechanism):
                    continue
                for episode in run.episodes:
                    for org in episode.organizations:
                        played = [r.orgs[org] for r in episode.rounds if org in r.orgs]
                        writer.add_scalar(f"charts/episodic_return/{org}",
                                          sum(o.reward for o in played), step)
                        writer.add_scalar(f"charts/participation/{org}",
                                          sum(o.participated for o in played) / len(
                                              episode.rounds), step)
                        writer.add_scalar(f"incentives/payout/{org}",
                                          sum(o.payout for o in played), step)
                    step += 1
            hparams = {"scenario": cell.scenario if cell else row.scenario,
                       "mechanism": row.mechanism, **options,
                       **(flat_hparams(dict(cell.keys)) if cell else {})}
            metrics = {m: s.mean for m, s in row.stats.items() if s is not None}
            write_hparams(writer, hparams, metrics, step)
        finally:
            writer.close()
    return root


# --- the command line -------------------------------------------------------------------------------


def _report_progress(result: RunResult, done: int, total: int) -> None:
    score, payout = result.metrics["model/final_score"], result.metrics["cost/total_payout"]
    print(
        f"[{done}/{total}] {result.scenario} / {result.mechanism} / seed {result.seed}: "
        f"final score {score:.3f}, payout {payout:.2f} ({result.seconds:.1f} s)",
        file=sys.stderr,
        flush=True,
    )


def _check_devices(config: EvaluateConfig, plan: Plan) -> None:
    """Every run's device exists here, blamed on the option that chose it."""
    for scenario in plan.scenarios:
        try:
            resolve_device(scenario.device)
        except ConfigError as error:
            if config.device:
                raise ConfigError("device", error.problem) from None
            if "device" in parse_overrides(config.override):
                raise ConfigError("override", f"device: {error.problem}") from None
            raise ConfigError("scenario", f"{scenario.name}: device: {error.problem}") from None


def _check_out(out: Path, plan: Plan) -> None:
    """``--out`` is a new or empty folder, and every run folder lies inside it."""
    if out.exists() and not out.is_dir():
        raise ConfigError("out", f"{out} exists and is not a folder")
    if out.is_dir() and (out / "results.json").exists():
        raise ConfigError("out", f"{out} already holds results; choose a new folder")
    if out.is_dir() and any(name != LOCK_FILE for name in os.listdir(out)):
        raise ConfigError("out", f"{out} is not empty; evaluate.py writes into a new or empty "
                                 f"folder")
    root = (out / "envs").resolve()
    for run in plan.runs(out / "envs"):
        if not Path(run.run_dir or "").resolve().is_relative_to(root):
            raise ConfigError("out", f"the run folder {run.run_dir} would lie outside {out}")


def _compare(
    config: EvaluateConfig, plan: Plan, cells: list, policy: AgentsPolicy, out: Path
) -> None:
    """The comparison, its outputs under ``out`` and its report on stdout, under ``out``'s
    lock."""
    with FolderLock(out, purpose="evaluate.py output folder"):
        _check_out(out, plan)  # still new, now that no one else writes it
        comparison = compare(
            plan,
            policy,
            workers=config.workers,
            backend=config.backend,
            address=config.address or None,
            env_root=out / "envs",
            store_adapters=config.adapters,
            progress=_report_progress if config.progress else None,
        )
        rows = summarize_comparison(comparison)
        comparisons = paired_comparisons(rows, config.reference)
        attackers = {
            s.name: any(o.behaviour != "honest" for o in s.organizations) for s in plan.scenarios
        }
        record = {**dataclasses.asdict(config), "out": str(out)}
        paths = write_results(comparison, rows, out, record, comparisons)
        seeds = len(plan.seeds)
        print(
            f"\n{plan.episodes} episode(s) per run, policy {config.policy!r}, {seeds} seed(s): "
            f"mean ± half-width of its 95% CI over seeds (Student t; a bootstrap interval is shown "
            f"as [low, high]; docs/evaluate.md)\n"
        )
        print(summary_table(rows))
        attacked = [r for r in rows if attackers.get(r.scenario)]
        if attacked:
            print("Attacks (docs/incentives.md; clean score = the global benchmark score):\n")
            print(attack_table(attacked))
        print(f"Paired differences to {config.reference!r} (mean [95% CI] over seeds; "
              f"* = detected after Holm's correction):\n")
        print(paired_table(comparisons))
        print(verdict(rows, comparisons, has_attackers=attackers, reference=config.reference))
        print(f"results: {paths['json']}, {paths['csv']}, {paths['summary_csv']}, "
              f"{paths['paired_csv']}")
        tidy = write_tidy(comparison, out, cells)
        print("per organization and round: " + ", ".join(str(p) for p in tidy.values())
              + ("" if has_parquet() else " (Parquet needs the 'analysis' extra: pandas, pyarrow)"))
        print(f"tensorboard --logdir {write_tensorboard(comparison, rows, cells, out, config)}")
        if cells:
            grid = write_grid(rows, cells, out)
            print("\n" + grid_table(rows, cells, "model/final_score"))
            print(f"grid: {grid}, one table per metric in {out / 'grid'}")
        if config.plot:
            plots = plot_summary(rows, out / "plots")
            print(f"plots: {len(plots)} charts in {out / 'plots'}")
            if cells:
                figures = plot_grid(rows, cells, out / "plots" / "grid")
                print(f"grid figures: {len(figures)} in {out / 'plots' / 'grid'}")


def main(argv: Sequence[str] | None = None) -> int:
    config, _ = parse(EvaluateConfig, argv, prog=PROG)
    try:
        plan = plan_comparison(
            config.scenario,
            config.mechanisms,
            config.seeds,
            config.episodes,
            overrides=config.overrides(),
            contribution=config.contribution or None,
        )
        if not config.reference:
            default = DEFAULT_REFERENCE in plan.mechanisms
            config.reference = DEFAULT_REFERENCE if default else plan.mechanisms[0]
        elif config.reference not in plan.mechanisms:
            raise ConfigError("reference", f"{config.reference!r} is not among the mechanisms "
                                           f"{', '.join(plan.mechanisms)}")
        out = config.out_dir(plan)
        plan, cells = expand_plan(plan, config.sweeps())
        _check_devices(config, plan)
        policy = AgentsPolicy(config.policy, config.train_episodes)
        for scenario in plan.scenarios:
            policy.check(scenario.org_names)
        _check_out(out, plan)
        if config.plot:
            try:
                require_matplotlib()
            except ImportError as error:
                raise ConfigError("plot", str(error)) from None
    except (ConfigError, AgentsConfigError) as error:
        fail(PROG, error.field, error.problem)
    created = False
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            out.mkdir()
            created = True  # this process made it, and only then may remove it
        except FileExistsError:
            pass
        _compare(config, plan, cells, policy, out)
    except FolderBusyError as error:  # another evaluate.py writes there: leave it alone
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 1
    except ConfigError as error:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        if error.field == "out":  # --out was taken meanwhile
            fail(PROG, error.field, error.problem)
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 1
    except BaseException as error:
        if created:  # a failed or interrupted comparison leaves no partial output folder
            shutil.rmtree(out, ignore_errors=True)
        if isinstance(error, KeyboardInterrupt):
            print(f"\n{PROG}: interrupted", file=sys.stderr)
            return 130
        failure = storage_error(error, "the output folder", out) or error
        if not isinstance(failure, FedenvError):
            raise
        print(f"{PROG}: error: {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
