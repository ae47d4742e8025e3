"""Compare incentive mechanisms on the same scenarios and seeds.

    python evaluate.py                                           # every mechanism, default scenario
    python evaluate.py --scenario tiny --mechanisms shapley,equal,none --seeds 0,1
    python evaluate.py --policy q_learning --train-episodes 20 --workers 2 --plot
    python evaluate.py --override max_rounds=4 --contribution shapley

Answers "which mechanism gets the best model for the least cost, fairly, and without paying
attackers?": a table on stdout, ``results.json`` / ``results.csv`` / ``summary.csv`` (and plots
with ``--plot``) in ``--out``.  Every option: ``python evaluate.py --help``; the metrics and
how to read the table: docs/evaluate.md.  The runs live in :mod:`fedenv.evaluation.play`, the metrics
in :mod:`fedenv.evaluation.metrics`, the aggregation and outputs in
:mod:`fedenv.evaluation.report`; this file is the command line, and wires the agents' registry
(``agents/``) in as the policy factory.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import time
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents.base import derive_seed
from agents.config import ConfigError as AgentsConfigError
from agents.registry import ALGORITHMS, build_team, parse_algo_spec, resolve_assignment
from agents.rollout import run_episode
from fedenv.errors import ConfigError, FedenvError
from fedenv.evaluation.play import Plan, RunResult, compare, plan_comparison
from fedenv.evaluation.report import (
    plot_summary,
    require_matplotlib,
    summarize_comparison,
    summary_table,
    verdict,
    write_results,
)
from fedenv.scenario import DEVICES
from fedenv.scoring.incentives import MECHANISMS


def _option(default: Any, help: str, *, metavar: str = "", commas: bool = False) -> Any:
    """A config field with its help text; ``commas``: list values may be comma-separated."""
    factory = (lambda: default) if isinstance(default, tuple) else None
    metadata = {"help": help, "metavar": metavar, "commas": commas}
    return (
        field(default_factory=factory, metadata=metadata)
        if factory
        else field(default=default, metadata=metadata)
    )


@dataclass
class EvaluateConfig:
    """Compare incentive mechanisms (who gets paid what) on the same scenarios and seeds."""

    scenario: tuple[str, ...] = _option(
        ("default",),
        "scenario name (scenarios/<name>.toml) or TOML file; repeat or comma-separate for several",
        metavar="NAME",
        commas=True,
    )
    mechanisms: tuple[str, ...] = _option(
        (),
        "incentive mechanisms to compare, comma-separated "
        f"(default: all of {', '.join(MECHANISMS)})",
        metavar="NAME",
        commas=True,
    )
    seeds: tuple[int, ...] = _option(
        (0, 1, 2),
        "seeds, comma-separated: each drives the episode "
        "resets and the policies, identically for every mechanism",
        metavar="SEED",
        commas=True,
    )
    episodes: int = _option(1, "evaluation episodes per (scenario, mechanism, seed)")
    policy: str = _option(
        "random",
        "the organizations' policy, from the agents' registry "
        "(random, always_max, always_min, never, myopic_greedy, q_learning, "
        "dqn, shared_dqn), or per organization as train_agents.py --algo "
        "('random,northbank=q_learning')",
    )
    train_episodes: int = _option(
        0,
        "training episodes of a learning policy on each run's env "
        "(under that run's mechanism) before its greedy evaluation",
    )
    contribution: str = _option(
        "", "contribution scoring: loo, shapley or tmc_shapley (default: the scenario's)"
    )
    device: str = _option(
        "", "torch device of the env: auto, cpu, cuda, cuda:N or mps (default: the scenario's)"
    )
    override: tuple[str, ...] = _option(
        (),
        "scenario overrides KEY=VALUE (VALUE parsed as JSON, else a string), "
        "e.g. max_rounds=4 scoring.reject_negative=false",
        metavar="KEY=VALUE",
    )
    workers: int = _option(1, "processes running independent runs in parallel (1: in this process)")
    out: str = _option("", "output folder (default: runs/eval-<scenarios>__<policy>__<time>)")
    adapters: bool = _option(
        True,
        "keep every update's adapter file in <out>/envs, so that python -m chains verify can "
        "recompute each hash on the ledgers (--no-adapters: ledgers only)",
    )
    plot: bool = _option(
        False, "also draw one bar chart per metric into <out>/plots (needs matplotlib)"
    )
    progress: bool = _option(True, "print a line per finished run to stderr")

    def __post_init__(self) -> None:
        if self.episodes < 1:
            raise ConfigError("episodes", f"must be >= 1, got {self.episodes}")
        if self.train_episodes < 0:
            raise ConfigError("train_episodes", f"must be >= 0, got {self.train_episodes}")
        if self.workers < 1:
            raise ConfigError("workers", f"must be >= 1, got {self.workers}")
        if self.device and not DEVICES.fullmatch(self.device):
            raise ConfigError(
                "device", f"must be auto, cpu, mps, cuda or cuda:N, got {self.device!r}"
            )
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
        self.overrides()  # checks the KEY=VALUE syntax

    def overrides(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for item in self.override:
            key, sep, raw = item.partition("=")
            if not sep or not key.strip():
                raise ConfigError("override", f"expected KEY=VALUE, got {item!r}")
            try:
                values[key.strip()] = json.loads(raw)
            except json.JSONDecodeError:
                values[key.strip()] = raw
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
    ``train_episodes`` on the run's env, then every policy acts greedily."""

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
        )
        if any(ALGORITHMS[name].learns for name in team.assignment.values()):
            for episode in range(self.train_episodes):
                run_episode(env, team, seed=derive_seed(seed, 3, episode))
                team.end_episode()
        return GreedyTeam(team)


@dataclass
class GreedyTeam:
    """A trained team as a controller: no exploration, no learning."""

    team: Any

    def act(self, observations: Mapping[str, np.ndarray]) -> dict[str, int]:
        return self.team.act(observations, explore=False)


# --- the command line -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """One option per :class:`EvaluateConfig` field, with its help text and default."""
    parser = argparse.ArgumentParser(
        prog="evaluate.py",
        description=(EvaluateConfig.__doc__ or "").strip(),
        epilog="metrics: see docs/evaluate.md; outputs: <out>/results.json, results.csv, "
        "summary.csv, envs/ (each run's ledgers), plots/",
    )
    hints = typing.get_type_hints(EvaluateConfig)
    for f in dataclasses.fields(EvaluateConfig):
        hint, default = hints[f.name], EvaluateConfig.__dataclass_fields__[f.name]
        shown = (
            default.default_factory()
            if default.default_factory is not dataclasses.MISSING
            else default.default
        )
        if isinstance(shown, tuple):
            shown = ",".join(map(str, shown)) if f.metadata["commas"] else " ".join(shown)
        help_text = f.metadata["help"]
        if "(default:" not in help_text:
            help_text += f" (default: {shown if shown != '' else 'none'})"
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text}
        if hint is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(hint) is tuple:
            kwargs.update(action="extend", nargs="+", metavar=f.metadata["metavar"] or "VALUE")
        else:
            kwargs.update(type=hint, metavar=f.metadata["metavar"] or hint.__name__.upper())
        parser.add_argument("--" + f.name.replace("_", "-"), **kwargs)
    return parser


def parse_config(values: Mapping[str, Any]) -> EvaluateConfig:
    """Parsed options -> :class:`EvaluateConfig` (comma lists split, items typed)."""
    hints = typing.get_type_hints(EvaluateConfig)
    kwargs = dict(values)
    for f in dataclasses.fields(EvaluateConfig):
        if f.name in kwargs and typing.get_origin(hints[f.name]) is tuple:
            items = [
                part.strip()
                for raw in kwargs[f.name]
                for part in (raw.split(",") if f.metadata["commas"] else [raw])
            ]
            if any(not item for item in items):
                raise ConfigError(f.name, f"empty entry in {' '.join(kwargs[f.name])!r}")
            item_type = typing.get_args(hints[f.name])[0]
            try:
                kwargs[f.name] = tuple(item_type(item) for item in items)
            except ValueError:
                raise ConfigError(
                    f.name, f"expected {item_type.__name__} values, got {', '.join(items)}"
                ) from None
    return EvaluateConfig(**kwargs)


def _report_progress(result: RunResult, done: int, total: int) -> None:
    score, payout = result.metrics["model/final_score"], result.metrics["cost/total_payout"]
    print(
        f"[{done}/{total}] {result.scenario} / {result.mechanism} / seed {result.seed}: "
        f"final score {score:.3f}, payout {payout:.2f} ({result.seconds:.1f} s)",
        file=sys.stderr,
        flush=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    values = vars(parser.parse_args(argv))
    try:
        config = parse_config(values)
        plan = plan_comparison(
            config.scenario,
            config.mechanisms,
            config.seeds,
            config.episodes,
            overrides=config.overrides(),
            contribution=config.contribution or None,
        )
        policy = AgentsPolicy(config.policy, config.train_episodes)
        for scenario in plan.scenarios:
            policy.check(scenario.org_names)
        out = config.out_dir(plan)
        if out.exists() and (not out.is_dir() or (out / "results.json").exists()):
            raise ConfigError(
                "out", f"{out} already holds results (or is a file); choose a new folder"
            )
        if config.plot:
            try:
                require_matplotlib()
            except ImportError as error:
                raise ConfigError("plot", str(error)) from None
    except ConfigError as error:
        parser.error(f"argument --{error.field.replace('_', '-')}: {error.problem}")  # exits 2
    try:
        comparison = compare(
            plan,
            policy,
            workers=config.workers,
            env_root=out / "envs",
            store_adapters=config.adapters,
            progress=_report_progress if config.progress else None,
        )
    except FedenvError as error:
        print(f"evaluate.py: error: {error}", file=sys.stderr)
        return 1
    rows = summarize_comparison(comparison)
    attackers = {
        s.name: any(o.behaviour != "honest" for o in s.organizations) for s in plan.scenarios
    }
    record = {**dataclasses.asdict(config), "out": str(out)}
    paths = write_results(comparison, rows, out, record)
    seeds = len(plan.seeds)
    print(
        f"\n{plan.episodes} episode(s) per run, policy {config.policy!r}; mean ± std over "
        f"{seeds} seed(s){' (95% CIs in summary.csv)' if seeds >= 3 else ''}\n"
    )
    print(summary_table(rows))
    print(verdict(rows, has_attackers=attackers))
    print(f"results: {paths['json']}, {paths['csv']}, {paths['summary_csv']}")
    if config.plot:
        plots = plot_summary(rows, out / "plots")
        print(f"plots: {len(plots)} charts in {out / 'plots'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
