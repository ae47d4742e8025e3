"""Incentive mechanisms: how a round's reward pool is split among the accepted participants.

Mechanisms are configuration (``[incentives] mechanism = "..."`` in a scenario), as in the AI
Economist: a registry of small named designs with one method,
``payouts(contributions, data_sizes, pool) -> {org: money}``.

| name        | payout of accepted participant ``i``                                     |
| ----------- | ------------------------------------------------------------------------ |
| `shapley`   | ``pool * c_i+ / sum_j c_j+``, ``c+ = max(c, 0)``, ``c`` = Shapley values     |
| `loo`       | the same share rule, with ``c`` = leave-one-out contributions              |
| `equal`     | ``pool / n``: split evenly, whatever was contributed                      |
| `data_size` | ``pool * n_i / sum_j n_j``: proportional to the examples trained on       |
| `none`      | 0: taking part only buys access to the improved model                     |

A mechanism's ``measure`` names the contribution score it pays on (``None``: it uses none). The
scenario's ``scoring.contribution`` decides which updates are accepted; when it is not of the
mechanism's measure (``shapley`` pays on ``shapley`` or ``tmc_shapley`` values, ``loo`` on
``loo``), the env also computes the mechanism's own measure over the same cached coalition values
(:func:`payout_method`). The env passes only the participants whose updates were accepted.  When no
one contributed positively, the contribution-share rules pay nothing and the pool is kept.
Payouts are never negative and never sum to more than ``pool``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from fedenv.errors import ConfigError


class Mechanism(Protocol):
    """A payout rule: ``data_sizes`` holds exactly the accepted participants."""

    name: str
    measure: str | None  # the contribution score it pays on: "shapley", "loo" or None

    def payouts(
        self, contributions: Mapping[str, float], data_sizes: Mapping[str, int], pool: float
    ) -> dict[str, float]: ...


@dataclass(frozen=True)
class ContributionShare:
    """Pays the pool in proportion to positive contributions of kind ``measure``."""

    name: str
    measure: str

    def payouts(
        self, contributions: Mapping[str, float], data_sizes: Mapping[str, int], pool: float
    ) -> dict[str, float]:
        positive = {org: max(float(contributions.get(org, 0.0)), 0.0) for org in data_sizes}
        total = sum(positive.values())
        if total <= 0.0:
            return dict.fromkeys(data_sizes, 0.0)
        return {org: pool * c / total for org, c in positive.items()}


@dataclass(frozen=True)
class EqualSplit:
    """Splits the pool evenly among the participants."""

    name: str = "equal"
    measure: None = None

    def payouts(
        self, contributions: Mapping[str, float], data_sizes: Mapping[str, int], pool: float
    ) -> dict[str, float]:
        return {org: pool / len(data_sizes) for org in data_sizes}


@dataclass(frozen=True)
class DataSizeShare:
    """Pays the pool in proportion to the number of examples each participant trained on."""

    name: str = "data_size"
    measure: None = None

    def payouts(
        self, contributions: Mapping[str, float], data_sizes: Mapping[str, int], pool: float
    ) -> dict[str, float]:
        total = sum(data_sizes.values())
        if total <= 0:
            return dict.fromkeys(data_sizes, 0.0)
        return {org: pool * n / total for org, n in data_sizes.items()}


@dataclass(frozen=True)
class NoPayout:
    """Pays nothing; the improved model is the only incentive."""

    name: str = "none"
    measure: None = None

    def payouts(
        self, contributions: Mapping[str, float], data_sizes: Mapping[str, int], pool: float
    ) -> dict[str, float]:
        return dict.fromkeys(data_sizes, 0.0)


MECHANISMS: dict[str, Mechanism] = {
    m.name: m
    for m in (
        ContributionShare("shapley", "shapley"),
        ContributionShare("loo", "loo"),
        EqualSplit(),
        DataSizeShare(),
        NoPayout(),
    )
}


def get_mechanism(name: str) -> Mechanism:
    """The registered mechanism ``name``; :class:`ConfigError` lists the known ones otherwise."""
    try:
        return MECHANISMS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            "incentives.mechanism",
            f"unknown mechanism {name!r}; choose one of {', '.join(MECHANISMS)}",
        ) from None


def payout_method(
    mechanism: Mechanism, scoring_method: str, players: int, max_exact: int
) -> str | None:
    """The contribution method whose values ``mechanism`` pays on, when the scenario's
    ``scoring_method`` is not of its measure; ``None`` when the scoring values serve as they are."""
    if mechanism.measure is None or scoring_method.endswith(mechanism.measure):
        return None
    if mechanism.measure == "shapley":
        return "shapley" if players <= max_exact else "tmc_shapley"
    return mechanism.measure
