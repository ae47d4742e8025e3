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
- **Rejection, once, against the benchmark's margin.** With ``scoring.reject_negative``, an
  update is rejected when its contribution is below ``-margin``: ``scoring.reject_margin`` times
  the benchmark's resolution (:attr:`~fedenv.data.benchmark.Benchmark.resolution`, the score of
  one fact probe answered differently; 2.5 by default). A smaller loss is no evidence of harm on
  a held-out set of this size (docs/incentives.md has the measurements). If any update is rejected, the rest's shares are renormalized and
  their game is played once more: the contributions reported and paid on are those of the set
  that is aggregated. That set is not screened again: an update harmful only in it stays in and
  is paid nothing (its measure is negative). If the set would lower the global's score, nothing
  is committed (and nothing paid).
- **Pay** is the mechanism's measure (``shapley`` or ``loo``) on the final set, over the same
  cached coalition values.

A round evaluates the method's coalitions at most twice (leave-one-out: ``n + 1``, then
``n' + 1`` for the ``n'`` kept after a rejection), each once
(:class:`~fedenv.scoring.coalition_values.RoundCoalitionValues`); under a coordinate-wise
statistic no share is renormalized, so the second game reuses the first's values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from fedenv.data.benchmark import BenchmarkResult
from fedenv.engine.aggregators import AggregationRule
from fedenv.engine.federation import ClientUpdate, FederatedEngine
from fedenv.scoring.coalition_values import CoalitionValues, RoundCoalitionValues
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
    """Play the round's game on the candidates, reject once, and pay on the set aggregated (see
    the module docstring). ``decisions`` get each candidate's contribution and share, and the
    reason of every rejection made here; ``rng(game)`` seeds ``tmc_shapley``."""

    played: list[tuple[AggregationRule, RoundCoalitionValues]] = []

    def game(players: list[str]) -> tuple[AggregationRule, RoundCoalitionValues]:
        total = sum(base_weights[o] for o in players)
        rule = make_rule({o: base_weights[o] / total for o in players} if players else None)
        if played and rule.shares is None and played[0][0] == rule:
            # a coordinate-wise statistic has no shares to renormalize: every subset of the
            # candidates keeps its value, so the candidates' game serves the smaller set
            return played[0]
        played.append((rule, RoundCoalitionValues(engine, dict(candidates), before, rule=rule)))
        return played[-1]

    margin = scoring.reject_margin * engine.benchmark.resolution
    return play(
        sorted(candidates),
        game,
        decisions,
        reject=scoring.reject_negative,
        margin=margin,
        method=scoring.contribution,
        pay_method=lambda n: payout_method(mechanism, scoring.contribution, n, MAX_EXACT_PLAYERS),
        score=lambda method, players, values, i: _contributions(
            method, players, values, rng(i), scoring
        ),
        before=before,
    )


def play(
    candidates: list[str],
    game: Callable[[list[str]], tuple[AggregationRule, CoalitionValues]],
    decisions: Mapping[str, Decision],
    *,
    reject: bool,
    margin: float,
    method: str,
    pay_method: Callable[[int], str | None],
    score: Callable[[str, list[str], CoalitionValues, int], dict[str, float]],
    before: BenchmarkResult,
) -> Settlement:
    """The rule of :func:`settle` on any game: ``game(players)`` gives the rule and the coalition
    values of ``players`` with their shares renormalized over them, ``score(method, players,
    values, i)`` the contributions of the ``i``-th scoring. At most two games are played."""
    accepted = list(candidates)
    rule, values = game(accepted)
    games, scorings = [values], 0
    scored = score(method, accepted, values, scorings)
    harmful = [o for o in accepted if scored[o] < -margin] if reject else []
    for org in accepted:
        decisions[org].contribution = scored[org]
    for org in harmful:
        decisions[org].reject(
            f"contribution: {scored[org]:+.4g} < -{margin:.4g} (the benchmark's margin) "
            f"among {len(accepted)} candidates"
        )
    if harmful:  # the one re-scoring: the rest's game, with their shares renormalized
        accepted = [o for o in accepted if o not in harmful]
        rule, values = game(accepted)
        games.append(values)
        if accepted:
            scorings += 1
            scored = score(method, accepted, values, scorings)
            for org in accepted:
                decisions[org].contribution = scored[org]
    if reject and accepted and values(accepted) < values(()):
        for org in accepted:
            decisions[org].reject(
                f"aggregate: the accepted updates together would lower the score "
                f"({values(accepted):.4f} < {values(()):.4f})"
            )
        accepted = []
    paid_on: dict[str, float] = {}
    if accepted:
        other = pay_method(len(accepted))
        paid_on = (
            {o: decisions[o].contribution for o in accepted}
            if other is None
            else score(other, accepted, values, scorings + 1)
        )
        shares = rule.shares or dict.fromkeys(accepted, 1.0 / len(accepted))
        for org in accepted:
            decisions[org].weight = shares[org]
    return Settlement(
        accepted,
        paid_on,
        rule,
        values.result(accepted) if accepted else before,
        sum(g.evaluations for g in {id(g): g for g in games}.values()),
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
