"""Unlearning an organization: the four methods against the retrain oracle, over seeds and LoRA
rank, alpha and dropout grids (the Federated TrustChain seed's figures).

    python -m studies.unlearning                                   # default scenario, 5 seeds
    python -m studies.unlearning --scenario tiny --rounds 4 --override scoring.reject_negative=false
    python -m studies.unlearning --from-results runs/study-unlearning/results.csv   # redraw

For every seed and setting (the scenario's LoRA settings, then each value of ``--ranks``,
``--alphas`` and ``--dropouts`` with the others at the scenario's), one episode is trained for
``--rounds`` rounds with every organization at resource level ``--level``; then every method is
applied to forgetting ``--org`` from that same trained state
(``env.unwrapped.compare_unlearning``: nothing recorded, the model restored between methods)
and measured against ``retrain`` (:mod:`fedenv.unlearning.measures`).  Outputs in ``--out``:
``results.csv`` (one row per seed, setting and method), ``summary.md`` (means and 95% CIs
over seeds), and in ``--figures`` the box plots ``unlearning-methods.png`` and
``unlearning-<rank|alpha|dropout>.png`` (forget and retain fact accuracy).
"""

from __future__ import annotations

import csv
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from agents.cli import comma_list, parse, parse_overrides
from fedenv.evaluation.statistics import mean_interval
from fedenv.scenario.unlearning import METHODS
from studies import save_figure

PROG = "python -m studies.unlearning"
COLUMNS = (
    "seed", "parameter", "value", "method", "forget_fact_accuracy", "retain_fact_accuracy",
    "forget_nll", "retain_nll", "global_score", "mia_auc", "mia_auc_se", "mia_members",
    "mia_non_members", "oracle_forget_accuracy_gap", "oracle_fact_accuracy_gap",
    "oracle_score_gap", "oracle_mia_auc_gap", "oracle_mia_auc_signed_gap",
    "oracle_mia_auc_gap_se", "seconds", "seconds_retrain", "training_steps",
    "training_steps_retrain", "accepted_rounds", "before_forget_fact_accuracy",
    "before_retain_fact_accuracy", "before_mia_auc",
)
GRIDS = {"rank": "lora.r", "alpha": "lora.alpha", "dropout": "lora.dropout"}
MIN_RETRAIN_SECONDS = 0.05  # below: the organization was never accepted, retrain had nothing to do


@dataclass
class UnlearningStudyConfig:
    """Train, then forget one organization with every method; compare with the oracle."""

    scenario: str = "default"
    """scenario name or TOML file"""
    seeds: Annotated[tuple[int, ...], comma_list(int)] = (0, 1, 2, 3, 4)
    """seeds (each trains its own episode per setting)"""
    rounds: int = 10
    """rounds trained before the request"""
    level: int = 1
    """every organization's resource level in every round"""
    org: str = "skyway"
    """the organization forgotten"""
    methods: Annotated[tuple[str, ...], comma_list(str)] = METHODS
    """methods compared (retrain is the oracle, always run)"""
    ranks: Annotated[tuple[int, ...], comma_list(int)] = (4, 16)
    """LoRA ranks besides the scenario's"""
    alphas: Annotated[tuple[float, ...], comma_list(float)] = (8.0, 32.0)
    """LoRA alphas besides the scenario's"""
    dropouts: Annotated[tuple[float, ...], comma_list(float)] = (0.05, 0.1)
    """LoRA dropouts besides the scenario's"""
    base: bool = True
    """also run the scenario's own LoRA setting (off: the grids only, e.g. beside a base run)"""
    override: tuple[str, ...] = ()
    """scenario overrides KEY=VALUE, as in train_agents.py"""
    out: Path = Path("runs/study-unlearning")
    """results folder"""
    figures: Path = Path("docs/figures")
    """where the PNG box plots go"""
    from_results: Path | None = None
    """redraw from a results.csv, running nothing"""


def settings(config: UnlearningStudyConfig) -> list[tuple[str, str, dict]]:
    """(parameter, value, overrides) of every setting: the scenario's, then the grids."""
    rows = [("base", "scenario", {})] if config.base else []
    for name, values in (("rank", config.ranks), ("alpha", config.alphas),
                         ("dropout", config.dropouts)):
        rows += [(name, str(v), {GRIDS[name]: v}) for v in values]
    return rows


def run_setting(config: UnlearningStudyConfig, seed: int, parameter: str, value: str,
                overrides: dict) -> list[dict]:
    import fedenv

    given = parse_overrides(config.override)
    env = fedenv.parallel_env(
        config.scenario, max_rounds=config.rounds + 1, **{**given, **overrides}
    )
    try:
        env.reset(seed=seed)
        for _ in range(config.rounds):
            env.step({a: config.level for a in env.agents})
        results = env.unwrapped.compare_unlearning(config.org, tuple(config.methods))
        accepted = sum(
            1 for o in env.unwrapped.round_log if config.org in o.orgs and o.orgs[config.org].accepted
        )
    finally:
        env.close()
    before, oracle_seconds = results["before"]["measures"], results["retrain"]["seconds"]
    oracle_steps = results["retrain"]["training_steps"]
    rows = []
    for method in ("retrain", *[m for m in config.methods if m != "retrain"]):
        m, gaps = results[method]["measures"], results[method]["gaps"]
        rows.append({
            "seed": seed, "parameter": parameter, "value": value, "method": method,
            **{k: m[k] for k in COLUMNS if k in m}, **gaps,
            "seconds": results[method]["seconds"], "seconds_retrain": oracle_seconds,
            "training_steps": results[method]["training_steps"],
            "training_steps_retrain": oracle_steps, "accepted_rounds": accepted,
            "before_forget_fact_accuracy": before["forget_fact_accuracy"],
            "before_retain_fact_accuracy": before["retain_fact_accuracy"],
            "before_mia_auc": before["mia_auc"],
        })
    return rows


def run_study(config: UnlearningStudyConfig) -> list[dict]:
    config.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    for seed in config.seeds:
        for parameter, value, overrides in settings(config):
            start = time.perf_counter()
            rows += run_setting(config, seed, parameter, value, overrides)
            print(f"seed {seed} {parameter}={value}: {time.perf_counter() - start:.1f}s",
                  flush=True)
            write_csv(rows, config.out / "results.csv")
    return rows


def write_csv(rows: list[dict], path: Path) -> None:
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows({k: row.get(k, "") for k in COLUMNS} for row in rows)


def read_csv(path: Path) -> list[dict]:
    with path.open() as file:
        return [{k: (v if k in ("parameter", "value", "method") else float(v))
                 for k, v in row.items()} for row in csv.DictReader(file)]


def summary(rows: list[dict]) -> str:
    """Means (95% CI over seeds) per method, on the scenario's LoRA settings: over every seed,
    then over the informative ones (the organization accepted in some round: otherwise every
    method is the trained model and trivially equals the oracle)."""
    rows = with_signed_forget_gap(rows)
    base = [r for r in rows if r["parameter"] == "base"]
    before = [r for r in base if r["method"] == "retrain"]
    informative = [r for r in base if r.get("accepted_rounds", 1) > 0]
    seeds = len({r["seed"] for r in informative})
    lines = ["All seeds:", "", *_table(base), "",
             f"Informative seeds ({seeds} of {len(before)}):", "", *_table(informative), ""]
    lines.append("Time / retrain: over the seeds where retrain had rounds to rerun (n); steps / "
                 "retrain: local training steps, the largest ratio of any seed.")
    lines.append("MIA: members / non-members "
                 f"{_cell([r['mia_members'] for r in before])} / "
                 f"{_cell([r['mia_non_members'] for r in before])}; the AUC's DeLong SE "
                 f"{_cell([r['mia_auc_se'] for r in before])} (retrain's).")
    lines.append(f"Before unlearning: forget accuracy "
                 f"{_cell([r['before_forget_fact_accuracy'] for r in before])}, retain accuracy "
                 f"{_cell([r['before_retain_fact_accuracy'] for r in before])}, MIA AUC "
                 f"{_cell([r['before_mia_auc'] for r in before])}; {len(before)} seeds.")
    grid = _grid_table(rows)
    if grid:
        title = ("Mean gap to the oracle per setting: forget accuracy |abs| and signed (points) / "
                 "MIA AUC signed / n seeds:")
        lines += ["", title, "", *grid]
    return "\n".join(lines) + "\n"


def with_signed_forget_gap(rows: list[dict]) -> list[dict]:
    """``rows`` with ``oracle_forget_accuracy_signed_gap``: forget accuracy minus the oracle's of
    the same seed and setting (positive: remembers more than after retraining)."""
    oracle = {(r["seed"], r["parameter"], r["value"]): r["forget_fact_accuracy"]
              for r in rows if r["method"] == "retrain"}
    return [{**r, "oracle_forget_accuracy_signed_gap":
             r["forget_fact_accuracy"] - oracle[r["seed"], r["parameter"], r["value"]]}
            for r in rows]


def _grid_table(rows: list[dict]) -> list[str]:
    settings_ = list(dict.fromkeys((r["parameter"], r["value"]) for r in rows))
    methods = [m for m in dict.fromkeys(r["method"] for r in rows) if m != "retrain"]
    if len(settings_) < 2:
        return []
    lines = ["| setting | " + " | ".join(methods) + " |", "| --- |" + " --- |" * len(methods)]
    for parameter, value in settings_:
        cells = []
        for method in methods:
            picked = [r for r in rows if (r["parameter"], r["value"], r["method"])
                      == (parameter, value, method)]
            forget = sum(r["oracle_forget_accuracy_gap"] for r in picked) / len(picked)
            toward = sum(r["oracle_forget_accuracy_signed_gap"] for r in picked) / len(picked)
            signed = sum(r["oracle_mia_auc_signed_gap"] for r in picked) / len(picked)
            cells.append(f"{100 * forget:.1f}, {100 * toward:+.1f} / {signed:+.3f} / {len(picked)}")
        label = "scenario" if parameter == "base" else f"{parameter} {value}"
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def _table(picked_rows: list[dict]) -> list[str]:
    methods = list(dict.fromkeys(r["method"] for r in picked_rows))
    keys = ("forget_fact_accuracy", "retain_fact_accuracy", "mia_auc",
            "oracle_forget_accuracy_gap", "oracle_forget_accuracy_signed_gap",
            "oracle_mia_auc_gap", "oracle_mia_auc_signed_gap", "oracle_mia_auc_gap_se",
            "oracle_score_gap")
    lines = ["| method | " + " | ".join(keys) + " | time / retrain | steps / retrain (max) |",
             "| --- |" + " --- |" * (len(keys) + 2)]
    for method in methods:
        picked = [r for r in picked_rows if r["method"] == method]
        cells = [_cell([r[k] for r in picked]) for k in keys]
        ran = [r for r in picked if r["seconds_retrain"] >= MIN_RETRAIN_SECONDS]
        ratio = _cell([r["seconds"] / r["seconds_retrain"] for r in ran]) + f" (n={len(ran)})"
        trained = [r["training_steps"] / r["training_steps_retrain"] for r in picked
                   if r.get("training_steps_retrain")]
        steps = f"{max(trained):.3f}" if trained else "-"
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {ratio} | {steps} |")
    return lines


def _cell(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.3f}" if values else "-"
    interval = mean_interval(values)
    return f"{interval.mean:.3f} [{interval.low:.3f}, {interval.high:.3f}]"


def draw(rows: list[dict], figures: Path) -> list[Path]:
    from matplotlib import pyplot as plt

    paths = []
    groups = [("methods", [r for r in rows if r["parameter"] == "base"], "method")]
    for name in GRIDS:
        picked = [r for r in rows if r["parameter"] in (name, "base")]
        groups.append((name, picked, "value"))
    for name, picked, by in groups:
        if not picked:
            continue
        labels = list(dict.fromkeys(r[by] for r in picked))
        figure, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
        for axis, key in zip(axes, ("forget_fact_accuracy", "retain_fact_accuracy")):
            if by == "method":
                data = [[r[key] for r in picked if r["method"] == label] for label in labels]
                axis.boxplot(data, tick_labels=labels)
            else:
                methods = list(dict.fromkeys(r["method"] for r in picked))
                width = 0.8 / len(methods)
                for i, method in enumerate(methods):
                    data = [[r[key] for r in picked if r["value"] == label and r["method"] == method]
                            for label in labels]
                    positions = [j + i * width for j in range(len(labels))]
                    box = axis.boxplot(data, positions=positions, widths=width * 0.9,
                                       patch_artist=True, manage_ticks=False)
                    for patch in box["boxes"]:
                        patch.set_facecolor(f"C{i}")
                    axis.plot([], [], color=f"C{i}", label=method)
                axis.set_xticks([j + 0.4 - width / 2 for j in range(len(labels))], labels)
                axis.set_xlabel(f"{name} ('scenario' = the scenario's own)")
                axis.legend(fontsize=7)
            axis.set_title(key.replace("_", " "))
            axis.tick_params(axis="x", labelrotation=20)
        paths.append(save_figure(figure, figures / f"unlearning-{name}.png"))
    return paths


def main(argv: list[str] | None = None) -> int:
    config, _ = parse(UnlearningStudyConfig, argv, prog=PROG)
    if config.from_results is not None:
        rows = read_csv(config.from_results)
        out = config.from_results.parent
    else:
        rows = [{**r, **{k: float(r[k]) for k in COLUMNS if k not in
                         ("parameter", "value", "method") and r.get(k, "") != ""}}
                for r in run_study(config)]
        out = config.out
    (out / "summary.md").write_text(summary(rows))
    print(summary(rows))
    for path in draw(rows, config.figures):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
