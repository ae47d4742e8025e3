"""Chaincode: registered Python functions that read and write world state through a stub.

A chaincode function is `fn(stub, *args)`; args are the proposal's str/bytes arguments and the
return value (bytes, str, None or anything JSON-serializable) becomes the response payload.
Simulation writes nothing: the stub records reads (with versions) and writes into a read-write
set. As in Fabric, reads see the committed state only, not the simulation's own writes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from chains.fabric.codec import sha256_hex, to_bytes
from chains.fabric.config import CollectionConfig
from chains.fabric.errors import ChaincodeError, PrivateDataAccessError
from chains.fabric.policy import EndorsementPolicy
from chains.fabric.private_data import PrivateWrite, key_hash, value_hash, value_salt
from chains.fabric.rwset import RWSet
from chains.fabric.state import WorldState
from chains.fabric.transaction import SignedProposal

__all__ = ["ChaincodeFunction", "ChaincodeStub", "Creator", "PrivateScope"]

ChaincodeFunction = Callable[..., Any]


@dataclass(frozen=True)
class Creator:
    """The identity that signed the proposal, as validated by the endorsing peer's MSP."""

    msp_id: str
    role: str
    cert_pem: bytes

    @cached_property
    def _cert(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    @property
    def name(self) -> str:
        values = self._cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(values[0].value) if values else ""

    @property
    def id(self) -> str:
        """Hex SHA-256 of the certificate DER (equals `Identity.id`)."""
        return sha256_hex(self._cert.public_bytes(serialization.Encoding.DER))


@dataclass(frozen=True)
class PrivateScope:
    """What a peer knows about the channel's collections when it simulates."""

    collections: Mapping[str, CollectionConfig]
    member_policies: Mapping[str, EndorsementPolicy]
    key_salts: Mapping[str, bytes]
    peer_msp_id: str
    peer_name: str


def _check_key(key: object) -> str:
    if not isinstance(key, str) or not key or "\x00" in key:
        raise ChaincodeError(f"state keys must be non-empty str without NUL, got {key!r}")
    return key


@dataclass
class ChaincodeStub:
    """The chaincode's view of one proposal at one peer (Fabric's ChaincodeStubInterface)."""

    proposal: SignedProposal
    creator: Creator
    state: WorldState
    scope: PrivateScope
    rwset: RWSet = field(init=False)
    private_writes: dict[tuple[str, str], PrivateWrite] = field(init=False, default_factory=dict)
    private_reads: set[str] = field(init=False, default_factory=set)  # collections read in clear

    def __post_init__(self) -> None:
        self.rwset = RWSet(ns=self.proposal.header["chaincode"])

    # --- proposal ----------------------------------------------------------------------------
    @property
    def tx_id(self) -> str:
        return self.proposal.tx_id

    @property
    def channel_id(self) -> str:
        return self.proposal.header["channel"]

    @property
    def function(self) -> str:
        return self.proposal.header["fn"]

    @property
    def timestamp(self) -> int:
        """The proposal's timestamp, from the client's injectable clock (not the wall clock)."""
        return self.proposal.header["timestamp"]

    def get_transient(self) -> dict[str, bytes]:
        """Transient data: reaches the endorsers, never the ledger."""
        return dict(self.proposal.transient)

    # --- public state ------------------------------------------------------------------------
    def get_state(self, key: str) -> bytes | None:
        entry = self.state.get(self.rwset.ns, _check_key(key))
        self.rwset.reads.setdefault(key, None if entry is None else entry[1])
        return None if entry is None else entry[0]

    def put_state(self, key: str, value: bytes | str) -> None:
        self.rwset.writes[_check_key(key)] = to_bytes(value, "state value")

    def del_state(self, key: str) -> None:
        self.rwset.writes[_check_key(key)] = None

    def get_state_by_range(self, start: str, end: str) -> list[tuple[str, bytes]]:
        """Keys in [start, end) in order ("" as end: to the last key); checked for phantoms."""
        if not isinstance(start, str) or not isinstance(end, str):
            raise ChaincodeError("range bounds must be str")
        found = list(self.state.range(self.rwset.ns, start, end))
        self.rwset.ranges.append((start, end, [(k, v) for k, _, v in found]))
        return [(k, value) for k, value, _ in found]

    # --- private data ------------------------------------------------------------------------
    def _collection(self, name: str, *, read: bool = False, write: bool = False) -> str:
        config = self.scope.collections.get(name)
        if config is None:
            raise ChaincodeError(f"no private data collection {name!r} on channel "
                                 f"{self.channel_id!r}")
        member = self.scope.member_policies[name].satisfied_by(
            [(self.creator.msp_id, self.creator.role)])
        if read and config.member_only_read and not member:
            raise PrivateDataAccessError(
                f"{self.creator.msp_id}.{self.creator.role} may not read collection {name!r} "
                f"(memberOnlyRead; members: {config.member_policy})")
        if write and config.member_only_write and not member:
            raise PrivateDataAccessError(
                f"{self.creator.msp_id}.{self.creator.role} may not write collection {name!r} "
                f"(memberOnlyWrite; members: {config.member_policy})")
        if read and self.scope.peer_msp_id not in config.member_orgs():
            raise PrivateDataAccessError(
                f"peer {self.scope.peer_name} of {self.scope.peer_msp_id} does not hold "
                f"collection {name!r} (members: {config.member_policy})")
        return name

    def _hashed_key(self, collection: str, key: str) -> str:
        return key_hash(self.scope.key_salts[collection], _check_key(key))

    def get_private_data(self, collection: str, key: str) -> bytes | None:
        self._collection(collection, read=True)
        self.private_reads.add(collection)
        kh = self._hashed_key(collection, key)
        hk = (self.rwset.ns, collection, kh)
        version = self.state.hashed_version(hk)
        self.rwset.hashed_reads.setdefault(collection, {}).setdefault(kh, version)
        if version is None:
            return None
        record = self.state.private.get(hk)
        if record is None or record.version != version:
            raise ChaincodeError(f"private data {collection}/{key} is missing at peer "
                                 f"{self.scope.peer_name}")
        return record.value

    def get_private_data_hash(self, collection: str, key: str) -> bytes | None:
        """The on-ledger value hash; any channel member may read it."""
        self._collection(collection)
        kh = self._hashed_key(collection, key)
        entry = self.state.hashed.get((self.rwset.ns, collection, kh))
        self.rwset.hashed_reads.setdefault(collection, {}).setdefault(
            kh, None if entry is None else entry[1])
        return None if entry is None else bytes.fromhex(entry[0])

    def _write_private(self, collection: str, key: str, op: str, value: bytes | None) -> None:
        self._collection(collection, write=True)
        kh = self._hashed_key(collection, key)
        salt = None
        if op == "put":
            if not self.proposal.salt_seed:
                raise ChaincodeError("private writes need the proposal's salt seed")
            salt = value_salt(self.proposal.salt_seed, self.rwset.ns, collection, key)
        self.rwset.hashed_writes.setdefault(collection, {})[kh] = (
            op, None if value is None else value_hash(salt, value))  # type: ignore[arg-type]
        self.private_writes[(collection, key)] = PrivateWrite(collection, key, op, value, salt)

    def put_private_data(self, collection: str, key: str, value: bytes | str) -> None:
        """Only salted hashes reach the ledger; pass the value in transient data, not args."""
        self._write_private(collection, key, "put", to_bytes(value, "private value"))

    def del_private_data(self, collection: str, key: str) -> None:
        self._write_private(collection, key, "delete", None)

    def purge_private_data(self, collection: str, key: str) -> None:
        """Remove the value from every member's side store for good; its hashes stay on-ledger."""
        self._write_private(collection, key, "purge", None)
