"""What a round leaves behind, as typed records: an :class:`OrgOutcome` per organization and a
:class:`RoundOutcome` per round.

:meth:`fedenv.round.RoundPlayer.play` returns a :class:`RoundOutcome`; the env keeps the
episode's in ``env.round_log`` and turns each organization's outcome into PettingZoo's plain
info dict only at its edge (:meth:`RoundOutcome.info`, the keys of :data:`INFO_KEYS`);
:func:`fedenv.render.round_table` draws one as a table; :mod:`fedenv.evaluation` computes its
metrics from these same records.  Money is in the scenario's units, scores are benchmark scores
(0-10).  Wall-clock timings live in :attr:`RoundOutcome.timings` and never in the infos, so
infos are the same for the same seed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fedenv.scoring.costs import RoundCosts

INFO_KEYS = (
    "participated",
    "resource",
    "local_steps",
    "contribution",
    "payout",
    "cost_compute",
    "cost_communication",
    "cost_ledger",
    "cost_total",
    "model_value",
    "reward",
    "accepted",
    "tx_ids",
    "public_height",
    "global_score",
    "domain_scores",
    "round",
    "weight",
    "reasons",
    "reputation",
    "backdoor_asr",
    "false_fact_acceptance",
)
"""The keys of ``infos[org]`` after a step, in this order (documented in :mod:`fedenv.fedorg`)."""


@dataclass(frozen=True)
class OrgOutcome:
    """One organization in one round."""

    domain: str  # the organization's own domain
    level: int  # its action: 0 = sat the round out, k = took part at resource level k
    local_steps: int  # the level's local training steps (0 when it sat out)
    contribution: float  # measured on the benchmark, in score points (0 when it sat out)
    payout: float  # what the mechanism paid it this round
    costs: RoundCosts  # compute, communication and ledger fees (nothing when it sat out)
    model_value: float  # model_value_weight x its own domain's score gain (0 when it sat out)
    reward: float  # payout + model_value - costs.total
    accepted: bool  # its update went into the new global model
    tx_ids: tuple[str, ...]  # its public update-hash and private-collection transactions
    weight: float = 0.0  # its share of the aggregate (0: rejected or sat out)
    reasons: tuple[str, ...] = ()  # why the defences rejected or down-weighted it
    reputation: float = 1.0  # its reputation on the channel after the round (1: defence off)

    @property
    def participated(self) -> bool:
        return self.level > 0


@dataclass(frozen=True)
class RoundOutcome:
    """One round: the global model after it, the ledgers' state, and every live organization."""

    episode: int  # the run folder's episode index (counts on across reopened folders)
    round: int  # 0-based index of the round in its episode
    max_rounds: int
    global_score: float  # benchmark score of the global model after the round
    global_digest: str  # SHA-256 of the global state after the round
    domain_scores: Mapping[str, float]  # the global model's score per domain after the round
    public_height: int  # public ledger height after the round's block
    scoring_tx: str | None  # the scoring channel's scoring transaction (None: no update)
    anchor_txs: tuple[str, ...]  # the public round-summary transaction (global digest in it)
    evaluations: int  # benchmark evaluations of coalitions the round's scoring needed
    orgs: Mapping[str, OrgOutcome]  # the organizations live in the round, in the env's order
    timings: Mapping[str, float]  # wall-clock seconds per stage (train, scoring, ledgers, ...)
    attack_measures: Mapping[str, float] = field(default_factory=dict)  # backdoor_asr, ...
    scoring_channel: str | None = None  # the channel the round was scored on (None: no update)

    def domain_score(self, org: str) -> float:
        """The global model's score on ``org``'s own domain after the round."""
        return self.domain_scores[self.orgs[org].domain]

    def info(self, org: str) -> dict[str, Any]:
        """``infos[org]`` as the env returns it: plain values under :data:`INFO_KEYS`."""
        row = self.orgs[org]
        return {
            "participated": row.participated,
            "resource": row.level,
            "local_steps": row.local_steps,
            "contribution": row.contribution,
            "payout": row.payout,
            "cost_compute": row.costs.compute,
            "cost_communication": row.costs.communication,
            "cost_ledger": row.costs.ledger,
            "cost_total": row.costs.total,
            "model_value": row.model_value,
            "reward": row.reward,
            "accepted": row.accepted,
            "tx_ids": list(row.tx_ids),
            "public_height": self.public_height,
            "global_score": self.global_score,
            "domain_scores": dict(self.domain_scores),
            "round": self.round,
            "weight": row.weight,
            "reasons": list(row.reasons),
            "reputation": row.reputation,
            "backdoor_asr": self.attack_measures.get("backdoor_asr"),
            "false_fact_acceptance": self.attack_measures.get("false_fact_acceptance"),
        }
