"""Contribution scoring: how much each participant's update is worth to the coalition.

A round is a cooperative game: the players are the participants, and ``value(S)`` is the
benchmark score of the global adapter aggregated from the updates of coalition ``S``
(``value(frozenset())`` is the current global's score).  A contribution is a difference of
coalition values, in benchmark points:

| method        | contribution of ``i``                                       | value() calls     |
| ------------- | ----------------------------------------------------------- | ----------------- |
| `loo`         | ``v(N) - v(N - {i})`` (leave-one-out)                       | ``n + 1``         |
| `shapley`     | exact Shapley value over all ``2^n`` coalitions (n <= 8)    | ``2^n``           |
| `tmc_shapley` | truncated Monte-Carlo Shapley over sampled permutations     | at most ``T * n`` |

``tmc_shapley`` follows Data Shapley (Ghorbani & Zou, 2019) with GTG-Shapley's refinements for
federated rounds (Liu et al., 2022): the whole round is skipped (all zero) when
``|v(N) - v({})| < tolerance``, permutations are guided so that every player leads equally
often, and a permutation is truncated once ``|v(N) - v(prefix)| < tolerance`` (the rest of its
players get marginal 0).  With ``tolerance=0`` nothing is truncated: the estimate is unbiased
(exactly so when ``permutations`` is a multiple of ``n``) and converges to the exact value.

``value`` is evaluated at most once per coalition: :func:`contributions` works on a
:class:`~fedenv.scoring.coalition_values.CoalitionValues` (the round's own, or one made from a
plain function), which keeps every value, and asks it first for every coalition the method is
known to need (:func:`needed_coalitions`), so that they can be evaluated together.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import numpy as np

from fedenv.errors import ConfigError
from fedenv.scoring.coalition_values import CoalitionValues

Value = Callable[[frozenset[str]], float]
METHODS = ("loo", "shapley", "tmc_shapley")
MAX_EXACT_PLAYERS = 8


def contributions(
    method: str,
    players: Sequence[str],
    value: Value,
    *,
    rng: np.random.Generator | None = None,
    permutations: int = 24,
    tolerance: float = 0.01,
) -> dict[str, float]:
    """Each player's contribution under ``method`` (see the module table).

    ``rng`` drives ``tmc_shapley`` (required there); ``permutations`` caps its samples and
    ``tolerance`` (benchmark points) sets both of its truncations.
    """
    players = list(players)
    if len(set(players)) != len(players):
        raise ValueError(f"players must be distinct, got {players}")
    if not players:
        return {}
    cached = value if isinstance(value, CoalitionValues) else CoalitionValues.of(value)
    if method == "tmc_shapley" and rng is None:
        raise ValueError("tmc_shapley needs a seeded rng (numpy Generator)")
    cached.prefetch(needed_coalitions(method, players))
    if method == "loo":
        return leave_one_out(players, cached)
    if method == "shapley":
        return exact_shapley(players, cached)
    if method == "tmc_shapley":
        return tmc_shapley(players, cached, rng=rng, permutations=permutations, tolerance=tolerance)
    raise ConfigError(
        "scoring.contribution", f"unknown method {method!r}; choose one of {', '.join(METHODS)}"
    )


def needed_coalitions(method: str, players: Sequence[str]) -> list[frozenset[str]]:
    """The coalitions ``method`` evaluates whatever their values: leave-one-out ``N`` and every
    ``N - {i}``; exact Shapley every subset; truncated Monte-Carlo ``{}`` and ``N`` (the rest
    depends on the values and the sampled permutations)."""
    everyone = frozenset(players)
    if method == "loo":
        return [everyone, *(everyone - {p} for p in players)]
    if method == "shapley":
        _check_exact(len(players))
        return [
            frozenset(c)
            for k in range(len(players) + 1)
            for c in itertools.combinations(players, k)
        ]
    if method == "tmc_shapley":
        return [frozenset(), everyone]
    raise ConfigError(
        "scoring.contribution", f"unknown method {method!r}; choose one of {', '.join(METHODS)}"
    )


def _check_exact(n: int) -> None:
    if n > MAX_EXACT_PLAYERS:
        raise ConfigError(
            "scoring.contribution",
            f"exact 'shapley' supports at most {MAX_EXACT_PLAYERS} players, got {n}; "
            f"use 'tmc_shapley'",
        )


def leave_one_out(players: Sequence[str], value: Value) -> dict[str, float]:
    everyone = frozenset(players)
    total = value(everyone)
    return {p: total - value(everyone - {p}) for p in players}


def exact_shapley(players: Sequence[str], value: Value) -> dict[str, float]:
    """``phi_i = sum_{S ⊆ N-{i}} |S|! (n-|S|-1)! / n! * (v(S+i) - v(S))``."""
    n = len(players)
    _check_exact(n)
    weight = [math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n) for s in range(n)]
    phi = dict.fromkeys(players, 0.0)
    for p in players:
        others = [q for q in players if q != p]
        for size in range(n):
            for coalition in itertools.combinations(others, size):
                s = frozenset(coalition)
                phi[p] += weight[size] * (value(s | {p}) - value(s))
    return phi


def tmc_shapley(
    players: Sequence[str],
    value: Value,
    *,
    rng: np.random.Generator,
    permutations: int,
    tolerance: float,
) -> dict[str, float]:
    """Guided, truncated Monte-Carlo Shapley (see the module docstring)."""
    if permutations < 1 or tolerance < 0:
        raise ValueError(
            f"need permutations >= 1 and tolerance >= 0, got {permutations}, {tolerance}"
        )
    n = len(players)
    empty, full = value(frozenset()), value(frozenset(players))
    totals = dict.fromkeys(players, 0.0)
    if abs(full - empty) < tolerance:  # between-round truncation: nothing to share out
        return totals
    for t in range(permutations):
        order = [int(i) for i in rng.permutation(n)]
        lead = t % n  # guided sampling: every player leads a permutation in turn
        order.remove(lead)
        order.insert(0, lead)
        prefix: frozenset[str] = frozenset()
        before = empty
        for index in order:
            if abs(full - before) < tolerance:  # within-permutation truncation
                break
            prefix = prefix | {players[index]}
            after = value(prefix)
            totals[players[index]] += after - before
            before = after
    return {p: totals[p] / permutations for p in players}
