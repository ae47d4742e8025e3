"""Where a state's own values are trusted: a per-state test against the state-free choice.

A tabular learner over a state (``agents.q_learning``) keeps, beside each state's row, the
state-free values ``Qbar`` (the bandit's).  With a split threshold ``z``, a state acts on its
own row only where the data show that its best action beats the state-free greedy action *in
that state* by more than ``z`` standard errors of their difference (Welch's t-test at the
one-sided level of ``z`` normal errors: with few targets the bar is higher); everywhere else it acts on
``Qbar``.  A state whose estimates differ by noise (a few unlucky samples of a profitable level)
is not split, so the learner does what the bandit does until it has evidence.

The statistics of an entry are those of its targets under the learner's step sizes
``alpha_n = max(learning_rate, 1/n)``: the weighted mean (the Q-value itself), the weighted
variance ``v`` and the sum of the squared weights ``w2`` (``1/n`` while the step is ``1/n``; it
levels off at ``alpha / (2 - alpha)`` once the step is constant).  The variance of the weighted
mean is estimated by ``v * w2 / (1 - w2)`` (for equal weights: the sample variance over ``n``).
An entry needs two updates before it has a standard error.
"""

from __future__ import annotations

import numpy as np


def update_entry(mean: float, spread: float, weight2: float, target: float,
                 alpha: float) -> tuple[float, float, float]:
    """One step of size ``alpha`` towards ``target``: the new (mean, spread, weight2)."""
    delta = target - mean
    return (mean + alpha * delta,
            (1.0 - alpha) * (spread + alpha * delta * delta),
            (1.0 - alpha) ** 2 * weight2 + alpha * alpha)


def standard_errors(spread: np.ndarray, weight2: np.ndarray) -> np.ndarray:
    """Standard error of each entry's mean (``inf`` where it has fewer than two updates)."""
    spread, weight2 = np.asarray(spread, np.float64), np.asarray(weight2, np.float64)
    defined = weight2 < 1.0 - 1e-12  # one update (or none) has weight2 1 (or 0: excluded below)
    defined &= weight2 > 0.0
    out = np.full(spread.shape, np.inf)
    out[defined] = np.sqrt(spread[defined] * weight2[defined] / (1.0 - weight2[defined]))
    return out


def split_values(row: np.ndarray, spread: np.ndarray, weight2: np.ndarray,
                 state_free: np.ndarray, z: float) -> np.ndarray | None:
    """The values a state acts on when its data beat the state-free choice, else ``None``.

    ``row``, ``spread``, ``weight2``: the state's entries; ``state_free``: ``Qbar``.  The state
    is split when its best action with a standard error (``a*``) beats every state-free greedy
    action ``g`` in this state: ``row[a*] - row[g] > critical_gap(...)``, about
    ``z * sqrt(se[a*]^2 + se[g]^2)`` once both have many targets (each ``g`` needing a standard
    error of its own: no evidence against ``g`` keeps ``g``).  The values
    returned are the state's row with the entries lacking a standard error at ``-inf``."""
    se = standard_errors(spread, weight2)
    known = np.isfinite(se)
    if not known.any():
        return None
    values = np.where(known, row, -np.inf)
    best = int(np.argmax(values))
    chosen = np.flatnonzero(state_free == state_free.max())
    if best in chosen:
        return None
    for g in chosen:
        if not known[g] or row[best] - row[g] <= critical_gap(se[best], se[g], weight2[best],
                                                             weight2[g], z):
            return None
    return values


def critical_gap(se_a: float, se_b: float, weight2_a: float, weight2_b: float, z: float) -> float:
    """The gap two entries' means must exceed: Welch's test at the one-sided level of ``z``
    standard normal errors, Student's t with Welch-Satterthwaite degrees of freedom, each
    entry's from its effective number of targets ``1 / w2`` (Kish).  A couple of targets make a
    wide gap: their spread is itself a noisy estimate."""
    from scipy import stats  # only the split test needs it

    se2 = se_a * se_a + se_b * se_b
    if se2 == 0.0:  # both entries' targets all equal: the gap itself is the evidence
        return 0.0
    dof_a, dof_b = 1.0 / weight2_a - 1.0, 1.0 / weight2_b - 1.0
    dof = se2 * se2 / (se_a**4 / dof_a + se_b**4 / dof_b)
    return float(stats.t.ppf(stats.norm.cdf(z), dof) * np.sqrt(se2))
