"""What a comparison measures: the records an episode leaves, and the metrics computed from them.

An :class:`EpisodeRecord` holds the episode's rounds as the env recorded them (the typed
:class:`~fedenv.records.RoundOutcome` of each round, one :class:`~fedenv.records.OrgOutcome` per
live organization), plus what the metrics need to know of the scenario (the base model's scores,
the malicious organizations, the domains the base model was not pretrained on).
:func:`episode_metrics` turns one episode into every metric of :data:`METRICS`, slash-namespaced
as in the AI Economist (``model/``, ``cost/``, ``efficiency/``, ``participation/``, ``fairness/``,
``attack/``, ``welfare/``).  A metric that does not apply is ``None``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from fedenv.records import RoundOutcome

METRICS: dict[str, str] = {
    "model/final_score": "benchmark score (0-10) of the global model after the last round",
    "model/score_gain": "final score minus the base model's score",
    "model/private_domain_gain": (
        "mean score gain on the domains the base model was not pretrained on "
        "(None for a base model that is not an embedded preset)"
    ),
    "cost/total_payout": "money paid to the organizations over the episode",
    "cost/total_org_cost": "compute + communication + ledger costs of all organizations",
    "efficiency/gain_per_payout": "score gain per unit of money paid (None if nothing was paid)",
    "participation/rate": (
        "share of (organization, round) slots taken part in; an organization out of budget "
        "counts as sitting out"
    ),
    "fairness/contribution_payout_corr": (
        "Pearson correlation, over the organizations that took part, of summed contribution "
        "and summed payout"
    ),
    "fairness/jain_payout": (
        "Jain's index of the summed payouts of the organizations that took part "
        "(1 = equal, 1/n = one takes all)"
    ),
    "attack/payout_share_malicious": (
        "share of the payouts that went to organizations whose behaviour is not 'honest' "
        "(0 if none; None if nothing was paid: a mechanism that pays nobody pays no attacker "
        "either, and is left out of the attack comparison)"
    ),
    "attack/backdoor_asr": (
        "backdoor attack success rate after the last round: share of triggered held-out prompts "
        "of the backdoor attackers' domains the global model answers with the target (None "
        "without a backdoor attacker)"
    ),
    "attack/false_fact_acceptance": (
        "share of the false_facts attackers' falsified facts the global model prefers wrong "
        "after the last round (None without a false_facts attacker)"
    ),
    "attack/honest_false_rejection": (
        "share of the honest organizations' updates that were rejected (None if none was sent)"
    ),
    "attack/attacker_rejection": (
        "share of the attackers' updates that were rejected (None without attackers' updates)"
    ),
    "welfare/total_reward": "sum of every organization's rewards (payout + model value - costs)",
}
ATTACK_MEASURES = {
    "attack/backdoor_asr": "backdoor_asr",
    "attack/false_fact_acceptance": "false_fact_acceptance",
}
"""The metrics read from the last round's attack measures (:mod:`fedenv.scoring.attack_measures`)."""


@dataclass(frozen=True)
class EpisodeRecord:
    """One episode of a fedenv env: its rounds as the env recorded them (``env.round_log``),
    with what the metrics need to know about the scenario.

    (``agents.rollout.EpisodeRecord`` is another layer's concept: per-agent sums over any
    PettingZoo env's infos, for the trainer's logs.)"""

    organizations: tuple[str, ...]
    base_score: float
    base_domain_scores: Mapping[str, float]
    rounds: tuple[RoundOutcome, ...]
    malicious: frozenset[str] = frozenset()
    unknown_domains: tuple[str, ...] = ()  # domains the base model was not pretrained on


def jain_index(values: Sequence[float]) -> float | None:
    """``(sum x)^2 / (n * sum x^2)``: 1 when all are equal, 1/n when one holds everything.

    ``None`` for no values or all zeros; values must be >= 0."""
    x = np.asarray(values, dtype=np.float64)
    if x.size and x.min() < 0:
        raise ValueError(f"Jain's index needs non-negative values, got {x.min()}")
    squares = float(np.sum(x * x))
    return None if x.size == 0 or squares == 0.0 else float(x.sum() ** 2 / (x.size * squares))


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Pearson correlation; ``None`` for fewer than two points or a constant series."""
    x, y = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"need series of equal length, got {x.size} and {y.size}")
    if x.size < 2:
        return None
    if _constant(x) or _constant(y):
        return None
    dx, dy = x - x.mean(), y - y.mean()
    return float(np.clip(dx @ dy / math.sqrt(float(dx @ dx) * float(dy @ dy)), -1.0, 1.0))


def _constant(x: np.ndarray) -> bool:
    """Equal up to float rounding (sums of the same payouts in another order)."""
    return float(np.ptp(x)) <= 1e-12 * max(1.0, float(np.abs(x).max()))


def episode_metrics(episode: EpisodeRecord) -> dict[str, float | None]:
    """Every metric of :data:`METRICS` for one episode."""
    if not episode.rounds:
        raise ValueError("an episode without rounds has no metrics")
    cells = [(org, row) for r in episode.rounds for org, row in r.orgs.items()]
    payout = dict.fromkeys(episode.organizations, 0.0)
    contribution = dict.fromkeys(episode.organizations, 0.0)
    took_part: set[str] = set()
    for org, row in cells:
        payout[org] += row.payout
        contribution[org] += row.contribution
        if row.participated:
            took_part.add(org)
    part = [o for o in episode.organizations if o in took_part]
    final = episode.rounds[-1]
    gain = final.global_score - episode.base_score
    total_payout = sum(payout.values())
    private = [
        final.domain_scores[d] - episode.base_domain_scores[d]
        for d in episode.unknown_domains
        if d in final.domain_scores
    ]
    slots = len(episode.organizations) * len(episode.rounds)
    to_malicious = sum(payout[o] for o in episode.malicious if o in payout)
    sent = [(org in episode.malicious, row.accepted) for org, row in cells if row.participated]
    return {
        "model/final_score": final.global_score,
        "model/score_gain": gain,
        "model/private_domain_gain": float(np.mean(private)) if private else None,
        "cost/total_payout": total_payout,
        "cost/total_org_cost": sum(row.costs.total for _, row in cells),
        "efficiency/gain_per_payout": gain / total_payout if total_payout > 0 else None,
        "participation/rate": sum(row.participated for _, row in cells) / slots,
        "fairness/contribution_payout_corr": pearson(
            [contribution[o] for o in part], [payout[o] for o in part]
        ),
        "fairness/jain_payout": jain_index([payout[o] for o in part]),
        "attack/payout_share_malicious": to_malicious / total_payout if total_payout > 0 else None,
        **{name: final.attack_measures.get(key) for name, key in ATTACK_MEASURES.items()},
        "attack/honest_false_rejection": _rejected_share(sent, malicious=False),
        "attack/attacker_rejection": _rejected_share(sent, malicious=True),
        "welfare/total_reward": sum(row.reward for _, row in cells),
    }


def _rejected_share(sent: Sequence[tuple[bool, bool]], *, malicious: bool) -> float | None:
    """Share of the updates (``(from an attacker, accepted)``) of one side that were rejected."""
    side = [accepted for attacker, accepted in sent if attacker == malicious]
    return sum(not accepted for accepted in side) / len(side) if side else None


def mean_metrics(per_episode: Sequence[Mapping[str, float | None]]) -> dict[str, float | None]:
    """Each metric's mean over the episodes where it applies (``None`` where it never does)."""
    means: dict[str, float | None] = {}
    for name in METRICS:
        values = [m[name] for m in per_episode if m.get(name) is not None]
        means[name] = float(np.mean(values)) if values else None
    return means
