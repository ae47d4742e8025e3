"""The scoring layer's settings: contribution scoring, payouts and costs.

A scenario embeds them as its ``[scoring]``, ``[incentives]`` and ``[costs]`` sections
(:class:`~fedenv.settings.Settings` models: one declaration, bounds and help text per field).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from fedenv.scoring.contribution import METHODS
from fedenv.scoring.incentives import MECHANISMS
from fedenv.settings import Settings, one_of


class ScoringSettings(Settings):
    """Contribution scoring of each round's updates."""

    contribution: Annotated[str, AfterValidator(one_of(METHODS))] = Field(
        "loo", description="contribution method: loo, shapley (exact, <= 8 orgs) or tmc_shapley"
    )
    reject_negative: bool = Field(
        True,
        description="leave updates with negative contribution out of the aggregate, and commit "
        "nothing if the rest would lower the global's score",
    )
    tmc_permutations: int = Field(24, ge=1, description="tmc_shapley: most permutations sampled")
    tmc_tolerance: float = Field(
        0.01,
        ge=0.0,
        description="tmc_shapley: truncate a permutation once its prefix is this close to the "
        "full coalition's value",
    )


class IncentiveSettings(Settings):
    """Payouts, and what a better model is worth to an organization."""

    mechanism: Annotated[str, AfterValidator(one_of(MECHANISMS))] = Field(
        "shapley", description="payout rule (see fedenv.scoring.incentives)"
    )
    reward_pool: float = Field(10.0, ge=0.0, description="money paid out per round")
    model_value_weight: float = Field(
        1.0, ge=0.0, description="money per point of own-domain score improvement"
    )
    collective_weight: float = Field(
        0.0,
        ge=0.0,
        description="money per point of global score improvement, for each participant: a "
        "collective term aligning an organization's reward with the consortium's model",
    )


class CostSettings(Settings):
    """What sending an update costs, besides compute."""

    communication_per_update: float = Field(0.1, ge=0.0, description="cost of sending one update")
    ledger_fee_per_tx: float = Field(
        0.01, ge=0.0, description="fee per transaction an org submits"
    )
