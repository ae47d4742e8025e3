"""Plots of a comparison (optional ``matplotlib``, the ``plots`` extra): 95% CIs, never std.

- :func:`plot_summary`: one bar chart per metric, a bar per mechanism (grouped by scenario), the
  95% confidence interval of the mean over seeds as error bar;
- :func:`plot_grid`: for a sweep, one figure per metric over the grid: the first swept key on
  the x-axis, a panel per value of the other keys (and per base scenario), a line per
  mechanism with its 95% CI.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from fedenv.evaluation.metrics import METRICS
from fedenv.evaluation.report import SummaryRow
from fedenv.evaluation.statistics import Interval
from fedenv.evaluation.sweep import Cell


def require_matplotlib() -> None:
    """Raise :class:`ImportError` with the fix when the optional plotting extra is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError(
            "plots need matplotlib, the optional 'plots' extra: "
            "pip install 'fedenv[plots]' (or pip install matplotlib)"
        ) from None


def _pyplot():
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt


def _errors(stats: Sequence[Interval | None]) -> np.ndarray:
    """Asymmetric error bars (2 x n) from the intervals; 0 where there is none."""
    low, high = [], []
    for s in stats:
        if s is None or s.method == "none":
            low.append(0.0)
            high.append(0.0)
        else:
            low.append(s.mean - s.low)
            high.append(s.high - s.mean)
    return np.array([low, high])


def _save(figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    import matplotlib.pyplot as plt

    plt.close(figure)
    return path


def plot_summary(rows: Sequence[SummaryRow], out: str | Path) -> list[Path]:
    """One bar chart per metric (``<out>/<group>_<name>.png``): a bar per mechanism (one per
    scenario and mechanism when there are several scenarios), the 95% CI over seeds as error
    bar, "n/a" where the metric never applied."""
    plt = _pyplot()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    scenarios = list(dict.fromkeys(r.scenario for r in rows))
    mechanisms = list(dict.fromkeys(r.mechanism for r in rows))
    n = max((s.n for r in rows for s in r.stats.values() if s is not None), default=0)
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
            axes.bar(x, [s.mean if s else np.nan for s in stats], width * 0.9, label=scenario,
                     yerr=_errors(stats), capsize=3)
            for xi, s in zip(x, stats):
                if s is None:
                    axes.annotate("n/a", (xi, 0.0), ha="center", va="bottom", fontsize=8)
        axes.set_xticks(np.arange(len(mechanisms)), mechanisms)
        axes.axhline(0.0, color="black", linewidth=0.6)
        figure.suptitle(f"{metric} (mean, 95% CI over {n} seeds)", fontsize=10)
        axes.set_title(meaning, fontsize=7, wrap=True)
        if len(scenarios) > 1:
            axes.legend(fontsize=7, title="scenario", title_fontsize=7)
        paths.append(_save(figure, out / (metric.replace("/", "_") + ".png")))
    return paths


def plot_grid(rows: Sequence[SummaryRow], cells: Mapping[str, Cell], out: str | Path) -> list[Path]:
    """One figure per metric over a sweep's grid (``<out>/<group>_<name>.png``)."""
    plt = _pyplot()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    keys = list(next(iter(cells.values())).keys)
    first, others = keys[0], keys[1:]
    values = {k: list(dict.fromkeys(c.keys[k] for c in cells.values())) for k in keys}
    bases = list(dict.fromkeys(c.scenario for c in cells.values()))
    panels = [(b, combo) for b in bases
              for combo in itertools.product(*(values[k] for k in others))]
    mechanisms = list(dict.fromkeys(r.mechanism for r in rows))
    by_cell = {(r.scenario, r.mechanism): r for r in rows}
    paths = []
    for metric in METRICS:
        figure, axes = plt.subplots(1, len(panels), figsize=(1.5 + 3.2 * len(panels), 3.6),
                                    squeeze=False, sharey=True)
        for ax, (base, combo) in zip(axes[0], panels):
            fixed = dict(zip(others, combo))
            x = np.arange(len(values[first]))
            for i, mechanism in enumerate(mechanisms):
                stats = []
                for v in values[first]:
                    name = Cell(base, {first: v, **fixed}).name
                    stats.append(by_cell[(name, mechanism)].stats[metric])
                shift = (i - (len(mechanisms) - 1) / 2) * 0.06
                ax.errorbar(x + shift, [s.mean if s else np.nan for s in stats],
                            yerr=_errors(stats), marker="o", capsize=3, label=mechanism)
            ax.set_xticks(x, [str(v) for v in values[first]])
            ax.set_xlabel(first)
            title = ", ".join(f"{k}={v}" for k, v in fixed.items())
            ax.set_title(f"{base}" + (f": {title}" if title else ""), fontsize=8)
        axes[0][0].legend(fontsize=7)
        figure.suptitle(f"{metric} over the grid (mean, 95% CI over seeds)", fontsize=10)
        paths.append(_save(figure, out / (metric.replace("/", "_") + ".png")))
    return paths

