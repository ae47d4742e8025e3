"""The scoring layer's settings: contribution scoring, payouts, costs and defences.

A scenario embeds them as its ``[scoring]``, ``[incentives]``, ``[costs]`` and ``[defence]``
sections (:class:`~fedenv.settings.Settings` models: one declaration, bounds and help text per
field).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from fedenv.errors import ConfigError
from fedenv.scoring.contribution import METHODS
from fedenv.scoring.incentives import MECHANISMS
from fedenv.settings import Settings, one_of

NORM_RULES = ("normalize", "clip", "none")
AGGREGATIONS = ("mean", "median", "trimmed_mean")
FILTERS = ("krum", "fltrust", "foolsgold")
WEIGHING_FILTERS = ("fltrust", "foolsgold")  # they weigh a mean: no median or trimmed mean


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
    reject_margin: float = Field(
        2.5,
        ge=0.0,
        description="reject_negative: an update is rejected only when its contribution is below "
        "-(this x the benchmark's resolution, one fact probe's worth of score); 0: any negative",
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


def _filters(names: tuple[str, ...]) -> tuple[str, ...]:
    for name in names:
        one_of(FILTERS)(name)
    if len(set(names)) != len(names):
        raise ConfigError("", f"names a filter twice: {list(names)}")
    return names


class DefenceSettings(Settings):
    """What stands between the updates and the aggregate (see fedenv.scoring.defence and
    docs/incentives.md); contribution rejection is ``scoring.reject_negative``."""

    norm: Annotated[str, AfterValidator(one_of(NORM_RULES))] = Field(
        "normalize",
        description="normalize: every update is rescaled to its resource level's norm budget "
        "(a boosted update counts as its unboosted self); clip: only shrunk to it (Sun et al.); "
        "none: as sent",
    )
    norm_bound: float = Field(
        1.0, gt=0.0, description="the norm budget's multiple that updates are rescaled to"
    )
    near_global: float = Field(
        0.25,
        ge=0.0,
        lt=1.0,
        description="reject an update that moves the model less than this share of its norm "
        "budget (a free rider, exact or noisy); 0: off",
    )
    aggregation: Annotated[str, AfterValidator(one_of(AGGREGATIONS))] = Field(
        "mean",
        description="mean (weighted), or the coordinate-wise median or trimmed_mean (Yin et "
        "al.) of the accepted updates: fedavg and ffa only",
    )
    trim: float = Field(
        0.2, gt=0.0, lt=0.5, description="trimmed_mean: share of values cut at each end"
    )
    filters: Annotated[tuple[str, ...], AfterValidator(_filters)] = Field(
        (),
        strict=False,
        description="screens applied in order: krum (multi-Krum), fltrust (trust = cosine to "
        "the consortium's root update), foolsgold (down-weights updates similar to another's)",
    )
    krum_byzantine: int = Field(
        1, ge=0, description="krum: updates assumed Byzantine (f); multi-Krum keeps n - f"
    )
    root_dialogues: int = Field(
        2, ge=1, description="fltrust: the consortium's root set, dialogues per domain"
    )
    root_steps: int = Field(
        0, ge=0, description="fltrust: local steps of the root update; 0: the top level's"
    )
    foolsgold_confidence: float = Field(
        1.0, gt=0.0, description="foolsgold: kappa, the confidence of its logit weighting"
    )
    reputation: bool = Field(
        False,
        description="keep a reputation per organization on the consortium channel: weight and "
        "pay are multiplied by it; it decays towards 0 when rejected, 1 when accepted",
    )
    reputation_decay: float = Field(
        0.7, ge=0.0, lt=1.0, description="reputation <- decay x reputation + (1 - decay) x accepted"
    )
