"""A comparison, aggregated over seeds and written out: the tables, the verdict and the files.

- :func:`summarize_comparison`: per (scenario, mechanism), each metric's per-seed values and
  their mean with a 95% confidence interval (:func:`fedenv.evaluation.statistics.mean_interval`);
- :func:`paired_comparisons`: per scenario and metric, every mechanism against the reference
  (default ``equal``), paired by seed, Holm-corrected
  (:func:`fedenv.evaluation.statistics.compare_paired`);
- :func:`summary_table` (``mean ± 95% CI half-width``), :func:`paired_table` (differences to
  the reference with their 95% CIs) and, for sweeps, :func:`grid_table` / :func:`write_grid`;
- :func:`write_results`: ``results.json`` (config, scenarios, every run and episode, summary,
  paired comparisons), ``results.csv`` (a row per run), ``summary.csv`` (a row per scenario,
  mechanism and metric) and ``paired.csv`` (a row per scenario, metric and mechanism).

The verdict lives in :mod:`fedenv.evaluation.verdict`, plots in :mod:`fedenv.evaluation.plots`.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedenv.evaluation.metrics import METRICS
from fedenv.evaluation.play import Comparison
from fedenv.evaluation.statistics import Interval, PairedComparison, compare_paired, mean_interval

DEFAULT_REFERENCE = "equal"

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
ATTACK_COLUMNS: tuple[tuple[str, str], ...] = (
    ("clean score", "model/final_score"),
    ("to attackers", "attack/payout_share_malicious"),
    ("backdoor ASR", "attack/backdoor_asr"),
    ("false facts accepted", "attack/false_fact_acceptance"),
    ("honest rejected", "attack/honest_false_rejection"),
    ("attackers rejected", "attack/attacker_rejection"),
)
"""The attack table's columns (printed for scenarios with attackers)."""

@dataclass(frozen=True)
class SummaryRow:
    """One (scenario, mechanism): each metric's value per seed, and its mean with a 95% CI
    (``None`` where the metric never applied)."""

    scenario: str
    mechanism: str
    stats: Mapping[str, Interval | None]
    values: Mapping[str, Mapping[int, float | None]]


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
            values = {m: {r.seed: r.metrics[m] for r in runs} for m in METRICS}
            stats = {}
            for metric, per_seed in values.items():
                present = [v for v in per_seed.values() if v is not None]
                stats[metric] = mean_interval(present) if present else None
            rows.append(SummaryRow(scenario.name, mechanism, stats, values))
    return rows


def paired_comparisons(
    rows: Sequence[SummaryRow], reference: str = DEFAULT_REFERENCE
) -> dict[str, dict[str, list[PairedComparison]]]:
    """``{scenario: {metric: comparisons}}``: each mechanism against ``reference``."""
    result: dict[str, dict[str, list[PairedComparison]]] = {}
    for scenario in dict.fromkeys(r.scenario for r in rows):
        mine = {r.mechanism: r for r in rows if r.scenario == scenario}
        if reference not in mine:
            raise ValueError(
                f"reference {reference!r} is not among the mechanisms {', '.join(mine)}"
            )
        result[scenario] = {
            metric: compare_paired(metric, {m: r.values[metric] for m, r in mine.items()},
                                   reference)
            for metric in METRICS
        }
    return result


# --- tables ------------------------------------------------------------------------------------


def interval_cell(stats: Interval | None, digits: int = 3) -> str:
    """``mean ± half-width`` of a t-interval, ``mean [low, high]`` of a bootstrap one."""
    if stats is None:
        return "n/a"
    if stats.method == "none":
        return _num(stats.mean, digits)
    if stats.method == "bootstrap":
        return f"{_num(stats.mean, digits)} [{_num(stats.low, 2)}, {_num(stats.high, 2)}]"
    return f"{_num(stats.mean, digits)} ± {_num(stats.half_width, 2)}"


def _markdown(header: Sequence[str], body: Sequence[Sequence[str]], text_columns: int) -> str:
    widths = [max(len(r[i]) for r in (header, *body)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        padded = (c.ljust(w) if i < text_columns else c.rjust(w)
                  for i, (c, w) in enumerate(zip(cells, widths)))
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(
        "-" * (w + 2) if i < text_columns else "-" * (w + 1) + ":" for i, w in enumerate(widths)
    ) + "|"
    return "\n".join([line(header), rule, *(line(r) for r in body)]) + "\n"


def summary_table(
    rows: Sequence[SummaryRow], columns: Sequence[tuple[str, str]] = TABLE_COLUMNS
) -> str:
    """A markdown table of ``columns`` (title, metric; default: the key metrics): mean ±
    half-width of the 95% CI over seeds."""
    header = ("scenario", "mechanism", *(title for title, _ in columns))
    body = [
        (r.scenario, r.mechanism, *(interval_cell(r.stats[m]) for _, m in columns)) for r in rows
    ]
    return _markdown(header, body, 2)


def attack_table(rows: Sequence[SummaryRow]) -> str:
    """The attack metrics (:data:`ATTACK_COLUMNS`) of ``rows``, as :func:`summary_table`."""
    return summary_table(rows, ATTACK_COLUMNS)


def difference_cell(comparison: PairedComparison) -> str:
    """``+d [low, high]`` (95% CI of the paired difference), ``*`` when detected (Holm)."""
    d = comparison.difference
    if d is None:
        return "n/a"
    if d.method == "none":
        return f"{signed(d.mean)} (1 seed)"
    mark = " *" if comparison.detected else ""
    return f"{signed(d.mean)} [{signed(d.low, 2)}, {signed(d.high, 2)}]{mark}"


def paired_table(comparisons: Mapping[str, Mapping[str, Sequence[PairedComparison]]]) -> str:
    """Markdown: per scenario and mechanism, the paired difference to the reference on each
    key metric (``*``: detected at 5% after Holm's correction)."""
    header = ("scenario", "mechanism", *(title for title, _ in TABLE_COLUMNS))
    body = []
    for scenario, by_metric in comparisons.items():
        first = next(iter(by_metric.values()))
        for index, c in enumerate(first):
            body.append((scenario, f"{c.mechanism} - {c.reference}", *(
                difference_cell(by_metric[m][index]) for _, m in TABLE_COLUMNS)))
    return _markdown(header, body, 2)


def grid_table(rows: Sequence[SummaryRow], cells: Mapping[str, Any], metric: str) -> str:
    """Markdown for one metric over a sweep's grid: a row per cell (the base scenario and the
    swept values), a column per mechanism (mean ± 95% CI half-width)."""
    mechanisms = list(dict.fromkeys(r.mechanism for r in rows))
    keys = list(next(iter(cells.values())).keys)
    by_cell = {(r.scenario, r.mechanism): r for r in rows}
    header = ("scenario", *keys, *mechanisms)
    body = [
        (cell.scenario, *(str(cell.keys[k]) for k in keys),
         *(interval_cell(by_cell[(name, m)].stats[metric]) for m in mechanisms))
        for name, cell in cells.items()
    ]
    return f"{metric}\n\n" + _markdown(header, body, 1 + len(keys))


def write_grid(rows: Sequence[SummaryRow], cells: Mapping[str, Any], out: str | Path) -> Path:
    """``<out>/grid.csv`` (a row per cell, mechanism and metric: the swept values, mean, 95% CI)
    and ``<out>/grid/<group>_<name>.md`` (:func:`grid_table` per metric); returns the CSV."""
    out = Path(out)
    (out / "grid").mkdir(parents=True, exist_ok=True)
    keys = list(next(iter(cells.values())).keys)
    for metric in METRICS:
        (out / "grid" / (metric.replace("/", "_") + ".md")).write_text(
            grid_table(rows, cells, metric))
    path = out / "grid.csv"
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["scenario", "cell", *keys, "mechanism", "metric", "mean", "ci95_low",
                         "ci95_high", "n", "ci_method"])
        for row in rows:
            cell = cells[row.scenario]
            for metric, s in row.stats.items():
                writer.writerow([cell.scenario, row.scenario, *(json.dumps(cell.keys[k])
                                                                for k in keys),
                                 row.mechanism, metric, *((_csv(s.mean), _csv(s.low),
                                                           _csv(s.high), s.n, s.method)
                                                          if s else ("", "", "", 0, ""))])
    return path


# --- files ----------------------------------------------------------------------------------------


def _interval_dict(s: Interval | None) -> dict[str, Any] | None:
    if s is None:
        return None
    return {"mean": s.mean, "low": _finite(s.low), "high": _finite(s.high), "n": s.n,
            "method": s.method, "std": s.std}


def _comparison_dict(c: PairedComparison) -> dict[str, Any]:
    return {
        "mechanism": c.mechanism, "reference": c.reference, "seeds": list(c.seeds),
        "difference": _interval_dict(c.difference), "test": c.test,
        "p": _finite(c.p_value), "p_holm": _finite(c.p_holm), "detected": c.detected,
        "seeds_needed": c.seeds_needed,
    }


def write_results(
    comparison: Comparison,
    rows: Sequence[SummaryRow],
    out: str | Path,
    config: Mapping[str, Any],
    comparisons: Mapping[str, Mapping[str, Sequence[PairedComparison]]] | None = None,
) -> dict[str, Path]:
    """``results.json``, ``results.csv``, ``summary.csv`` and (with ``comparisons``)
    ``paired.csv`` in ``out``; returns their paths."""
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
                "scenario": r.scenario, "mechanism": r.mechanism, "seed": r.seed,
                "seconds": round(r.seconds, 3), "run_dir": r.run_dir, "metrics": r.metrics,
                "episodes": r.episode_metrics,
            }
            for r in comparison.runs
        ],
        "summary": [
            {"scenario": row.scenario, "mechanism": row.mechanism,
             "metrics": {m: _interval_dict(s) for m, s in row.stats.items()}}
            for row in rows
        ],
        "paired": {
            scenario: {m: [_comparison_dict(c) for c in cs] for m, cs in by_metric.items()}
            for scenario, by_metric in (comparisons or {}).items()
        },
    }
    paths = {"json": out / "results.json", "csv": out / "results.csv",
             "summary_csv": out / "summary.csv"}
    paths["json"].write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
    with paths["csv"].open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["scenario", "mechanism", "seed", "episodes", "seconds", *METRICS])
        for r in comparison.runs:
            writer.writerow([r.scenario, r.mechanism, r.seed, len(r.episodes), f"{r.seconds:.3f}",
                             *(_csv(r.metrics[m]) for m in METRICS)])
    with paths["summary_csv"].open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["scenario", "mechanism", "metric", "mean", "ci95_low", "ci95_high", "n",
                         "ci_method", "std"])
        for row in rows:
            for metric, s in row.stats.items():
                writer.writerow([row.scenario, row.mechanism, metric, *(
                    (_csv(s.mean), _csv(s.low), _csv(s.high), s.n, s.method, _csv(s.std))
                    if s else ("", "", "", 0, "", ""))])
    if comparisons is not None:
        paths["paired_csv"] = out / "paired.csv"
        with paths["paired_csv"].open("w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["scenario", "metric", "mechanism", "reference", "n", "difference",
                             "ci95_low", "ci95_high", "ci_method", "test", "p", "p_holm",
                             "detected", "seeds_needed"])
            for scenario, by_metric in comparisons.items():
                for metric, cs in by_metric.items():
                    for c in cs:
                        d = c.difference
                        writer.writerow([
                            scenario, metric, c.mechanism, c.reference, c.n,
                            *((_csv(d.mean), _csv(d.low), _csv(d.high), d.method) if d
                              else ("", "", "", "")),
                            c.test, _csv(c.p_value), _csv(c.p_holm), c.detected,
                            "" if c.seeds_needed is None else c.seeds_needed])
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


def signed(value: float, digits: int = 3) -> str:
    """A number with its sign, as :func:`_num` writes it."""
    text = _num(value, digits)
    return text if text.startswith("-") or text == "0" else "+" + text


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _csv(value: float | None) -> str:
    return "" if value is None or not math.isfinite(value) else repr(float(value))
