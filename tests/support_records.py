"""Hand-made round records (:mod:`fedenv.records`) for the tests of what reads them."""

from __future__ import annotations

from typing import Any

from fedenv.records import OrgOutcome, RoundOutcome
from fedenv.scoring.costs import RoundCosts


def org_outcome(
    *,
    participated: bool = True,
    accepted: bool = True,
    contribution: float = 0.0,
    payout: float = 0.0,
    cost: float = 0.0,
    reward: float = 0.0,
    **fields: Any,
) -> OrgOutcome:
    """One organization's round; ``cost`` is all compute unless ``costs`` is given."""
    values: dict[str, Any] = {
        "domain": "bank",
        "level": int(participated),
        "local_steps": int(participated),
        "contribution": contribution,
        "payout": payout,
        "costs": RoundCosts(compute=cost),
        "model_value": 0.0,
        "reward": reward,
        "accepted": accepted,
        "tx_ids": (),
    }
    return OrgOutcome(**{**values, **fields})


def round_outcome(
    orgs: dict[str, OrgOutcome],
    global_score: float = 1.0,
    domain_scores: dict[str, float] | None = None,
    **fields: Any,
) -> RoundOutcome:
    """A round of ``orgs``: what readers use, and placeholders for the ledgers' part."""
    values: dict[str, Any] = {
        "episode": 0,
        "round": 0,
        "max_rounds": 2,
        "global_score": global_score,
        "global_digest": "00" * 32,
        "domain_scores": domain_scores or {"bank": global_score},
        "public_height": 1,
        "scoring_tx": None,
        "anchor_txs": (),
        "evaluations": 0,
        "orgs": orgs,
        "timings": {},
    }
    return RoundOutcome(**{**values, **fields})
