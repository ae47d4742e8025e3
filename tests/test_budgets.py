"""Hard budgets: the action mask, the highest affordable level, when an organization is out."""

from __future__ import annotations

import pytest

from fedenv.budgets import Budgets

COSTS = {"a": (0.0, 1.0, 2.5), "b": (0.0, 0.1, 0.2)}


@pytest.fixture
def budgets() -> Budgets:
    return Budgets({"a": 3.0, "b": 0.3}, 2, lambda org, level: COSTS[org][level])


def test_levels_are_masked_once_they_would_cross_the_budget(budgets):
    assert budgets.mask("a").tolist() == [1, 1, 1] and budgets.mask("a").dtype.name == "int8"
    budgets.spend("a", 1.0)
    assert budgets.mask("a").tolist() == [1, 1, 0] and budgets.left("a") == 2.0
    assert budgets.affordable("a", 2) == 1 and budgets.affordable("a", 0) == 0
    budgets.spend("a", 1.5)
    assert budgets.mask("a").tolist() == [1, 0, 0] and budgets.out("a")
    assert budgets.affordable("a", 2) == 0


def test_spending_exactly_the_budget_is_allowed_despite_rounding(budgets):
    budgets.spend("b", 0.1)
    assert 0.1 + 0.2 > 0.3 and budgets.mask("b").tolist() == [1, 1, 1]  # 0.30000000000000004
    budgets.spend("b", 0.2)
    assert budgets.out("b") and budgets.left("b") == 0.0


def test_reset_gives_every_budget_back(budgets):
    budgets.spend("a", 3.0)
    budgets.reset()
    assert budgets.spent == {"a": 0.0, "b": 0.0} and not budgets.out("a")
