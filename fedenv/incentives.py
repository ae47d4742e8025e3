"""Incentive mechanisms: how a round's reward pool is split among the accepted participants.

Mechanisms are configuration (``[incentives] mechanism = "..."`` in a scenario), as in the AI
Economist: a registry of small named designs with one method,
``payouts(contributions, data_sizes, pool) -> {org: money}``.

| name        | payout of accepted participant ``i``                                     |
| ----------- | ------------------------------------------------------------------------ |
| `shapley`   | ``pool * c_i+ / sum_j c_j+`` with ``c+ = max(c, 0)`` (contribution share) |
| `loo`       | the same rule; the name records which contribution score it is meant for  |
| `equal`     | ``pool / n``: split evenly, whatever was contributed                      |
| `data_size` | ``pool * n_i / sum_j n_j``: proportional to the examples trained on       |
| `none`      | 0: taking part only buys access to the improved model                     |

``contributions`` are whatever the scenario's scoring method produced (``loo``, ``shapley`` or
``tmc_shapley``); the env passes only the participants whose updates were accepted.  When no
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

    def payouts(
        self, contributions: Mapping[str, float], data_sizes: Mapping[str, int], pool: float
    ) -> dict[str, float]: ...


@dataclass(frozen=True)
class ContributionShare:
    """Pays the pool in proportion to positive contributions."""

    name: str

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

    def payouts(
        self, contributions: Mapping[str, float], data_sizes: Mapping[str, int], pool: float
    ) -> dict[str, float]:
        return {org: pool / len(data_sizes) for org in data_sizes}


@dataclass(frozen=True)
class DataSizeShare:
    """Pays the pool in proportion to the number of examples each participant trained on."""

    name: str = "data_size"

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

    def payouts(
        self, contributions: Mapping[str, float], data_sizes: Mapping[str, int], pool: float
    ) -> dict[str, float]:
        return dict.fromkeys(data_sizes, 0.0)


MECHANISMS: dict[str, Mechanism] = {
    m.name: m
    for m in (
        ContributionShare("shapley"),
        ContributionShare("loo"),
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
