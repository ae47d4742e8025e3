"""Reputation: a score per organization that the consortium keeps on its channel across rounds.

Every organization starts an episode at :data:`INITIAL`. After each round it takes part in, its
reputation moves towards 1 when its update was accepted and towards 0 when it was rejected::

    reputation <- decay * reputation + (1 - decay) * accepted

With the ``reputation`` defence on, an update's aggregation weight and its payout are multiplied
by its organization's reputation before the round, so an organization whose updates keep being
rejected counts, and earns, less and less, even in a round where it slips through. The round's
scoring transaction carries each participant's new reputation, and the channel's chaincode
(:mod:`fedenv.ledgers`) refuses one that does not follow this rule from the value it holds.
This module is plain Python: the chaincode runs it on the endorsing peers.
"""

from __future__ import annotations

INITIAL = 1.0
TOLERANCE = 1e-6  # the scoring record carries 6 decimals


def next_reputation(previous: float, accepted: bool, decay: float) -> float:
    """The reputation after one round taken part in (see the module docstring)."""
    return decay * previous + (1.0 - decay) * (1.0 if accepted else 0.0)
