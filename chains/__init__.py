"""Ledgers and cryptography for fedenv: bytes and digests in, verifiable records out.

- `chains.canonical`: the one canonical JSON encoder (and strict parser) of chains and fedenv.
- `chains.identity` / `chains.msp`: Fabric-style identities (Ed25519 X.509 certificates, roles,
  validity, CRLs) and the membership service that judges them.
- `chains.merkle`: the RFC 9162 Merkle log, inclusion and consistency proofs.
- `chains.public_ledger`: the SQLite public ledger of signed blocks and signed tree heads.
- `chains.verify` / `python -m chains verify PATH`: offline verification of ledger files.
- `chains.anchor.Anchor`: the interface both the public ledger and `chains.ethereum` satisfy.
- `chains.fabric`: permissioned Fabric-style channels.

No torch and no fedenv import here, ever: `chains` is usable (and auditable) on its own.
"""

from __future__ import annotations

from chains.anchor import Anchor
from chains.blocks import TreeHead
from chains.canonical import canonical_json
from chains.clock import LogicalClock
from chains.errors import (
    ChainsError,
    ConfigError,
    IdentityError,
    LedgerCorruptError,
    LedgerError,
    LedgerStorageError,
    MalformedError,
    TransactionRejected,
)
from chains.identity import ROLES, Identity, OrgCA, verify_signature
from chains.msp import MSP
from chains.proofs import ConsistencyProof, InclusionProof
from chains.public_ledger import Block, LedgerConfig, PublicLedger
from chains.report import Problem, VerifyLimits, VerifyReport
from chains.transactions import KINDS, Transaction
from chains.verify import verify_ledger_file, verify_path

__all__ = [
    "KINDS",
    "MSP",
    "ROLES",
    "Anchor",
    "Block",
    "ChainsError",
    "ConfigError",
    "ConsistencyProof",
    "Identity",
    "IdentityError",
    "InclusionProof",
    "LedgerConfig",
    "LedgerCorruptError",
    "LedgerError",
    "LedgerStorageError",
    "LogicalClock",
    "MalformedError",
    "OrgCA",
    "Problem",
    "PublicLedger",
    "Transaction",
    "TransactionRejected",
    "TreeHead",
    "VerifyLimits",
    "VerifyReport",
    "canonical_json",
    "verify_ledger_file",
    "verify_path",
    "verify_signature",
]
