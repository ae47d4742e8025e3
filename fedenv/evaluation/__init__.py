"""What ``evaluate.py`` runs: incentive mechanisms compared on the same scenarios and seeds.

- :mod:`~fedenv.evaluation.play`: the plan (scenario x mechanism x seed), one run, the comparison;
- :mod:`~fedenv.evaluation.metrics`: the records an episode leaves and the metrics computed from
  them;
- :mod:`~fedenv.evaluation.statistics`: paired differences over seeds, 95% CIs, paired tests,
  Holm's correction, the seeds a difference needs;
- :mod:`~fedenv.evaluation.report`: aggregation over seeds, the tables and files;
  :mod:`~fedenv.evaluation.verdict`: the answers, named only for detected differences;
- :mod:`~fedenv.evaluation.sweep`: grids of scenario settings with the same seeds in every cell;
- :mod:`~fedenv.evaluation.tidy`: the long per-organization table and :func:`load`, an output
  folder as pandas DataFrames; :mod:`~fedenv.evaluation.plots`: the figures.
"""

from __future__ import annotations

from fedenv.evaluation.metrics import METRICS, EpisodeRecord, episode_metrics
from fedenv.evaluation.play import Comparison, Plan, RunResult, compare, plan_comparison, run_one
from fedenv.evaluation.tidy import Results, load

__all__ = [
    "METRICS",
    "Comparison",
    "EpisodeRecord",
    "Plan",
    "Results",
    "RunResult",
    "compare",
    "episode_metrics",
    "load",
    "plan_comparison",
    "run_one",
]
