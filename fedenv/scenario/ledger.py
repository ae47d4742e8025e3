"""The scenario's ledgers: the public chain (``[ledger]``) and the permissioned channels
(``[[channels]]``).

A scenario without ``[[channels]]`` has one channel, ``consortium``, of every organization,
carrying their updates and the round's scoring (:func:`resolved_channels`), exactly the layout
fedenv always had.  A scenario with ``[[channels]]`` declares each channel: its members, its
endorsement policy, what it carries and its fees; private data collections follow from what it
carries and can be shaped by ``[[channels.collections]]`` (members, ``member_only_read``,
``block_to_live``, endorsement).  :func:`check_channels` refuses a table that could not route
every round (its errors name the key, e.g. ``channels[1].members[0]: unknown organization
'acme'``); which computation goes to which channel is :mod:`fedenv.ledgers.layout`'s.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Sequence
from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from fedenv.errors import ConfigError
from fedenv.settings import Settings, field_problem, one_of

RULES = ("majority", "all", "any")
"""Implicit endorsement rules: that many of the channel members' peers."""
ENDORSEMENT = RULES  # the name fedenv.scenario exported before policies were accepted too
CARRIES = ("updates", "scoring", "benchmark")
"""What a channel carries (see :mod:`fedenv.ledgers.layout`)."""
PUBLIC_CHAINS = ("sqlite", "ethereum")
DEFAULT_CHANNEL = "consortium"
_CHANNEL_NAME = re.compile(r"[a-z][a-z0-9.-]{0,48}")  # within Fabric's channel-name rule
_COLLECTION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")  # Fabric's collection names
_URL = re.compile(r"(https?|wss?)://\S+")


def _matches(pattern: re.Pattern[str], rule: str):
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ConfigError("", f"must be {rule}, got {value!r}")
        return value

    return check


def eth_extra_missing(modules: Sequence[str] = ("web3", "eth_tester")) -> list[str]:
    """The modules of the optional ``eth`` extra that cannot be imported here."""
    missing = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a module set to None in sys.modules, a broken one
            found = False
        if not found:
            missing.append(name)
    return missing


class LedgerSettings(Settings):
    """The public chain, and the defaults of the permissioned channels."""

    endorsement: str = Field(
        "majority",
        description="scoring endorsement policy of a channel that sets none: majority, all or "
        "any of the members' peers, or a Fabric policy such as \"OutOf(2, 'a.peer', 'b.peer')\"",
    )
    public: Annotated[str, AfterValidator(one_of(PUBLIC_CHAINS))] = Field(
        "sqlite",
        description="public chain of the anchors: sqlite (the RFC 9162 ledger in the run folder) "
        "or ethereum (needs the 'eth' extra)",
    )
    ethereum_url: str = Field(
        "",
        description="public = ethereum: a node's JSON-RPC URL; empty: an in-process eth-tester "
        "chain",
    )
    block_to_live: int | None = Field(
        None,
        ge=0,
        description="blocks a private collection keeps a value (Fabric's blockToLive; "
        "0 = until purged), for collections that set none; default: the rest of its episode "
        "(3 x max_rounds blocks, fedenv.ledgers.layout)",
    )

    peer_snapshots: bool = Field(
        True,
        description="at each episode start, every channel's peers take a ledger snapshot "
        "(Fabric's) and drop their blocks below it, the orderer keeping every block; false: "
        "peers keep every block",
    )

    @model_validator(mode="after")
    def _public_chain(self) -> LedgerSettings:
        if self.public != "ethereum":
            if self.ethereum_url:
                raise field_problem("ethereum_url", "is only used with public = 'ethereum'")
            return self
        if self.ethereum_url and not _URL.fullmatch(self.ethereum_url):
            raise field_problem(
                "ethereum_url",
                f"must be an http(s):// or ws(s):// URL, got {self.ethereum_url!r}",
            )
        missing = eth_extra_missing(("web3",) if self.ethereum_url else ("web3", "eth_tester"))
        if missing:
            raise field_problem(
                "public",
                f"'ethereum' needs the optional 'eth' extra ({', '.join(missing)} not installed): "
                "pip install 'fedenv[eth]'",
            )
        return self


class CollectionSettings(Settings):
    """Settings of one private data collection of a channel (see ``carries``); keys left out
    keep the collection's own defaults."""

    name: Annotated[str, AfterValidator(_matches(_COLLECTION_NAME, "a collection name"))] = Field(
        description="the collection: '<org>-updates', 'scores' or 'benchmark'"
    )
    members: tuple[str, ...] | None = Field(
        None,
        min_length=1,
        strict=False,
        description="organizations whose peers hold its values (default: the owner for "
        "'<org>-updates', every channel member otherwise)",
    )
    member_only_read: bool = Field(
        True, description="only members' clients may read values (Fabric's memberOnlyRead)"
    )
    block_to_live: int | None = Field(
        None, ge=0, description="blocks a value is kept (0 = until purged); default: [ledger]'s"
    )
    endorsement: str = Field(
        "",
        description="endorsement policy of writes to it (rule or Fabric policy); default: the "
        "owner's peer for updates, the channel's policy otherwise",
    )


class ChannelSettings(Settings):
    """One permissioned channel (``[[channels]]``)."""

    name: Annotated[
        str,
        AfterValidator(
            _matches(
                _CHANNEL_NAME,
                "lowercase letters, digits, '.' or '-', starting with a letter (<= 49)",
            )
        ),
    ] = Field(description="channel name")
    members: tuple[str, ...] = Field(
        min_length=1, strict=False, description="member organizations (their peers join it)"
    )
    endorsement: str = Field(
        "",
        description="endorsement policy of its records (scoring, benchmark): majority, all, any "
        "or a Fabric policy; default: [ledger].endorsement",
    )
    carries: tuple[str, ...] = Field(
        ("updates", "scoring"),
        min_length=1,
        strict=False,
        description="what it carries: updates (its members' raw updates), scoring (the "
        "round's scoring and payouts), benchmark (its members' private benchmark scores)",
    )
    fee_per_tx: float | None = Field(
        None,
        ge=0.0,
        description="fee per transaction an organization submits on it; default: "
        "costs.ledger_fee_per_tx",
    )
    endorsement_fee: float = Field(
        0.0, ge=0.0, description="fee per endorsement a transaction on it gathers"
    )
    collections: tuple[CollectionSettings, ...] = Field(
        (), strict=False, description="settings of its private data collections, by name"
    )

    @model_validator(mode="after")
    def _own_keys(self) -> ChannelSettings:
        for i, name in enumerate(self.members):
            if name in self.members[:i]:
                raise field_problem(f"members[{i}]", f"duplicate member {name!r}")
        for i, what in enumerate(self.carries):
            if what not in CARRIES:
                raise field_problem(
                    f"carries[{i}]", f"must be one of {', '.join(map(repr, CARRIES))}, got {what!r}"
                )
            if what in self.carries[:i]:
                raise field_problem(f"carries[{i}]", f"{what!r} is listed twice")
        for i, collection in enumerate(self.collections):
            if collection.name in [c.name for c in self.collections[:i]]:
                raise field_problem(
                    f"collections[{i}].name", f"duplicate collection {collection.name!r}"
                )
        return self

    def collection(self, name: str) -> CollectionSettings | None:
        return next((c for c in self.collections if c.name == name), None)


def default_channel(orgs: Sequence[str]) -> ChannelSettings:
    """The channel of a scenario without ``[[channels]]``: every organization, updates and
    scoring, the ledger's endorsement rule."""
    return ChannelSettings(name=DEFAULT_CHANNEL, members=tuple(orgs))


def resolved_channels(
    channels: Sequence[ChannelSettings], orgs: Sequence[str]
) -> tuple[ChannelSettings, ...]:
    """The scenario's channels, or the default one when it declares none."""
    return tuple(channels) if channels else (default_channel(orgs),)


# --- the checks that need the organizations --------------------------------------------------


def check_channels(
    channels: Sequence[ChannelSettings], orgs: Sequence[str], ledger: LedgerSettings
) -> None:
    """Raise (a pydantic-friendly error naming the key) unless every round can be routed."""
    check_policy_text("ledger.endorsement", ledger.endorsement, orgs)
    channels = resolved_channels(channels, orgs)
    names: dict[str, int] = {}
    updates_channel: dict[str, str] = {}
    for i, channel in enumerate(channels):
        key = f"channels[{i}]"
        if channel.name in names:
            raise field_problem(
                f"{key}.name",
                f"duplicate channel {channel.name!r} (channels[{names[channel.name]}])",
            )
        names[channel.name] = i
        for j, member in enumerate(channel.members):
            if member not in orgs:
                raise field_problem(
                    f"{key}.members[{j}]",
                    f"unknown organization {member!r} (organizations: {', '.join(orgs)})",
                )
            if "updates" in channel.carries:
                if member in updates_channel:
                    raise field_problem(
                        f"{key}.members[{j}]",
                        f"{member!r} already sends its updates to channel "
                        f"{updates_channel[member]!r}; an organization's updates go to exactly "
                        "one channel that carries updates",
                    )
                updates_channel[member] = channel.name
        if channel.endorsement:
            check_policy_text(f"{key}.endorsement", channel.endorsement, channel.members)
        else:  # it takes [ledger].endorsement, which must then hold over its members
            check_policy_text("ledger.endorsement", ledger.endorsement, channel.members)
        _check_collections(channel, key)
    for what in ("updates", "scoring"):
        carriers = [c for c in channels if what in c.carries]
        for org in orgs:
            if not any(org in c.members for c in carriers):
                raise field_problem(
                    "channels",
                    f"organization {org!r} is on no channel that carries {what}; every "
                    f"organization {'sends updates' if what == 'updates' else 'is scored'}",
                )
    if not any(set(orgs) <= set(c.members) for c in channels if "scoring" in c.carries):
        raise field_problem(
            "channels",
            "no channel that carries scoring holds every organization: a round they all take "
            "part in could not be scored",
        )


def generated_collections(channel: ChannelSettings) -> list[str]:
    """The private data collections a channel has, from what it carries (in config order)."""
    names = []
    if "updates" in channel.carries:
        names.extend(f"{org}-updates" for org in channel.members)
    if "scoring" in channel.carries:
        names.append("scores")
    if "benchmark" in channel.carries:
        names.append("benchmark")
    return names


def _check_collections(channel: ChannelSettings, key: str) -> None:
    known = generated_collections(channel)
    for i, collection in enumerate(channel.collections):
        where = f"{key}.collections[{i}]"
        if collection.name not in known:
            raise field_problem(
                f"{where}.name",
                f"channel {channel.name!r} has no collection {collection.name!r} (its "
                f"collections, from what it carries: {', '.join(known)})",
            )
        for j, member in enumerate(collection.members or ()):
            if member not in channel.members:
                raise field_problem(
                    f"{where}.members[{j}]",
                    f"{member!r} is not a member of channel {channel.name!r}",
                )
        if collection.name == "scores":
            for field in ("members", "endorsement"):
                if field in collection.model_fields_set:
                    raise field_problem(
                        f"{where}.{field}",
                        "is the channel's for 'scores': the scoring record is also world state, "
                        "which every member of the channel holds (set the channel's endorsement)",
                    )
        owner = collection.name.removesuffix("-updates")
        if collection.name.endswith("-updates") and owner not in (collection.members or (owner,)):
            raise field_problem(
                f"{where}.members", f"must include the owner of the updates, {owner!r}"
            )
        check_policy_text(f"{where}.endorsement", collection.endorsement, channel.members)


def check_policy_text(key: str, text: str, members: Sequence[str]) -> None:
    """``text`` must be a rule, or a Fabric policy over ``members``' peers that they can
    satisfy ("" is a rule left to the default)."""
    if text in ("", *RULES):
        return
    from chains.fabric.errors import PolicySyntaxError  # only a policy string needs the parser
    from chains.fabric.policy import EndorsementPolicy, smallest_satisfying

    try:
        policy = EndorsementPolicy(text)
    except PolicySyntaxError as exc:
        raise field_problem(
            key, f"must be {', '.join(RULES)} or a Fabric endorsement policy; {exc}"
        ) from None
    outside = sorted(policy.msp_ids() - set(members))
    if outside:
        raise field_problem(
            key,
            f"names organizations outside the channel: {', '.join(outside)} (members: "
            f"{', '.join(members)})",
        )
    if smallest_satisfying([(m, "peer") for m in members], [policy]) is None:
        raise field_problem(
            key,
            f"{text!r} cannot be satisfied by the endorsing peers (one peer per member "
            f"organization: {', '.join(f'{m}.peer' for m in members)})",
        )
