"""The studies: figures and tables of the docs, each made by one command.

    python -m studies.learning       # Q-learning convergence and the greedy comparison (docs/agents.md)
    python -m studies.incentives     # incentive mechanisms compared with paired CIs (docs/evaluate.md)

They sit at the scripts' level (beside ``train_agents.py`` and ``evaluate.py``), not inside
``fedenv``: a study trains the organizations' learners, which live in ``agents/``, and fedenv
never imports agents.  Each study writes its raw results (JSON) before drawing, and can redraw
from them (``--from-results``) without running anything again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def save_figure(figure: Any, path: str | Path, dpi: int = 110) -> Path:
    """Lay out, write (creating the folder) and close a matplotlib figure; returns its path."""
    from matplotlib import pyplot as plt

    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi)
    plt.close(figure)
    return path
