"""What taking part in a round costs an organization.

| item            | cost                                                                |
| --------------- | ------------------------------------------------------------------- |
| compute         | ``compute * unit_cost``: the level's compute units, the org's price |
| communication   | ``costs.communication_per_update`` per update sent                  |
| ledger          | ``costs.ledger_fee_per_tx`` per transaction the org submits, or the |
|                 | fees its channels charge (``ledger_fees``, see fedenv.ledgers)      |

An organization that sits a round out pays nothing; one whose behaviour does not train
(:mod:`fedenv.scoring.attacks`) pays no compute.  Per round, a participant sends one update
and submits two transactions: the update's hash on the public ledger and the raw update into its
private data collection on its channel (:data:`TRANSACTIONS_PER_UPDATE`); with several channels,
the ledgers charge their own fees (``ledger_fees``: a digest attested on another scoring
channel, per-channel fees, shares of the scoring record's endorsements; see
:mod:`fedenv.ledgers.run_ledgers`).  The scoring and anchoring transactions' base fees are the
consortium's.
"""

from __future__ import annotations

from dataclasses import dataclass

from fedenv.scoring.settings import CostSettings

TRANSACTIONS_PER_UPDATE = 2


@dataclass(frozen=True)
class RoundCosts:
    compute: float = 0.0
    communication: float = 0.0
    ledger: float = 0.0

    @property
    def total(self) -> float:
        return self.compute + self.communication + self.ledger


def round_costs(
    unit_cost: float,
    compute: float | None,
    costs: CostSettings,
    *,
    updates_sent: int = 1,
    transactions: int = TRANSACTIONS_PER_UPDATE,
    trains: bool = True,
    ledger_fees: float | None = None,
) -> RoundCosts:
    """Costs of one round for an organization paying ``unit_cost`` per compute unit, taking part
    at a level of ``compute`` units (``None``: sat out, nothing to pay); ``trains=False``: it
    sent an update without training (no compute); ``ledger_fees``: what the ledgers charged it
    (default: ``transactions x costs.ledger_fee_per_tx``)."""
    if compute is None:
        return RoundCosts()
    if updates_sent < 0 or transactions < 0:
        raise ValueError(
            f"counts must be >= 0, got updates_sent={updates_sent}, transactions={transactions}"
        )
    return RoundCosts(
        compute=compute * unit_cost if trains else 0.0,
        communication=updates_sent * costs.communication_per_update,
        ledger=transactions * costs.ledger_fee_per_tx if ledger_fees is None else ledger_fees,
    )
