"""Typed, validated configuration of channels, private data collections and chaincode definitions.

Each config round-trips through `to_dict`/`from_dict` (canonical JSON) because it lives on the
ledger: the channel config in block 0, chaincode definitions in their own config blocks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from chains.fabric.errors import ConfigError, PolicySyntaxError
from chains.fabric.policy import EndorsementPolicy

__all__ = ["ChaincodeDefinition", "ChannelConfig", "CollectionConfig", "check_policy"]

_CHANNEL_NAME = re.compile(r"[a-z][a-z0-9.\-]{0,248}\Z")  # Fabric's channel name rule
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}\Z")


def check_policy(where: str, text: object, members: frozenset[str] | None = None
                 ) -> EndorsementPolicy:
    """Parse `text` as the policy at `where`; every MSP ID in it must be in `members`."""
    if not isinstance(text, str):
        raise ConfigError(f"{where} must be a policy string, got {type(text).__name__}")
    try:
        policy = EndorsementPolicy(text)
    except PolicySyntaxError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    if members is not None:
        unknown = sorted(policy.msp_ids() - members)
        if unknown:
            raise ConfigError(f"{where} names organizations that are not channel members: "
                              f"{unknown} (members: {sorted(members)})")
    return policy


def _check_name(where: str, value: object, pattern: re.Pattern[str] = _NAME) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise ConfigError(f"{where} must match {pattern.pattern!r}, got {value!r}")
    return value


@dataclass(frozen=True)
class CollectionConfig:
    """A private data collection: which organizations hold its values and for how long.

    name: collection name, unique in the channel.
    member_policy: who is a member, a policy like "OR('Org1.member', 'Org2.member')"; it must be
        a principal or an OR of principals. Member organizations' peers store the values.
    block_to_live: values written in block b are purged from every side store when block
        b + block_to_live + 1 commits (0 = kept until purged explicitly), as in Fabric.
    member_only_read / member_only_write: only clients that satisfy member_policy may read / write
        (Fabric's memberOnlyRead / memberOnlyWrite; Fabric defaults them to false, we to true).
    endorsement_policy: if set, transactions writing this collection must also satisfy it.
    """

    name: str
    member_policy: str
    block_to_live: int = 0
    member_only_read: bool = True
    member_only_write: bool = True
    endorsement_policy: str | None = None

    def validate(self, members: frozenset[str]) -> None:
        where = f"collection {self.name!r}"
        _check_name("collection name", self.name)
        policy = check_policy(f"{where} member_policy", self.member_policy, members)
        if not policy.is_single_signer():
            raise ConfigError(f"{where} member_policy must be a principal or an OR of principals "
                              f"(membership is per identity), got {self.member_policy!r}")
        if isinstance(self.block_to_live, bool) or not isinstance(self.block_to_live, int) \
                or self.block_to_live < 0:
            raise ConfigError(f"{where} block_to_live must be an int >= 0, "
                              f"got {self.block_to_live!r}")
        for flag in ("member_only_read", "member_only_write"):
            if not isinstance(getattr(self, flag), bool):
                raise ConfigError(f"{where} {flag} must be a bool, got {getattr(self, flag)!r}")
        if self.endorsement_policy is not None:
            check_policy(f"{where} endorsement_policy", self.endorsement_policy, members)

    def member_orgs(self) -> frozenset[str]:
        return EndorsementPolicy(self.member_policy).msp_ids()

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "member_policy": self.member_policy,
                "block_to_live": self.block_to_live, "member_only_read": self.member_only_read,
                "member_only_write": self.member_only_write,
                "endorsement_policy": self.endorsement_policy}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CollectionConfig:
        return cls(**data)


@dataclass(frozen=True)
class ChannelConfig:
    """What block 0 of a channel records.

    members: MSP IDs of the member organizations (their peers join; their identities transact).
    endorsement_policy: default policy of chaincodes installed without their own.
    collections: private data collections.
    batch_size: the orderer cuts a block when this many transactions are pending.
    msp: the MSP config (`MSP.to_dict()`) of members and the orderer organization.
    orderer_msp_id: the organization whose 'orderer' identity signs blocks.
    key_salts: per collection, the hex salt of on-ledger private key hashes.
    """

    name: str
    members: tuple[str, ...]
    endorsement_policy: str
    collections: tuple[CollectionConfig, ...] = ()
    batch_size: int = 100
    msp: dict[str, Any] = field(default_factory=dict, compare=True)
    orderer_msp_id: str = "OrdererOrg"
    key_salts: dict[str, str] = field(default_factory=dict)

    def validate(self) -> None:
        _check_name("channel name", self.name, _CHANNEL_NAME)
        if not isinstance(self.members, tuple) or not self.members:
            raise ConfigError(f"channel {self.name!r} members must be a non-empty tuple of MSP IDs")
        if len(set(self.members)) != len(self.members):
            raise ConfigError(f"channel {self.name!r} members has duplicates: {self.members}")
        known = set(self.msp.get("orgs") or {})
        for member in self.members:
            if member not in known:
                raise ConfigError(f"channel {self.name!r} member {member!r} is not an "
                                  f"organization of the network (known: {sorted(known)})")
        members = frozenset(self.members)
        check_policy(f"channel {self.name!r} endorsement_policy", self.endorsement_policy,
                     members)
        names = [c.name for c in self.collections]
        if len(set(names)) != len(names):
            raise ConfigError(f"channel {self.name!r} has duplicate collection names: {names}")
        for collection in self.collections:
            if not isinstance(collection, CollectionConfig):
                raise ConfigError(f"channel {self.name!r} collections must be CollectionConfig, "
                                  f"got {type(collection).__name__}")
            collection.validate(members)
            if len(self.key_salts.get(collection.name, "")) != 32:
                raise ConfigError(f"collection {collection.name!r} needs a 16-byte key salt")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) \
                or self.batch_size < 1:
            raise ConfigError(f"channel {self.name!r} batch_size must be an int >= 1, "
                              f"got {self.batch_size!r}")

    def collection(self, name: str) -> CollectionConfig | None:
        for collection in self.collections:
            if collection.name == name:
                return collection
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "members": list(self.members),
                "endorsement_policy": self.endorsement_policy,
                "collections": [c.to_dict() for c in self.collections],
                "batch_size": self.batch_size, "msp": self.msp,
                "orderer_msp_id": self.orderer_msp_id, "key_salts": dict(self.key_salts)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChannelConfig:
        return cls(name=data["name"], members=tuple(data["members"]),
                   endorsement_policy=data["endorsement_policy"],
                   collections=tuple(CollectionConfig.from_dict(c) for c in data["collections"]),
                   batch_size=data["batch_size"], msp=data["msp"],
                   orderer_msp_id=data["orderer_msp_id"], key_salts=dict(data["key_salts"]))


@dataclass(frozen=True)
class ChaincodeDefinition:
    """A chaincode as the channel agreed on it (Fabric's lifecycle definition).

    sequence grows by one with each new definition of the same name; transactions endorsed under
    an older sequence are invalid (INVALID_CHAINCODE). functions lists the callable names.
    """

    name: str
    version: str
    sequence: int
    endorsement_policy: str
    functions: tuple[str, ...]

    def validate(self, members: frozenset[str]) -> None:
        _check_name("chaincode name", self.name)
        if not isinstance(self.version, str) or not self.version:
            raise ConfigError(f"chaincode {self.name!r} version must be a non-empty str")
        if isinstance(self.sequence, bool) or not isinstance(self.sequence, int) \
                or self.sequence < 1:
            raise ConfigError(f"chaincode {self.name!r} sequence must be an int >= 1")
        check_policy(f"chaincode {self.name!r} endorsement_policy", self.endorsement_policy,
                     members)
        for fn in self.functions:
            if not isinstance(fn, str) or not fn.isidentifier():
                raise ConfigError(f"chaincode {self.name!r} function names must be identifiers, "
                                  f"got {fn!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "sequence": self.sequence,
                "endorsement_policy": self.endorsement_policy,
                "functions": list(self.functions)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChaincodeDefinition:
        return cls(name=data["name"], version=data["version"], sequence=data["sequence"],
                   endorsement_policy=data["endorsement_policy"],
                   functions=tuple(data["functions"]))
