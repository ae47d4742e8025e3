"""Ledgers and cryptography for fedenv: bytes and digests in, verifiable records out.

- `chains.identity`: Fabric-style MSP identities (Ed25519 X.509 certificates, roles, revocation).
- `chains.merkle`: the RFC 9162 Merkle log, inclusion and consistency proofs.
- `chains.public_ledger`: the SQLite public ledger of signed blocks and signed tree heads.
- `chains.verify` / `python -m chains verify PATH`: offline verification of ledger files.
- `chains.anchor.Anchor`: the interface both the public ledger and `chains.ethereum` satisfy.
- `chains.fabric`: permissioned Fabric-style channels.

No torch and no fedenv import here, ever: `chains` is usable (and auditable) on its own.
"""

from __future__ import annotations

from chains.anchor import Anchor
from chains.blocks import LogicalClock, TreeHead
from chains.errors import (
    ChainsError,
    IdentityError,
    LedgerCorruptError,
    LedgerError,
    TransactionRejected,
)
from chains.identity import MSP, ROLES, Identity, OrgCA, verify_signature
from chains.public_ledger import (
    Block,
    ConsistencyProof,
    InclusionProof,
    LedgerConfig,
    PublicLedger,
)
from chains.transactions import KINDS, Transaction
from chains.verify import Problem, VerifyReport, verify_ledger_file, verify_path

__all__ = [
    "KINDS",
    "MSP",
    "ROLES",
    "Anchor",
    "Block",
    "ChainsError",
    "ConsistencyProof",
    "Identity",
    "IdentityError",
    "InclusionProof",
    "LedgerConfig",
    "LedgerCorruptError",
    "LedgerError",
    "LogicalClock",
    "OrgCA",
    "Problem",
    "PublicLedger",
    "Transaction",
    "TransactionRejected",
    "TreeHead",
    "VerifyReport",
    "verify_ledger_file",
    "verify_path",
    "verify_signature",
]
