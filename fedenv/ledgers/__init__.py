"""The env's ledgers: one public chain and the permissioned channels of a run, over ``chains``.

Layout inside a run folder::

    public.db                              public chain ([ledger] public = "sqlite"): RFC 9162
                                           Merkle log, signed blocks
    public-eth.db                          or ([ledger] public = "ethereum") the log of every
                                           anchoring transaction sent to the Ethereum chain
    fabric/<channel>/orderer.db            each channel's ordering service
    fabric/<channel>/peer0.<org>.db        each member organization's peer's copy of it

A scenario without ``[[channels]]`` has one channel, ``consortium``, of every organization.

- :mod:`~fedenv.ledgers.run_ledgers`: :class:`Ledgers`, the calls a round makes, and its fees;
- :mod:`~fedenv.ledgers.layout`: which computation goes to which channel;
- :mod:`~fedenv.ledgers.chaincode`: what the channels' endorsing peers run and check;
- :mod:`~fedenv.ledgers.public`: the public chain, SQLite or Ethereum.
"""

from __future__ import annotations

from fedenv.ledgers.chaincode import BENCHMARK, CHAINCODE, SCORES, collection_name
from fedenv.ledgers.layout import ChannelLayout, ChannelPlan, endorsement_policy
from fedenv.ledgers.public import ETHEREUM_FILE, PUBLIC_FILE
from fedenv.ledgers.run_ledgers import FABRIC_DIR, Ledgers, genesis_nonce, round_key
from fedenv.scenario.ledger import DEFAULT_CHANNEL as CHANNEL

__all__ = [
    "BENCHMARK",
    "CHAINCODE",
    "CHANNEL",
    "ETHEREUM_FILE",
    "FABRIC_DIR",
    "PUBLIC_FILE",
    "SCORES",
    "ChannelLayout",
    "ChannelPlan",
    "Ledgers",
    "collection_name",
    "endorsement_policy",
    "genesis_nonce",
    "round_key",
]
