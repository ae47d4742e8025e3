"""Typed, validated configuration of channels, private data collections and chaincode definitions.

Each config round-trips through `to_dict`/`from_dict` (canonical JSON) because it lives on the
ledger: the channel config in block 0, chaincode definitions in their own config blocks.
`from_dict` reads untrusted data: exactly the known fields, each of its type, else ConfigError.
A channel's `chain_id` is the SHA-256 of its canonical config, which holds a nonce, so two
channels never share one even with the same name, members and seed; every header on the
channel carries it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from chains.canonical import canonical_json
from chains.errors import MalformedError
from chains.fabric.codec import sha256_hex
from chains.fabric.errors import ConfigError, PolicySyntaxError
from chains.fabric.policy import EndorsementPolicy

__all__ = ["ChaincodeDefinition", "ChannelConfig", "CollectionConfig", "check_policy"]

_CHANNEL_NAME = re.compile(r"[a-z][a-z0-9.\-]{0,248}\Z")  # Fabric's channel name rule
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}\Z")
_NONCE = re.compile(r"(?:[0-9a-f]{2}){8,64}\Z")


def _fields(where: str, data: object, keys: tuple[str, ...]) -> dict[str, Any]:
    """`data` as a dict with exactly `keys`, else ConfigError naming what differs."""
    if not isinstance(data, dict) or set(data) != set(keys):
        found = sorted(map(str, data))[:20] if isinstance(data, dict) else type(data).__name__
        raise ConfigError(f"{where} must have exactly the fields {sorted(keys)}, got {found}")
    return data


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

    _KEYS = ("name", "member_policy", "block_to_live", "member_only_read", "member_only_write",
             "endorsement_policy")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "member_policy": self.member_policy,
                "block_to_live": self.block_to_live, "member_only_read": self.member_only_read,
                "member_only_write": self.member_only_write,
                "endorsement_policy": self.endorsement_policy}

    @classmethod
    def from_dict(cls, data: object) -> CollectionConfig:
        return cls(**_fields("collection config", data, cls._KEYS))


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
    nonce: hex, 8 to 64 bytes, random or derived from a seed: makes `chain_id` unique.
    """

    name: str
    members: tuple[str, ...]
    endorsement_policy: str
    collections: tuple[CollectionConfig, ...] = ()
    batch_size: int = 100
    msp: dict[str, Any] = field(default_factory=dict, compare=True)
    orderer_msp_id: str = "OrdererOrg"
    key_salts: dict[str, str] = field(default_factory=dict)
    nonce: str = ""

    @cached_property
    def chain_id(self) -> str:
        """SHA-256 (hex) of the canonical config: the id every header on the channel names."""
        return sha256_hex(canonical_json(self.to_dict()))

    def validate(self) -> None:
        _check_name("channel name", self.name, _CHANNEL_NAME)
        if not isinstance(self.nonce, str) or not _NONCE.match(self.nonce):
            raise ConfigError(f"channel {self.name!r} nonce must be 8 to 64 bytes of lowercase "
                              "hex")
        if not isinstance(self.msp, dict) or not isinstance(self.msp.get("orgs"), dict):
            raise ConfigError(f"channel {self.name!r} msp must be an MSP config mapping")
        if not isinstance(self.key_salts, dict):
            raise ConfigError(f"channel {self.name!r} key_salts must be a mapping")
        if not isinstance(self.collections, tuple):
            raise ConfigError(f"channel {self.name!r} collections must be a tuple")
        if not isinstance(self.members, tuple) or not self.members \
                or not all(isinstance(m, str) for m in self.members):
            raise ConfigError(f"channel {self.name!r} members must be a non-empty tuple of MSP IDs")
        if len(set(self.members)) != len(self.members):
            raise ConfigError(f"channel {self.name!r} members has duplicates: {self.members}")
        known = set(self.msp["orgs"])
        if self.orderer_msp_id not in known:
            raise ConfigError(f"channel {self.name!r} orderer organization "
                              f"{self.orderer_msp_id!r} is not in its MSP")
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
            salt = self.key_salts.get(collection.name)
            if not isinstance(salt, str) or not re.fullmatch(r"[0-9a-f]{32}", salt):
                raise ConfigError(f"collection {collection.name!r} needs a 16-byte key salt")
        if set(self.key_salts) != set(names):
            raise ConfigError(f"channel {self.name!r} key_salts must name its collections")
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
                "orderer_msp_id": self.orderer_msp_id, "key_salts": dict(self.key_salts),
                "nonce": self.nonce}

    _KEYS = ("name", "members", "endorsement_policy", "collections", "batch_size", "msp",
             "orderer_msp_id", "key_salts", "nonce")

    @classmethod
    def from_dict(cls, data: object) -> ChannelConfig:
        """The validated config of `to_dict` output (e.g. read from a genesis block)."""
        data = _fields("channel config", data, cls._KEYS)
        if not isinstance(data["members"], list) or not isinstance(data["collections"], list) \
                or not isinstance(data["key_salts"], dict):
            raise ConfigError("channel config members and collections must be lists, key_salts "
                              "a mapping")
        config = cls(name=data["name"], members=tuple(data["members"]),
                     endorsement_policy=data["endorsement_policy"],
                     collections=tuple(CollectionConfig.from_dict(c)
                                       for c in data["collections"]),
                     batch_size=data["batch_size"], msp=data["msp"],
                     orderer_msp_id=data["orderer_msp_id"], key_salts=dict(data["key_salts"]),
                     nonce=data["nonce"])
        config.validate()
        try:
            config.chain_id  # noqa: B018 (the config must encode canonically)
        except MalformedError as exc:
            raise ConfigError(f"channel config cannot be encoded: {exc}") from None
        return config


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
        if not isinstance(self.version, str) or not self.version or len(self.version) > 128:
            raise ConfigError(f"chaincode {self.name!r} version must be a non-empty str of at "
                              "most 128 characters")
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
    def from_dict(cls, data: object) -> ChaincodeDefinition:
        data = _fields("chaincode definition", data, ("name", "version", "sequence",
                                                      "endorsement_policy", "functions"))
        if not isinstance(data["functions"], list) or len(data["functions"]) > 1024:
            raise ConfigError("chaincode definition functions must be a list of names")
        return cls(name=data["name"], version=data["version"], sequence=data["sequence"],
                   endorsement_policy=data["endorsement_policy"],
                   functions=tuple(data["functions"]))
