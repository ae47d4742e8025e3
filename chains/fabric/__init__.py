"""Permissioned, Hyperledger-Fabric-style channels, simulated in one process.

Execute-order-validate: clients propose through a `Gateway`, endorsing peers simulate chaincode
and sign read-write sets, a deterministic sequencer orders transactions into hash-linked blocks
(kept in its own file), and every peer validates each transaction (endorsement policy, MVCC)
before applying the valid ones. Private data collections keep values on member peers only, with
salted hashes on the ledger. `Channel.snapshot()` makes every peer take a ledger snapshot and
drop its blocks below it (the orderer keeps every block). See docs/fabric.md.
"""

from __future__ import annotations

from chains.fabric.chaincode import ChaincodeStub, Creator
from chains.fabric.channel import Channel, Commit, CommittedBlock, TxResult
from chains.fabric.config import ChaincodeDefinition, ChannelConfig, CollectionConfig
from chains.fabric.errors import (
    AccessDeniedError,
    ChaincodeError,
    ConfigError,
    EndorsementError,
    FabricError,
    LedgerStateError,
    MalformedError,
    PolicySyntaxError,
    PrivateDataAccessError,
)
from chains.fabric.gateway import Gateway, Transaction
from chains.fabric.network import ORDERER_ORG, Network
from chains.fabric.policy import EndorsementPolicy, parse_policy
from chains.fabric.validator import ValidationCode
from chains.fabric.verify import find_private_write, verify_channel_file

__all__ = [
    "ORDERER_ORG", "AccessDeniedError", "ChaincodeDefinition", "ChaincodeError", "ChaincodeStub",
    "Channel", "ChannelConfig", "CollectionConfig", "Commit", "CommittedBlock", "ConfigError",
    "Creator", "EndorsementError", "EndorsementPolicy", "FabricError", "Gateway",
    "LedgerStateError", "MalformedError", "Network", "PolicySyntaxError",
    "PrivateDataAccessError", "Transaction", "TxResult", "ValidationCode", "find_private_write",
    "parse_policy", "verify_channel_file",
]
