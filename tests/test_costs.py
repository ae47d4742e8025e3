"""Round costs: compute by resource level and unit cost, communication, ledger fees."""

from __future__ import annotations

import pytest

from fedenv.scoring.costs import TRANSACTIONS_PER_UPDATE, RoundCosts, round_costs
from fedenv.scoring.settings import CostSettings

UNIT_COST, COMPUTE = 1.5, 2.0  # the organization's price of a compute unit; the level's units
COSTS = CostSettings(communication_per_update=0.25, ledger_fee_per_tx=0.05)


def test_participant_pays_compute_communication_and_ledger():
    cost = round_costs(UNIT_COST, COMPUTE, COSTS)
    assert cost == RoundCosts(
        compute=3.0, communication=0.25, ledger=0.05 * TRANSACTIONS_PER_UPDATE
    )
    assert cost.total == pytest.approx(3.0 + 0.25 + 0.1)


def test_counts_scale_the_per_item_costs():
    cost = round_costs(UNIT_COST, COMPUTE, COSTS, updates_sent=3, transactions=5)
    assert (cost.communication, cost.ledger) == pytest.approx((0.75, 0.25))


def test_sitting_out_costs_nothing():
    assert round_costs(UNIT_COST, None, COSTS).total == 0.0


def test_negative_counts_are_refused():
    with pytest.raises(ValueError, match="transactions=-1"):
        round_costs(UNIT_COST, COMPUTE, COSTS, transactions=-1)


def test_an_update_sent_without_training_pays_no_compute():
    cost = round_costs(UNIT_COST, COMPUTE, COSTS, trains=False)
    assert cost.compute == 0 and cost.total == pytest.approx(0.25 + 0.1)
