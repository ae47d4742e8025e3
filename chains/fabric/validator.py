"""Block validation as every committing peer runs it (and as the offline verifier replays it).

For each transaction, in block order, the first failing check gives its code:
BAD_PAYLOAD (malformed, wrong channel or chain id, response not for this header), BAD_SIGNATURE
(creator certificate or signature; certificates are judged at the block's time),
BAD_PROPOSAL_TXID (tx_id != SHA-256(nonce || creator)),
DUPLICATE_TXID (seen on the ledger or earlier in the block; compared by the first 16 bytes a peer
keeps: `transaction.used_id`), INVALID_CHAINCODE (no such
definition, or endorsed under an older sequence), INVALID_WRITESET (unknown collection),
ENDORSEMENT_POLICY_FAILURE (the valid, distinct endorsers do not satisfy the policies that
govern the written keys, see `policies_for`; bad signatures count as absent), MVCC_READ_CONFLICT (a
version read is no longer current, counting earlier valid transactions of the block),
PHANTOM_READ_CONFLICT (a range query would now return other keys or versions).
Config transactions: the genesis config, and chaincode definitions approved by a majority of
member admins, else INVALID_CONFIG_TRANSACTION. Nothing in a block's bytes can make validation
raise: a transaction whose checks fail on its content gets a code, and the others of its block
are validated as if it were not there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum

from chains.errors import ChainsError, IdentityError
from chains.fabric.block import Block
from chains.fabric.config import ChaincodeDefinition, ChannelConfig
from chains.fabric.errors import ConfigError
from chains.fabric.policy import EndorsementPolicy
from chains.fabric.private_data import PrivateRecord
from chains.fabric.rwset import RWSet, Version
from chains.fabric.state import HashedKey, UpdateBatch, WorldState
from chains.fabric.transaction import (
    CHAINCODE_DEFINITION,
    CONFIG,
    ENDORSER_TX,
    Endorsement,
    Envelope,
    tx_id_of,
    used_id,
)
from chains.msp import MSP

__all__ = ["BlockResult", "ChannelValidator", "TxCheck", "ValidationCode"]


class ValidationCode(str, Enum):
    """Per-transaction validation result, named as in Fabric's TxValidationCode."""

    VALID = "VALID"
    BAD_PAYLOAD = "BAD_PAYLOAD"
    BAD_SIGNATURE = "BAD_SIGNATURE"
    BAD_PROPOSAL_TXID = "BAD_PROPOSAL_TXID"
    DUPLICATE_TXID = "DUPLICATE_TXID"
    INVALID_CHAINCODE = "INVALID_CHAINCODE"
    INVALID_WRITESET = "INVALID_WRITESET"
    ENDORSEMENT_POLICY_FAILURE = "ENDORSEMENT_POLICY_FAILURE"
    MVCC_READ_CONFLICT = "MVCC_READ_CONFLICT"
    PHANTOM_READ_CONFLICT = "PHANTOM_READ_CONFLICT"
    INVALID_CONFIG_TRANSACTION = "INVALID_CONFIG_TRANSACTION"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class TxCheck:
    """The code of one transaction, why, and how many endorsement signatures failed."""

    code: ValidationCode
    detail: str = ""
    bad_endorsements: int = 0


@dataclass
class BlockResult:
    checks: list[TxCheck]
    batch: UpdateBatch
    claimed: set[int] = field(default_factory=set)  # indices whose tx_id is now used
    definitions: list[ChaincodeDefinition] = field(default_factory=list)


PrivateLookup = Callable[[Envelope, Version], Mapping[HashedKey, PrivateRecord | None]]
OwnSignature = Callable[[Endorsement, bytes], bool]
V = ValidationCode


def admins_majority(members: tuple[str, ...]) -> EndorsementPolicy:
    """Fabric's default lifecycle policy: a majority of member organizations' admins."""
    principals = ", ".join(f"'{m}.admin'" for m in members)
    return EndorsementPolicy(f"OutOf({len(members) // 2 + 1}, {principals})")


class ChannelValidator:
    """Validates blocks of one channel against a peer's MSP copy and chaincode definitions."""

    def __init__(self, config: ChannelConfig, msp: MSP,
                 definitions: Mapping[str, ChaincodeDefinition] | None = None,
                 own_signature: OwnSignature | None = None) -> None:
        """`own_signature(endorsement, signed_bytes)` may vouch for a signature this very peer
        made over exactly these bytes, which needs no verification."""
        self.config = config
        self.own_signature = own_signature
        self.msp = msp
        self.members = frozenset(config.members)
        self.definitions: dict[str, ChaincodeDefinition] = dict(definitions or {})
        self.collections = {c.name: c for c in config.collections}
        self.lifecycle_policy = admins_majority(config.members)
        self._policies: dict[str, EndorsementPolicy] = {}

    def policy(self, text: str) -> EndorsementPolicy:
        policy = self._policies.get(text)
        if policy is None:
            policy = self._policies[text] = EndorsementPolicy(text)
        return policy

    def policies_for(self, rw: RWSet, definition: ChaincodeDefinition
                     ) -> list[EndorsementPolicy]:
        """The policies a transaction must satisfy, as Fabric decides them per written key:
        a private write follows its collection's endorsement policy when the collection has
        one, every other write (and a transaction without writes) the chaincode's policy."""
        texts = []
        if rw.writes or not any(rw.hashed_writes.values()):
            texts.append(definition.endorsement_policy)
        for name in rw.collections_written():
            config = self.collections.get(name)
            texts.append(config.endorsement_policy if config is not None
                         and config.endorsement_policy else definition.endorsement_policy)
        return [self.policy(t) for t in dict.fromkeys(texts)]

    def apply(self, result: BlockResult) -> None:
        """Adopt the chaincode definitions of a committed block."""
        for definition in result.definitions:
            self.definitions[definition.name] = definition

    def validate_block(self, block: Block, state: WorldState, seen: set[str] | frozenset[str],
                       private: PrivateLookup | None = None) -> BlockResult:
        """Codes for every transaction of `block` and the writes of the valid ones."""
        result = BlockResult([], UpdateBatch(state, block.number))
        in_block: set[str] = set()
        definitions = dict(self.definitions)
        for index, env in enumerate(block.transactions):
            if not isinstance(env, Envelope):
                result.checks.append(TxCheck(V.BAD_PAYLOAD, str(env)))
                continue
            try:
                check = self._check_common(env, block, seen, in_block)
                if check is None:
                    in_block.add(used_id(env.tx_id))
                    result.claimed.add(index)
                    if env.type == CONFIG or env.type == CHAINCODE_DEFINITION:
                        check = self._check_config(env, block, definitions, result)
                    else:
                        check = self._check_endorser(env, block, result.batch,
                                                     (block.number, index), private)
            except ChainsError as exc:  # content no check foresaw: this transaction only
                check = TxCheck(V.BAD_PAYLOAD, f"{type(exc).__name__}: {exc}")
            result.checks.append(check)
        result.batch.close()
        return result

    # --- checks ----------------------------------------------------------------------------
    def _check_common(self, env: Envelope, block: Block, seen: set[str] | frozenset[str],
                      in_block: set[str]) -> TxCheck | None:
        header = env.header
        if header["channel"] != self.config.name:
            return TxCheck(V.BAD_PAYLOAD, f"transaction for channel {header['channel']!r}")
        if header["chain"] != self.config.chain_id:
            return TxCheck(V.BAD_PAYLOAD, "transaction for another chain (another channel of "
                                          "that name)")
        try:
            msp_id, role = self.msp.verify(env.creator, env.payload_bytes, env.signature,
                                           at=block.timestamp)
            if env.type == CONFIG or env.type == CHAINCODE_DEFINITION:
                if (msp_id, role) != (self.config.orderer_msp_id, "orderer"):
                    raise IdentityError("role mismatch",
                                        "config transactions come from the orderer")
            elif msp_id not in self.members:
                raise IdentityError("unknown organization", f"{msp_id!r} is not a channel member")
        except IdentityError as exc:
            return TxCheck(V.BAD_SIGNATURE, f"creator: {exc}")
        if tx_id_of(bytes.fromhex(header["nonce"]), env.creator) != env.tx_id:
            return TxCheck(V.BAD_PROPOSAL_TXID, "tx_id is not SHA-256(nonce || creator)")
        if used_id(env.tx_id) in seen or used_id(env.tx_id) in in_block:
            return TxCheck(V.DUPLICATE_TXID, f"tx_id {env.tx_id} already used")
        if env.type == ENDORSER_TX:
            if env.rwset.ns != header["chaincode"]:
                return TxCheck(V.BAD_PAYLOAD, f"read-write set of {env.rwset.ns!r}, header says "
                                              f"{header['chaincode']!r}")
            if env.body["proposal_hash"] != env.proposal_hash:
                return TxCheck(V.BAD_PAYLOAD, "response is not for this proposal header")
        return None

    def _check_config(self, env: Envelope, block: Block,
                      definitions: dict[str, ChaincodeDefinition], result: BlockResult) -> TxCheck:
        if env.type == CONFIG:
            if block.number != 0 or env.body.get("config") != self.config.to_dict():
                return TxCheck(V.INVALID_CONFIG_TRANSACTION,
                               "a channel config is valid only as the genesis block's")
            return TxCheck(V.VALID)
        try:
            definition = ChaincodeDefinition.from_dict(env.body["definition"])
            definition.validate(self.members)
        except (ConfigError, KeyError, TypeError) as exc:
            return TxCheck(V.INVALID_CONFIG_TRANSACTION, f"bad chaincode definition: {exc}")
        current = definitions.get(definition.name)
        expected = 1 if current is None else current.sequence + 1
        if definition.sequence != expected:
            return TxCheck(V.INVALID_CONFIG_TRANSACTION,
                           f"definition sequence {definition.sequence}, expected {expected}")
        approvers, bad = self._signers(env, block.timestamp)
        if not self.lifecycle_policy.satisfied_by(approvers):
            return TxCheck(V.INVALID_CONFIG_TRANSACTION,
                           f"approvals do not satisfy {self.lifecycle_policy}", bad)
        definitions[definition.name] = definition
        result.definitions.append(definition)
        return TxCheck(V.VALID)

    def _signers(self, env: Envelope, at: int) -> tuple[list[tuple[str, str]], int]:
        """(msp_id, role) of each distinct endorser whose certificate (at time `at`) and
        signature verify."""
        signers: dict[bytes, tuple[str, str]] = {}
        bad = 0
        for endorsement in env.endorsements:
            try:
                signed = Endorsement.signed_bytes(env.body_bytes, endorsement.endorser)
                if self.own_signature is not None and self.own_signature(endorsement, signed):
                    msp_id, role = self.msp.validate(endorsement.endorser, at=at)
                else:
                    msp_id, role = self.msp.verify(endorsement.endorser, signed,
                                                   endorsement.signature, at=at)
                if msp_id not in self.members:
                    raise IdentityError("unknown organization", f"{msp_id!r} not a member")
            except IdentityError:
                bad += 1
                continue
            signers[endorsement.endorser] = (msp_id, role)
        return list(signers.values()), bad

    def _check_endorser(self, env: Envelope, block: Block, batch: UpdateBatch, version: Version,
                        private: PrivateLookup | None) -> TxCheck:
        body, rw, chaincode = env.body, env.rwset, env.header["chaincode"]
        definition = self.definitions.get(chaincode)
        if definition is None:
            return TxCheck(V.INVALID_CHAINCODE, f"no chaincode {chaincode!r} is defined")
        if body.get("sequence") != definition.sequence:
            return TxCheck(V.INVALID_CHAINCODE, f"endorsed under sequence {body.get('sequence')}"
                                                f", current is {definition.sequence}")
        touched = set(rw.hashed_reads) | set(rw.hashed_writes)
        unknown = sorted(touched - set(self.collections))
        if unknown:
            return TxCheck(V.INVALID_WRITESET, f"unknown collections {unknown}")
        signers, bad = self._signers(env, block.timestamp)
        for policy in self.policies_for(rw, definition):
            if not policy.satisfied_by(signers):
                found = sorted(f"{m}.{r}" for m, r in signers)
                return TxCheck(V.ENDORSEMENT_POLICY_FAILURE,
                               f"{policy} not satisfied by valid endorsers {found}"
                               + (f" ({bad} endorsement signature(s) invalid)" if bad else ""),
                               bad)
        if not batch.reads_current(rw):
            return TxCheck(V.MVCC_READ_CONFLICT, "a key read has changed since simulation", bad)
        if not batch.ranges_unchanged(rw):
            return TxCheck(V.PHANTOM_READ_CONFLICT, "a range query result has changed", bad)
        batch.add(rw, version, None if private is None else private(env, version))
        return TxCheck(V.VALID, "", bad)
