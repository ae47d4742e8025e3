"""Which computation goes to which channel: the scenario's channels as Fabric configurations,
and the routing of a round.

| computation | channel | collection (who holds the values) |
| --- | --- | --- |
| an organization's raw update | its *updates channel*: the one channel carrying ``updates`` it is a member of | ``<org>-updates`` (the owner, or the members its ``[[channels.collections]]`` table names) |
| the round's scoring and payouts | the *scoring channel* of the round: the smallest channel carrying ``scoring`` that holds every participant (ties: the first declared) | ``scores`` (the channel's members) |
| a participant's update digest, when its updates live on another channel | the scoring channel (``attest``) | none: world state |
| the global model's scores on a sub-consortium's own domains (its private benchmark) | every channel carrying ``benchmark`` | ``benchmark`` (the channel's members) |

So a round that only the members of a sub-consortium take part in is scored on their own
channel, out of the other organizations' sight; a round across sub-consortia goes to a channel
that holds them all.  An organization outside a channel holds none of its data: it has no peer
on it, its clients cannot propose there, and a collection's values stay on its member peers.

Fees (:meth:`ChannelPlan.fee`): a transaction on a channel costs ``fee_per_tx`` plus
``endorsement_fee`` per endorsement it gathers; see :mod:`fedenv.ledgers.run_ledgers` for who
pays which.

Lifetimes: a collection keeps a value ``block_to_live`` of its channel's blocks (Fabric's
blockToLive): the collection's own, else ``[ledger] block_to_live``, else
``BLOCKS_PER_ROUND x max_rounds``, the rest of its episode at least (a round commits at most
:data:`BLOCKS_PER_ROUND` blocks on a channel: the private updates, the scoring, the benchmark),
so raw updates stay while the episode can still need them (unlearning) and leave the files
during a later episode.  0 keeps values until purged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from chains.fabric import CollectionConfig
from fedenv.ledgers.chaincode import BENCHMARK, SCORES, collection_name
from fedenv.scenario.ledger import (
    RULES,
    ChannelSettings,
    CollectionSettings,
    LedgerSettings,
    resolved_channels,
)


def endorsement_policy(orgs: Sequence[str], rule: str) -> str:
    """``majority`` / ``all`` / ``any`` of the organizations' peers, as a Fabric policy."""
    need = {"majority": len(orgs) // 2 + 1, "all": len(orgs), "any": 1}[rule]
    return f"OutOf({need}, {', '.join(repr(f'{o}.peer') for o in orgs)})"


def _policy(text: str, members: Sequence[str]) -> str:
    """A rule or a Fabric policy text as a Fabric policy over ``members``."""
    return endorsement_policy(members, text) if text in RULES else text


def _any_of(orgs: Sequence[str], role: str) -> str:
    return f"OR({', '.join(repr(f'{o}.{role}') for o in orgs)})"

BLOCKS_PER_ROUND = 3
"""The most blocks a round commits on one channel (updates, scoring record, benchmark)."""


@dataclass(frozen=True)
class ChannelPlan:
    """One channel as the ledgers create it, and what the routing sends to it."""

    name: str
    members: tuple[str, ...]
    policy: str  # the endorsement policy of its records (scores, benchmark), Fabric syntax
    carries: frozenset[str]
    collections: tuple[CollectionConfig, ...]
    functions: tuple[str, ...]  # the federation chaincode's functions installed on it
    fee_per_tx: float
    endorsement_fee: float

    def fee(self, endorsements: int) -> float:
        """What one transaction on this channel with ``endorsements`` endorsements costs."""
        return self.fee_per_tx + self.endorsement_fee * endorsements

    def collection(self, name: str) -> CollectionConfig:
        return next(c for c in self.collections if c.name == name)

    def writer(self, collection: str) -> str:
        """The organization whose client submits the consortium's records to ``collection``:
        its first member."""
        return next(m for m in self.members if m in self.collection(collection).member_orgs())


class ChannelLayout:
    """The channels of a scenario (``[[channels]]``, or the one default channel) and the
    routing of a round's computations over them (see the module docstring)."""

    def __init__(
        self,
        orgs: Sequence[str],
        channels: Sequence[ChannelSettings] = (),
        *,
        ledger: LedgerSettings | None = None,
        fee_per_tx: float = 0.0,
        max_rounds: int = 10,
    ) -> None:
        ledger = ledger or LedgerSettings()
        lifetime = BLOCKS_PER_ROUND * max_rounds
        self.orgs = tuple(orgs)
        settings = resolved_channels(channels, self.orgs)
        home = {m: c.name for c in settings if "updates" in c.carries for m in c.members}
        self.plans = tuple(self._plan(c, ledger, fee_per_tx, home, lifetime) for c in settings)
        self._by_name = {p.name: p for p in self.plans}
        self._updates = {org: self._by_name[name] for org, name in home.items()}

    def __getitem__(self, name: str) -> ChannelPlan:
        return self._by_name[name]

    def updates_channel(self, org: str) -> ChannelPlan:
        """The channel that holds ``org``'s raw updates."""
        return self._updates[org]

    def scoring_channel(self, participants: Iterable[str]) -> ChannelPlan:
        """The smallest scoring channel that holds every participant (the first declared among
        equals)."""
        wanted = set(participants)
        holding = [p for p in self.plans if "scoring" in p.carries and wanted <= set(p.members)]
        return min(holding, key=lambda p: len(p.members))  # min keeps the first of equals

    def benchmark_channels(self) -> tuple[ChannelPlan, ...]:
        return tuple(p for p in self.plans if "benchmark" in p.carries)

    def channels_of(self, org: str) -> tuple[ChannelPlan, ...]:
        return tuple(p for p in self.plans if org in p.members)

    @staticmethod
    def _plan(
        channel: ChannelSettings,
        ledger: LedgerSettings,
        fee_per_tx: float,
        home: dict[str, str],
        lifetime: int,
    ) -> ChannelPlan:
        members = channel.members
        policy = _policy(channel.endorsement or ledger.endorsement, members)

        def config(name: str, holders: Sequence[str], endorsement: str) -> CollectionConfig:
            own = channel.collection(name) or CollectionSettings(name=name)
            keep = next(
                (b for b in (own.block_to_live, ledger.block_to_live) if b is not None), lifetime
            )
            return CollectionConfig(
                name,
                _any_of(own.members or holders, "member"),
                block_to_live=keep,
                member_only_read=own.member_only_read,
                endorsement_policy=_policy(own.endorsement, members)
                if own.endorsement
                else endorsement,
            )

        collections = []
        functions = ["forget"]  # world state bounded (fedenv.ledgers.chaincode)
        if "updates" in channel.carries:
            functions.extend(("store", "purge", "certify"))
            collections.extend(config(collection_name(o), (o,), f"OR('{o}.peer')") for o in members)
        if "scoring" in channel.carries:
            functions.append("record")
            if any(home.get(m) != channel.name for m in members):
                functions.append("attest")
            collections.append(config(SCORES, members, policy))
        if "benchmark" in channel.carries:
            functions.append("benchmark")
            collections.append(config(BENCHMARK, members, policy))
        return ChannelPlan(
            name=channel.name,
            members=members,
            policy=policy,
            carries=frozenset(channel.carries),
            collections=tuple(collections),
            functions=tuple(sorted(functions)),
            fee_per_tx=fee_per_tx if channel.fee_per_tx is None else channel.fee_per_tx,
            endorsement_fee=channel.endorsement_fee,
        )
