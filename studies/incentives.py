"""Incentive mechanisms compared on the default scenario, with paired 95% CIs.

    python -m studies.incentives                       # the docs' figure and tables (~4 min)
    python -m studies.incentives --seeds 0,1,2 --scenario tiny --out runs/study-incentives-tiny
    python -m studies.incentives --from-results runs/study-incentives/results.json  # redraw

Every mechanism plays the same seeds (common random numbers) with the organizations'
``--policy`` (default ``random``: every mechanism then sees the same rounds, the same model bit
for bit, and only the money differs, so the paired differences isolate the payout rules; a
learning policy, e.g. ``--policy q_learning_stateless --train-episodes 20``, answers each
mechanism's incentives instead, at 20 times the cost); the comparison is evaluate.py's
(:mod:`fedenv.evaluation.play`), and so are the outputs in ``--out`` (results.json, the CSVs).
The figure is a forest plot: for each key metric, each mechanism's paired difference to
``--reference`` with its 95% CI (filled: detected after Holm's correction).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from agents.cli import comma_list, fail, parse, parse_overrides
from evaluate import AgentsPolicy
from fedenv.evaluation.play import compare, plan_comparison
from fedenv.evaluation.report import (
    DEFAULT_REFERENCE,
    TABLE_COLUMNS,
    paired_comparisons,
    paired_table,
    summarize_comparison,
    summary_table,
    write_results,
)
from fedenv.evaluation.verdict import verdict
from studies import save_figure

PROG = "python -m studies.incentives"
FIGURE_METRICS = ("model/final_score", "efficiency/gain_per_payout",
                  "fairness/contribution_payout_corr", "fairness/jain_payout",
                  "welfare/total_reward")
ATTACK_METRIC = "attack/payout_share_malicious"


@dataclass
class IncentiveStudyConfig:
    """Incentive mechanisms compared over common seeds, with paired 95% CIs."""

    scenario: str = "default"
    """scenario name or TOML file"""
    seeds: Annotated[tuple[int, ...], comma_list(int)] = (0, 1, 2, 3, 4)
    """seeds (common to every mechanism)"""
    policy: str = "random"
    """the organizations' policy (agents' registry)"""
    train_episodes: int = 0
    """training episodes of a learning policy on each run's env"""
    reference: str = DEFAULT_REFERENCE
    """the mechanism every other is compared to"""
    override: tuple[str, ...] = ()
    """scenario overrides KEY=VALUE"""
    workers: int = 1
    """processes running independent runs"""
    out: str = "runs/study-incentives"
    """folder of the raw results (evaluate.py's files)"""
    figure: str = "docs/figures/incentives_paired.png"
    """the forest plot ('': none)"""
    from_results: str = ""
    """redraw from this results.json (written by this study) instead of running"""


def run_study(config: IncentiveStudyConfig) -> dict[str, Any]:
    plan = plan_comparison([config.scenario], (), config.seeds, 1,
                           overrides=parse_overrides(config.override))
    policy = AgentsPolicy(config.policy, config.train_episodes)
    policy.check(plan.scenarios[0].org_names)
    comparison = compare(plan, policy, workers=config.workers,
                         env_root=Path(config.out) / "envs", store_adapters=False)
    rows = summarize_comparison(comparison)
    comparisons = paired_comparisons(rows, config.reference)
    paths = write_results(comparison, rows, config.out, dataclasses.asdict(config), comparisons)
    attackers = {s.name: any(o.behaviour != "honest" for o in s.organizations)
                 for s in plan.scenarios}
    print(summary_table(rows))
    print(paired_table(comparisons))
    print(verdict(rows, comparisons, has_attackers=attackers, reference=config.reference))
    return json.loads(paths["json"].read_text())


def draw_forest(document: Mapping[str, Any], path: str | Path) -> Path:
    """Each mechanism's paired difference to the reference, per key metric, with 95% CIs."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    scenario, paired = next(iter(document["paired"].items()))
    titles = {metric: title for title, metric in TABLE_COLUMNS}
    attacked = any(o.get("behaviour", "honest") != "honest"
                   for o in document["scenarios"][scenario]["organizations"])
    metrics = (*FIGURE_METRICS, ATTACK_METRIC) if attacked else FIGURE_METRICS
    figure, axes = plt.subplots(1, len(metrics), figsize=(3.0 * len(metrics), 3.2), sharey=True)
    reference = None
    for ax, metric in zip(axes, metrics):
        rows = paired[metric]
        for y, row in enumerate(rows):
            reference = row["reference"]
            d = row["difference"]
            if d is None or d["low"] is None:
                ax.annotate("n/a", (0, y), ha="center", va="center", fontsize=8)
                continue
            ax.errorbar([d["mean"]], [y], xerr=[[d["mean"] - d["low"]], [d["high"] - d["mean"]]],
                        fmt="o", capsize=3, color="C0",
                        markerfacecolor="C0" if row["detected"] else "white")
        ax.axvline(0.0, color="black", linewidth=0.7)
        ax.set_yticks(range(len(rows)), [r["mechanism"] for r in rows])
        ax.set_title(titles.get(metric, metric), fontsize=9)
    axes[0].invert_yaxis()  # the axes share y: once for all
    n = len(document["seeds"])
    figure.suptitle(f"{scenario}: paired difference to {reference!r} "
                    f"(mean, 95% CI over {n} seeds; filled = detected after Holm)", fontsize=10)
    return save_figure(figure, path)


def main(argv: Sequence[str] | None = None) -> int:
    config, _ = parse(IncentiveStudyConfig, argv, prog=PROG)
    try:
        if config.from_results:
            document = json.loads(Path(config.from_results).read_text())
        else:
            document = run_study(config)
    except (OSError, json.JSONDecodeError) as error:
        fail(PROG, "from_results", f"cannot read {config.from_results}: {error}")
    except ValueError as error:  # ConfigErrors of fedenv and agents
        field = getattr(error, "field", "scenario")
        fail(PROG, field, getattr(error, "problem", str(error)))
    if config.figure:
        print(f"figure: {draw_forest(document, config.figure)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
