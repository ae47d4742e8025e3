"""What ``evaluate.py`` runs: incentive mechanisms compared on the same scenarios and seeds.

- :mod:`~fedenv.evaluation.play`: the plan (scenario x mechanism x seed), one run, the comparison;
- :mod:`~fedenv.evaluation.metrics`: the records an episode leaves and the metrics computed from
  them;
- :mod:`~fedenv.evaluation.report`: aggregation over seeds, tables, files and plots.
"""

from __future__ import annotations

from fedenv.evaluation.metrics import METRICS, EpisodeRecord, episode_metrics
from fedenv.evaluation.play import Comparison, Plan, RunResult, compare, plan_comparison, run_one

__all__ = [
    "METRICS",
    "Comparison",
    "EpisodeRecord",
    "Plan",
    "RunResult",
    "compare",
    "episode_metrics",
    "plan_comparison",
    "run_one",
]
