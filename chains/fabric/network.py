"""A Fabric-style network in one process: organizations with CAs and peers, an ordering
organization, and channels with their own ledgers.

    net = Network.create(["Org1", "Org2", "Org3"], seed=7, path="runs/x/fabric")
    ch = net.create_channel("consortium", ["Org1", "Org2", "Org3"],
                            "OutOf(2, 'Org1.peer', 'Org2.peer', 'Org3.peer')",
                            collections=[CollectionConfig("org1-updates", "OR('Org1.member')")])
    ch.install_chaincode("scores", {"record": record, "get": get})
    result = ch.gateway(net.client("Org1")).submit("scores", "record", "r1", "0.7")

Everything derives from `seed`: CA keys, identities, collection key salts, nonces; timestamps come
from `clock` (default: a logical counter). Same seed and calls => same block hashes. With `path`,
each peer keeps one SQLite file per channel (`<path>/<channel>/<peer>.db`); calling the same
`create`/`create_channel` again on that folder reopens the ledgers (and checks the config).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from chains.fabric.channel import Channel
from chains.fabric.codec import ZERO_HASH, framed_hash
from chains.fabric.config import ChannelConfig, CollectionConfig
from chains.fabric.errors import ConfigError, LedgerStateError
from chains.fabric.peer import Peer
from chains.fabric.store import LedgerStore
from chains.fabric.transaction import CONFIG, Envelope, make_header
from chains.identity import MSP, Identity, OrgCA

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["ORDERER_ORG", "Network", "logical_clock"]

ORDERER_ORG = "OrdererOrg"
_MSP_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-]*")


def logical_clock(start: int = 0) -> Callable[[], int]:
    """A deterministic clock: start, start + 1, ... on successive calls."""
    counter = itertools.count(start)
    return lambda: next(counter)


def _seed_bytes(seed: int | bytes) -> bytes:
    if isinstance(seed, bool) or not isinstance(seed, (int, bytes)):
        raise ConfigError(f"seed must be an int or bytes, got {type(seed).__name__}")
    return seed if isinstance(seed, bytes) else f"int:{seed}".encode()


class Network:
    """Organizations, their identities and peers, and the channels among them."""

    def __init__(self, orgs: tuple[str, ...], *, seed: bytes, path: Path | None,
                 peers_per_org: int, clock: Callable[[], int]) -> None:
        self.orgs = orgs
        self.seed = seed
        self.path = path
        self.peers_per_org = peers_per_org
        self.clock = clock
        self._cas = {org: OrgCA.create(org, seed=framed_hash(b"fedenv/fabric/ca", seed,
                                                              org.encode()))
                     for org in (*orgs, ORDERER_ORG)}
        self._identities: dict[tuple[str, str, str], Identity] = {}
        self._channels: dict[str, Channel] = {}

    @classmethod
    def create(cls, orgs: Sequence[str], *, seed: int | bytes, path: str | Path | None = None,
               peers_per_org: int = 1, clock: Callable[[], int] | None = None) -> Network:
        """A network of `orgs` (MSP IDs); `path=None` keeps every ledger in memory."""
        orgs = tuple(orgs)
        if not orgs:
            raise ConfigError("orgs must name at least one organization")
        for org in orgs:
            if not isinstance(org, str) or not _MSP_ID.fullmatch(org):
                raise ConfigError(f"org names must be MSP IDs of ASCII letters, digits, '.' and "
                                  f"'-' (as Fabric policies require), got {org!r}")
        if len(set(orgs)) != len(orgs) or ORDERER_ORG in orgs:
            raise ConfigError(f"orgs must be distinct and not {ORDERER_ORG!r}: {orgs}")
        if isinstance(peers_per_org, bool) or not isinstance(peers_per_org, int) \
                or peers_per_org < 1:
            raise ConfigError(f"peers_per_org must be an int >= 1, got {peers_per_org!r}")
        return cls(orgs, seed=_seed_bytes(seed), path=None if path is None else Path(path),
                   peers_per_org=peers_per_org, clock=clock or logical_clock())

    # --- identities --------------------------------------------------------------------------
    def ca(self, org: str) -> OrgCA:
        if org not in self._cas:
            raise ConfigError(f"unknown organization {org!r} (known: {list(self.orgs)})")
        return self._cas[org]

    def identity(self, org: str, name: str, role: str) -> Identity:
        """The identity `name` of `org` with `role` (issued once, deterministic)."""
        key = (org, name, role)
        if key not in self._identities:
            self._identities[key] = self.ca(org).issue(name, role)
        return self._identities[key]

    def client(self, org: str, index: int = 1) -> Identity:
        return self.identity(org, f"User{index}@{org}", "client")

    def admin(self, org: str) -> Identity:
        return self.identity(org, f"Admin@{org}", "admin")

    def peer_identities(self, org: str) -> tuple[Identity, ...]:
        return tuple(self.identity(org, f"peer{i}.{org}", "peer")
                     for i in range(self.peers_per_org))

    @property
    def orderer(self) -> Identity:
        return self.identity(ORDERER_ORG, f"orderer.{ORDERER_ORG}", "orderer")

    def msp(self, orgs: Sequence[str]) -> MSP:
        msp = MSP()
        for org in (*orgs, ORDERER_ORG):
            msp.add_org(org, self.ca(org).cert_pem)
        return msp

    # --- channels ----------------------------------------------------------------------------
    def create_channel(self, name: str, members: Sequence[str], endorsement_policy: str,
                       collections: Sequence[CollectionConfig] = (), *, batch_size: int = 100
                       ) -> Channel:
        """Create channel `name` (genesis block), or reopen it from its ledger files."""
        if name in self._channels:
            raise ConfigError(f"channel {name!r} is already open in this network")
        members = tuple(members)
        unknown = [m for m in members if m not in self.orgs]
        if unknown:
            raise ConfigError(f"channel {name!r} members {unknown} are not organizations of the "
                              f"network {list(self.orgs)}")
        salts = {c.name: framed_hash(b"fedenv/fabric/key-salt", self.seed, name.encode(),
                                     c.name.encode())[:16].hex()
                 for c in collections if isinstance(c, CollectionConfig)}
        config = ChannelConfig(name=name, members=members, endorsement_policy=endorsement_policy,
                               collections=tuple(collections), batch_size=batch_size,
                               msp=self.msp(members).to_dict(), orderer_msp_id=ORDERER_ORG,
                               key_salts=salts)
        config.validate()
        peers = []
        for org in members:
            for identity in self.peer_identities(org):
                file = None if self.path is None else self.path / name / f"{identity.name}.db"
                store = LedgerStore(file, channel=name, peer=identity.name)
                self._check_genesis(store, config)
                peers.append(Peer(identity, config, store))
        channel = Channel(config, peers, orderer=self.orderer,
                          admins={m: self.admin(m) for m in members}, clock=self.clock,
                          seed=self.seed)
        if channel.height == 0:
            header = make_header(CONFIG, name, self.orderer, channel.next_nonce(self.orderer),
                                 self.clock())
            channel.orderer.order_config(Envelope.create(self.orderer, header,
                                                         {"config": config.to_dict()}))
        self._channels[name] = channel
        return channel

    @staticmethod
    def _check_genesis(store: LedgerStore, config: ChannelConfig) -> None:
        genesis = store.block(0)
        if genesis is None:
            if store.height() != 0:
                raise LedgerStateError(f"{store.path}: blocks exist but block 0 is missing")
            return
        env = genesis.transactions[0] if genesis.transactions else None
        if genesis.previous_hash != ZERO_HASH or not isinstance(env, Envelope) \
                or env.type != CONFIG:
            raise LedgerStateError(f"{store.path}: block 0 is not a channel config block")
        stored = env.body.get("config", {})
        if stored != config.to_dict():
            diff = sorted(k for k in set(stored) | set(config.to_dict())
                          if stored.get(k) != config.to_dict().get(k))
            raise ConfigError(f"channel {config.name!r} exists at {store.path} with a different "
                              f"config (fields {diff} differ); use the same arguments or a new "
                              f"path")

    def channel(self, name: str) -> Channel:
        if name not in self._channels:
            raise ConfigError(f"no open channel {name!r} (open: {sorted(self._channels)})")
        return self._channels[name]

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(self._channels)

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
