"""A Fabric-style network in one process: organizations with CAs and peers, an ordering
organization, and channels with their own ledgers.

    net = Network.create(["Org1", "Org2", "Org3"], seed=7, path="runs/x/fabric")
    ch = net.create_channel("consortium", ["Org1", "Org2", "Org3"],
                            "OutOf(2, 'Org1.peer', 'Org2.peer', 'Org3.peer')",
                            collections=[CollectionConfig("org1-updates", "OR('Org1.member')")])
    ch.install_chaincode("scores", {"record": record, "get": get})
    result = Gateway(ch, net.client("Org1")).submit("scores", "record", "r1", "0.7")

Everything derives from `seed`: CA keys, identities, collection key salts, nonces; timestamps come
from `clock` (default: a logical counter, which resumes after the latest block of a reopened
channel). A channel's id is unique through its config's nonce:
random unless `create_channel(nonce=...)` gives one, so same seed, nonce and calls => same block
hashes. With `path`, the orderer keeps `<path>/<channel>/orderer.db` and each peer one SQLite file
per channel (`<path>/<channel>/<peer>.db`); calling the same `create`/`create_channel` again on
that folder reopens the ledgers (checking the config, and adopting the stored nonce when none is
given; a peer that took a snapshot starts from it: `chains.fabric.snapshot`).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from chains.clock import LogicalClock
from chains.errors import ChainsError
from chains.fabric.channel import Channel
from chains.fabric.codec import framed_hash
from chains.fabric.config import ChannelConfig, CollectionConfig
from chains.fabric.errors import ConfigError, LedgerStateError
from chains.fabric.orderer import Orderer
from chains.fabric.orderer_store import OrdererStore
from chains.fabric.peer import Peer
from chains.fabric.replay import genesis_config
from chains.fabric.store import LedgerStore
from chains.fabric.transaction import CONFIG, Envelope, make_header
from chains.identity import Identity, OrgCA
from chains.msp import MSP

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["ORDERER_ORG", "Network"]

ORDERER_ORG = "OrdererOrg"
ORDERER_FILE = "orderer.db"
_MSP_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-]*")


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
                   peers_per_org=peers_per_org, clock=clock or LogicalClock())

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
                       collections: Sequence[CollectionConfig] = (), *, batch_size: int = 100,
                       nonce: bytes | None = None) -> Channel:
        """Create channel `name` (genesis block), or reopen it from its ledger files.

        `nonce` (8 to 64 bytes) makes the channel's id unique: random for a new channel unless
        given; a reopened channel keeps its stored nonce (a given one must match it).
        """
        if name in self._channels:
            raise ConfigError(f"channel {name!r} is already open in this network")
        if nonce is not None and (not isinstance(nonce, bytes) or not 8 <= len(nonce) <= 64):
            raise ConfigError("nonce must be 8 to 64 bytes")
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
                               key_salts=salts, nonce=(nonce or os.urandom(16)).hex())
        config.validate()
        folder = None if self.path is None else self.path / name
        orderer_store = OrdererStore(None if folder is None else folder / ORDERER_FILE,
                                     channel=name)
        stores: list[LedgerStore] = []
        if isinstance(self.clock, LogicalClock) and orderer_store.height:
            self.clock.now = max(self.clock.now, orderer_store.last_time + 1)  # resume after it
        try:
            config = self._stored_config(orderer_store, config, nonce is None)
            peers = []
            for org in members:
                for identity in self.peer_identities(org):
                    file = None if folder is None else folder / f"{identity.name}.db"
                    stores.append(LedgerStore(file, channel=name, peer=identity.name))
                    peers.append(Peer(identity, config, stores[-1]))
            channel = Channel(config, peers,
                              Orderer(config, self.orderer, orderer_store, self.clock),
                              admins={m: self.admin(m) for m in members}, clock=self.clock,
                              seed=self.seed)
        except BaseException:
            for store in stores:
                store.close()
            orderer_store.close()
            raise
        if channel.height == 0:
            header = make_header(CONFIG, name, config.chain_id, self.orderer,
                                 channel.next_nonce(self.orderer), self.clock())
            channel.order_config(Envelope.create(self.orderer, header,
                                                 {"config": config.to_dict()}))
        self._channels[name] = channel
        return channel

    @staticmethod
    def _stored_config(store: OrdererStore, config: ChannelConfig, adopt_nonce: bool
                       ) -> ChannelConfig:
        """The config to open the channel with: `config`, or the stored one if the orderer's
        file has a genesis (which must match `config`, but for the nonce when adopting it)."""
        genesis = store.block(0)
        if genesis is None:
            return config
        try:
            stored = genesis_config(genesis)
        except ChainsError as exc:
            raise LedgerStateError(f"{store.path}: block 0 is not a channel config ({exc})") \
                from None
        wanted = dataclasses.replace(config, nonce=stored.nonce) if adopt_nonce else config
        if stored.to_dict() != wanted.to_dict():
            diff = sorted(k for k, v in stored.to_dict().items() if wanted.to_dict()[k] != v)
            raise ConfigError(f"channel {config.name!r} exists at {store.path} with a different "
                              f"config (fields {diff} differ); use the same arguments or a new "
                              f"path")
        return stored

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
