"""Hard budgets: which actions an organization can still afford, and when it is out.

A scenario gives each organization a ``budget`` for the episode's costs
(:mod:`fedenv.scoring.costs`).  The budget is hard: a resource level whose round would take the
organization's spending past its budget is *infeasible*.  :meth:`Budgets.mask` is the
PettingZoo action mask (``int8``, 1 = allowed; action 0, sitting out, always is), and an
organization that can afford no level any more is out of budget (the env terminates it).
What a level can cost is known before the round: compute and communication exactly, ledger fees
at their bound (:meth:`fedenv.round.RoundPlayer.level_costs`, the one rule, handed in as
``costs``); the round charges what was actually spent (fees shared by a round's participants
can be less), so spending never passes the budget.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

TOLERANCE = 1e-9
"""Relative slack for rounding: a level is affordable when spent + cost <= budget * (1 + it)."""


class Budgets:
    """Every organization's spending in one episode, against its budget.

    ``budgets[org]``: its budget; ``costs(org, level)``: what one round at ``level`` costs it
    (a number), for levels ``0..levels``."""

    def __init__(
        self, budgets: Mapping[str, float], levels: int, costs: Callable[[str, int], float]
    ) -> None:
        self.budget = dict(budgets)
        self.costs = {
            org: np.array([float(costs(org, k)) for k in range(1 + levels)]) for org in budgets
        }
        self.spent = dict.fromkeys(self.budget, 0.0)

    def reset(self) -> None:
        self.spent = dict.fromkeys(self.budget, 0.0)

    def spend(self, org: str, amount: float) -> None:
        self.spent[org] += amount

    def left(self, org: str) -> float:
        return max(0.0, self.budget[org] - self.spent[org])

    def mask(self, org: str) -> np.ndarray:
        """Action k is 1 when ``org`` can pay level k's round (action 0 always)."""
        limit = self.budget[org] * (1 + TOLERANCE)
        return (self.spent[org] + self.costs[org] <= limit).astype(np.int8)

    def affordable(self, org: str, level: int) -> int:
        """The highest affordable level at most ``level`` (0 when none is)."""
        return int(np.flatnonzero(self.mask(org)[: level + 1])[-1])

    def out(self, org: str) -> bool:
        """Whether ``org`` can afford no level above 0 any more."""
        return not self.mask(org)[1:].any()
