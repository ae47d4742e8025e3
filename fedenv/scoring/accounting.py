"""Dilution-proof accounting: contributions and payouts measured on the set that is aggregated.

:func:`settle` takes the candidates the defences let through (:mod:`fedenv.scoring.defence`) and
plays the round's game on them:

- **Fixed shares.** Each accepted update ``i`` gets the share ``s_i = b_i / sum_{j in N} b_j`` of
  the round (``b``: its data size times the defences' factors, ``N``: the accepted set), and
  ``value(S)`` is the benchmark score of the global moved by the shares of ``S``'s changes,
  ``g + sum_{i in S} s_i (a_i - g)`` (:class:`~fedenv.engine.aggregators.AggregationRule`).
  ``value(N)`` is the aggregate that is committed. Adding an update never changes another's
  share within a coalition, so an update that changes nothing (a free rider's) has marginal
  value exactly 0 in every coalition, and its Shapley value and leave-one-out contribution are 0
  by construction: no update can earn by diluting the others. (Under the coordinate-wise
  ``median`` or ``trimmed_mean``, ``value(S)`` is that statistic over ``S`` and this holds only
  approximately; the near-global screen rejects free riders before they get there.)
- **Fixed point.** With ``scoring.reject_negative``, updates whose contribution is negative are
  rejected, the shares are renormalized over the rest, and the game is played again on it, until
  no contribution is negative: the contributions reported and paid on are those of the set that is
  aggregated. If that set would lower the global's score, nothing is committed (and nothing paid).
- **Pay** is the mechanism's measure (``shapley`` or ``loo``) on the final set, over the same
  cached coalition values.

Each iteration's coalitions are evaluated once (:class:`~fedenv.scoring.coalition_values.\
RoundCoalitionValues`); an iteration after a rejection costs the method's coalitions of the
smaller set again (leave-one-out: ``n``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from fedenv.data.benchmark import BenchmarkResult
from fedenv.engine.aggregators import AggregationRule
from fedenv.engine.federation import ClientUpdate, FederatedEngine
from fedenv.scoring.coalition_values import RoundCoalitionValues
from fedenv.scoring.contribution import MAX_EXACT_PLAYERS, contributions
from fedenv.scoring.defence import Decision
from fedenv.scoring.incentives import Mechanism, payout_method
from fedenv.scoring.settings import ScoringSettings


@dataclass
class Settlement:
    """The round's accepted set, the contributions measured on it and what the mechanism pays on."""

    accepted: list[str]
    paid_on: dict[str, float]  # the mechanism's measure of each accepted update
    rule: AggregationRule  # how the accepted updates are committed
    result: BenchmarkResult  # the benchmark of the aggregate of the accepted set
    evaluations: int  # coalitions evaluated in the round's games


def settle(
    engine: FederatedEngine,
    candidates: Mapping[str, ClientUpdate],
    base_weights: Mapping[str, float],
    decisions: Mapping[str, Decision],
    before: BenchmarkResult,
    *,
    scoring: ScoringSettings,
    mechanism: Mechanism,
    make_rule: Callable[[Mapping[str, float] | None], AggregationRule],
    rng: Callable[[int], np.random.Generator],
) -> Settlement:
    """Play the round's game to its fixed point (see the module docstring). ``decisions`` get
    each candidate's contribution and share, and the reason of every rejection made here;
    ``rng(iteration)`` seeds ``tmc_shapley``."""
    accepted = sorted(candidates)
    games: list[RoundCoalitionValues] = []
    while True:
        total = sum(base_weights[o] for o in accepted)
        rule = make_rule({o: base_weights[o] / total for o in accepted} if accepted else None)
        values = RoundCoalitionValues(
            engine, {o: candidates[o] for o in accepted}, before, rule=rule
        )
        games.append(values)
        scored = _contributions(scoring.contribution, accepted, values, rng(len(games) - 1), scoring)
        for org in accepted:
            decisions[org].contribution = scored[org]
        negative = [o for o in accepted if scored[o] < 0] if scoring.reject_negative else []
        for org in negative:
            decisions[org].reject(
                f"contribution: {scored[org]:+.4g} < 0 among {len(accepted)} candidates"
            )
        if not negative:
            break
        accepted = [o for o in accepted if o not in negative]
    if scoring.reject_negative and accepted and values(accepted) < values(()):
        for org in accepted:
            decisions[org].reject(
                f"aggregate: the accepted updates together would lower the score "
                f"({values(accepted):.4f} < {values(()):.4f})"
            )
        accepted = []
    paid_on: dict[str, float] = {}
    if accepted:
        method = payout_method(mechanism, scoring.contribution, len(accepted), MAX_EXACT_PLAYERS)
        paid_on = (
            {o: decisions[o].contribution for o in accepted}
            if method is None
            else _contributions(method, accepted, values, rng(len(games)), scoring)
        )
        shares = rule.shares or dict.fromkeys(accepted, 1.0 / len(accepted))
        for org in accepted:
            decisions[org].weight = shares[org]
    return Settlement(
        accepted,
        paid_on,
        rule,
        values.result(accepted) if accepted else before,
        sum(game.evaluations for game in games),
    )


def _contributions(
    method: str,
    players: list[str],
    values: RoundCoalitionValues,
    rng: np.random.Generator,
    scoring: ScoringSettings,
) -> dict[str, float]:
    return contributions(
        method,
        players,
        values,
        rng=rng,
        permutations=scoring.tmc_permutations,
        tolerance=scoring.tmc_tolerance,
    )
