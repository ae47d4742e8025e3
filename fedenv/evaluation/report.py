"""A comparison, aggregated over seeds and written out: the table, results files and plots.

- :func:`summarize_comparison`: per (scenario, mechanism), each metric's mean, sample standard
  deviation over seeds, and the half-width of its 95% Student-t interval when there are >= 3;
- :func:`summary_table` (markdown, one row per scenario and mechanism) and :func:`verdict`
  (which mechanism does best on each question, per scenario);
- :func:`write_results`: ``results.json`` (config, scenarios, every run and episode, summary),
  ``results.csv`` (one row per run) and ``summary.csv`` (one row per scenario, mechanism, metric);
- :func:`plot_summary`: one bar chart per metric (needs the optional ``matplotlib``).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fedenv.evaluation.play import METRICS, Comparison

# Two-sided 95% quantiles of Student's t, t(0.975, df); beyond the table, a Cornish-Fisher
# expansion around the normal quantile (error < 1e-4 for df > 30).
# fmt: off
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
# fmt: on
_Z975 = 1.959964

TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("final score", "model/final_score"),
    ("gain", "model/score_gain"),
    ("private gain", "model/private_domain_gain"),
    ("payout", "cost/total_payout"),
    ("org cost", "cost/total_org_cost"),
    ("gain/payout", "efficiency/gain_per_payout"),
    ("particip.", "participation/rate"),
    ("corr(contrib,pay)", "fairness/contribution_payout_corr"),
    ("Jain(pay)", "fairness/jain_payout"),
    ("to attackers", "attack/payout_share_malicious"),
    ("welfare", "welfare/total_reward"),
)


def t_quantile_975(df: int) -> float:
    """``t(0.975, df)``, the factor of a two-sided 95% confidence interval."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


@dataclass(frozen=True)
class Stats:
    """A metric over seeds."""

    mean: float
    std: float  # sample standard deviation (ddof=1); 0 for a single value
    n: int
    ci95: float | None  # half-width of the 95% t-interval, for n >= 3

    def cell(self) -> str:
        return f"{_num(self.mean)} ± {_num(self.std, 2)}" if self.n > 1 else _num(self.mean)

    def as_dict(self) -> dict[str, float | int | None]:
        return {"mean": self.mean, "std": self.std, "n": self.n, "ci95": self.ci95}


def summarize(values: Sequence[float | None]) -> Stats | None:
    """Mean, std and 95% CI of the values that are not ``None`` (``None`` if there are none)."""
    x = np.array([v for v in values if v is not None], dtype=np.float64)
    if x.size == 0:
        return None
    std = float(x.std(ddof=1)) if x.size > 1 else 0.0
    ci = t_quantile_975(x.size - 1) * std / math.sqrt(x.size) if x.size >= 3 else None
    return Stats(float(x.mean()), std, int(x.size), ci)


@dataclass(frozen=True)
class SummaryRow:
    scenario: str
    mechanism: str
    stats: Mapping[str, Stats | None]


def summarize_comparison(comparison: Comparison) -> list[SummaryRow]:
    """One row per (scenario, mechanism), in the plan's order, aggregated over seeds."""
    rows = []
    for scenario in comparison.plan.scenarios:
        for mechanism in comparison.plan.mechanisms:
            runs = [
                r
                for r in comparison.runs
                if r.scenario == scenario.name and r.mechanism == mechanism
            ]
            rows.append(
                SummaryRow(
                    scenario.name,
                    mechanism,
                    {m: summarize([r.metrics[m] for r in runs]) for m in METRICS},
                )
            )
    return rows


def summary_table(rows: Sequence[SummaryRow]) -> str:
    """A markdown table of the key metrics, ``mean ± std`` over seeds ("n/a": never applied)."""
    header = ("scenario", "mechanism", *(title for title, _ in TABLE_COLUMNS))
    body = [
        (row.scenario, row.mechanism, *(_cell(row.stats[metric]) for _, metric in TABLE_COLUMNS))
        for row in rows
    ]
    widths = [max(len(r[i]) for r in (header, *body)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return (
            "| "
            + " | ".join(
                c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
            )
            + " |"
        )

    rule = (
        "|"
        + "|".join("-" * (w + 1) + ":" if i >= 2 else "-" * (w + 2) for i, w in enumerate(widths))
        + "|"
    )
    return "\n".join([line(header), rule, *(line(r) for r in body)]) + "\n"


# (question, metric, pick the largest?)
_QUESTIONS = (
    ("best model", "model/final_score", True),
    ("most score gain per payout", "efficiency/gain_per_payout", True),
    ("payouts most in line with contributions", "fairness/contribution_payout_corr", True),
    ("most equal payouts", "fairness/jain_payout", True),
    ("highest welfare", "welfare/total_reward", True),
    ("least paid to attackers", "attack/payout_share_malicious", False),
)


def verdict(rows: Sequence[SummaryRow], *, has_attackers: Mapping[str, bool]) -> str:
    """Per scenario, the mechanism with the best mean on each question (ties: all of them)."""
    lines = []
    for scenario in dict.fromkeys(r.scenario for r in rows):
        mine = [r for r in rows if r.scenario == scenario]
        lines.append(f"{scenario}:")
        for question, metric, largest in _QUESTIONS:
            if metric.startswith("attack/") and not has_attackers.get(scenario, False):
                lines.append(f"  {question}: n/a (no malicious organizations in the scenario)")
                continue
            scored = [
                (r.mechanism, r.stats[metric].mean) for r in mine if r.stats[metric] is not None
            ]
            if not scored:
                lines.append(f"  {question}: n/a")
                continue
            best = (max if largest else min)(v for _, v in scored)
            winners = [m for m, v in scored if math.isclose(v, best, rel_tol=1e-9, abs_tol=1e-12)]
            lines.append(f"  {question}: {', '.join(winners)} ({metric} = {_num(best)})")
    return "\n".join(lines) + "\n"


def write_results(
    comparison: Comparison, rows: Sequence[SummaryRow], out: str | Path, config: Mapping[str, Any]
) -> dict[str, Path]:
    """``results.json``, ``results.csv`` and ``summary.csv`` in ``out``; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plan = comparison.plan
    document = {
        "config": dict(config),
        "scenarios": {s.name: s.to_dict() for s in plan.scenarios},
        "mechanisms": list(plan.mechanisms),
        "seeds": list(plan.seeds),
        "episodes": plan.episodes,
        "metrics": METRICS,
        "runs": [
            {
                "scenario": r.scenario,
                "mechanism": r.mechanism,
                "seed": r.seed,
                "seconds": round(r.seconds, 3),
                "run_dir": r.run_dir,
                "metrics": r.metrics,
                "episodes": r.episode_metrics,
            }
            for r in comparison.runs
        ],
        "summary": [
            {
                "scenario": row.scenario,
                "mechanism": row.mechanism,
                "metrics": {m: s.as_dict() if s else None for m, s in row.stats.items()},
            }
            for row in rows
        ],
    }
    paths = {
        "json": out / "results.json",
        "csv": out / "results.csv",
        "summary_csv": out / "summary.csv",
    }
    paths["json"].write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
    with paths["csv"].open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["scenario", "mechanism", "seed", "episodes", "seconds", *METRICS])
        for r in comparison.runs:
            writer.writerow(
                [
                    r.scenario,
                    r.mechanism,
                    r.seed,
                    len(r.episodes),
                    f"{r.seconds:.3f}",
                    *(_csv(r.metrics[m]) for m in METRICS),
                ]
            )
    with paths["summary_csv"].open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["scenario", "mechanism", "metric", "mean", "std", "n", "ci95"])
        for row in rows:
            for metric, s in row.stats.items():
                writer.writerow(
                    [
                        row.scenario,
                        row.mechanism,
                        metric,
                        *((_csv(s.mean), _csv(s.std), s.n, _csv(s.ci95)) if s else ("", "", 0, "")),
                    ]
                )
    return paths


def require_matplotlib() -> None:
    """Raise :class:`ImportError` with the fix when the optional plotting extra is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError(
            "plots need matplotlib, the optional 'plots' extra: "
            "pip install 'fedenv[plots]' (or pip install matplotlib)"
        ) from None


def plot_summary(rows: Sequence[SummaryRow], out: str | Path) -> list[Path]:
    """One bar chart per metric (``<out>/<group>_<name>.png``): a bar per mechanism (one per
    scenario and mechanism when there are several scenarios), the standard deviation over
    seeds as error bar, "n/a" where the metric never applied."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    scenarios = list(dict.fromkeys(r.scenario for r in rows))
    mechanisms = list(dict.fromkeys(r.mechanism for r in rows))
    width = 0.8 / len(scenarios)
    paths = []
    for metric, meaning in METRICS.items():
        figure, axes = plt.subplots(
            figsize=(1.6 + 1.1 * len(mechanisms) * len(scenarios) ** 0.5, 3.8)
        )
        for j, scenario in enumerate(scenarios):
            stats = [
                next(r.stats[metric] for r in rows if r.scenario == scenario and r.mechanism == m)
                for m in mechanisms
            ]
            x = np.arange(len(mechanisms)) + (j - (len(scenarios) - 1) / 2) * width
            axes.bar(
                x,
                [s.mean if s else np.nan for s in stats],
                width * 0.9,
                label=scenario,
                yerr=[s.std if s else np.nan for s in stats],
                capsize=3,
            )
            for xi, s in zip(x, stats):
                if s is None:
                    axes.annotate("n/a", (xi, 0.0), ha="center", va="bottom", fontsize=8)
        axes.set_xticks(np.arange(len(mechanisms)), mechanisms)
        axes.axhline(0.0, color="black", linewidth=0.6)
        figure.suptitle(metric, fontsize=11)
        axes.set_title(meaning, fontsize=7, wrap=True)
        if len(scenarios) > 1:
            axes.legend(fontsize=7, title="scenario", title_fontsize=7)
        figure.tight_layout()
        path = out / (metric.replace("/", "_") + ".png")
        figure.savefig(path, dpi=120)
        plt.close(figure)
        paths.append(path)
    return paths


def _num(value: float, digits: int = 3) -> str:
    """``digits`` significant digits, in plain notation between 0.001 and 10^6; below 10^-6,
    "0" (float rounding: the base score is read at observation precision, float32)."""
    size = abs(value)
    if size < 1e-6:
        return "0"
    if size < 1e-3 or size >= 1e6:
        return f"{value:.{digits - 1}e}"
    return f"{value:.{max(0, digits - 1 - math.floor(math.log10(size)))}f}"


def _cell(stats: Stats | None) -> str:
    return "n/a" if stats is None else stats.cell()


def _csv(value: float | None) -> str:
    return "" if value is None else repr(float(value))
