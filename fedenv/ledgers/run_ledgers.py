"""The ledgers of one run: its public chain and its permissioned channels, and a round's calls.

Per round (see :class:`Ledgers` for the calls, :mod:`fedenv.ledgers.layout` for the routing):

- each participant's client signs an ``update-hash`` record on the public chain carrying its
  update's SHA-256 (and, when stored, the adapter file's path in the run folder);
- each participant stores its raw update in its collection ``<org>-updates`` on its updates
  channel (``federation.store``), endorsed by its own peer alone, so the bytes never leave the
  collection's members; the channel gets the salted hash, and the peer publishes the update's
  SHA-256 in world state; when the round's scoring channel is another channel, the participant
  also publishes the digest there (``federation.attest``);
- ``federation.record`` records the round's contributions, acceptances and payouts on the
  scoring channel, in world state and in its ``scores`` collection, endorsed under the
  channel's policy (``OutOf(majority)`` of its members' peers by default): every endorsing peer
  checks each scored digest, and the payouts (:mod:`fedenv.ledgers.chaincode`);
- ``federation.benchmark`` records, on every channel that carries ``benchmark``, the new global
  model's score on each member's own domain (the sub-consortium's private benchmark);
- the consortium's orderer anchors the round's summary (``round-summary``), which carries the
  new global state's digest (``digest``, and ``artifact`` when the adapter is kept), on the
  public chain, and the round's block is sealed.

Fees, per organization and round (:attr:`Ledgers.round_fees`): ``costs.ledger_fee_per_tx`` for
its public record; for each channel transaction it submits (store, attest), that channel's
``fee_per_tx + endorsement_fee x endorsements``.  The records (scoring, benchmark) and anchors
are the consortium's: their ``fee_per_tx`` is charged to nobody, their endorsements are shared
equally by the round's participants that are members of the channel.

Growth: the raw updates (and the records' private copies) live ``blockToLive`` channel blocks
(Fabric's; :mod:`fedenv.ledgers.layout`): by default for the rest of their episode (what
unlearning needs) and out of every file, write-ahead log included, during a later one; their
hashes stay on the ledgers.  ``[ledger] block_to_live`` (or a channel's or collection's) sets
another value (0: until purged).  At each episode start every channel's peers take a ledger
snapshot (``[ledger] peer_snapshots``, on by default: :mod:`chains.fabric.snapshot`) and drop
their copies of the blocks below it (the orderer keeps every block), and ``federation.forget``
deletes the previous episodes' round keys from world state (committed with the first round).

Every key, certificate, nonce and salt derives from ``seed`` (the ledgers' genesis nonces too,
so their chain ids are the seed's); block times are the env's logical round clock
(:meth:`Ledgers.tick`, once per episode start and per round), never the wall clock.  Same seed
and calls, same bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chains.artifacts import PRUNED_EVENT
from chains.canonical import canonical_json
from chains.fabric import ChaincodeError, Channel, Commit, Gateway, Network
from fedenv.ledgers.chaincode import BENCHMARK, CHAINCODE, FUNCTIONS, SCORES
from fedenv.ledgers.layout import ChannelLayout, ChannelPlan, endorsement_policy
from fedenv.ledgers.public import EPISODE_START, PUBLIC_FILE, open_public_chain
from fedenv.scenario import Scenario
from fedenv.scenario.ledger import ChannelSettings, LedgerSettings

FABRIC_DIR = "fabric"


def round_key(episode: int, round: int) -> str:
    """The world-state / collection key of one round."""
    return f"e{episode:05d}-r{round:04d}"


def genesis_nonce(seed: int, ledger: str) -> bytes:
    """The seed's nonce for one ledger's genesis (its chain id is then the seed's too)."""
    return hashlib.sha256(f"fedenv/ledgers/{seed}/{ledger}".encode()).digest()[:16]


@dataclass
class _RoundClock:
    """Block and proposal times: the env's round counter (a callable, as `chains` expects)."""

    now: int = 0

    def __call__(self) -> int:
        return self.now


class Ledgers:
    """The public chain and the channels of one run folder (created or reopened)."""

    def __init__(
        self,
        folder: str | Path,
        orgs: Sequence[str],
        *,
        seed: int,
        endorsement: str | None = None,
        ledger: LedgerSettings | None = None,
        channels: Sequence[ChannelSettings] = (),
        ledger_fee_per_tx: float = 0.0,
        max_rounds: int = 10,
    ) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.orgs = tuple(orgs)
        ledger = ledger or LedgerSettings()
        if endorsement is not None:
            ledger = ledger.model_copy(update={"endorsement": endorsement})
        self.layout = ChannelLayout(
            self.orgs, channels, ledger=ledger, fee_per_tx=ledger_fee_per_tx, max_rounds=max_rounds
        )
        self.public_fee = ledger_fee_per_tx
        self.peer_snapshots = ledger.peer_snapshots
        self._clock = _RoundClock()
        self.network = Network.create(
            self.orgs, seed=seed, path=self.folder / FABRIC_DIR, clock=self._clock
        )
        try:
            self.channels = {
                plan.name: self._open_channel(plan, seed) for plan in self.layout.plans
            }
            self.clients = {org: self.network.client(org) for org in self.orgs}
            self.public = open_public_chain(
                self.folder,
                ledger.public,
                msp=self.network.msp(self.orgs),
                orderer=self.network.orderer,
                clock=self._clock,
                seed=seed,
                nonce=genesis_nonce(seed, PUBLIC_FILE),
                url=ledger.ethereum_url,
            )
        except BaseException:
            self.network.close()
            raise
        self.episodes = self.public.episode_starts()
        self._clock.now = max(self._clock.now, self.public.last_time())
        self._pending: dict[str, tuple[str, Commit]] = {}  # tx id -> (channel, commit)
        self.round_fees: dict[str, float] = {}
        self.scoring_channel: str | None = None

    @classmethod
    def for_scenario(cls, folder: str | Path, scenario: Scenario) -> Ledgers:
        """The ledgers of ``scenario`` (its organizations, ``[ledger]``, ``[[channels]]`` and
        ledger fee) in ``folder``."""
        return cls(
            folder,
            scenario.org_names,
            seed=scenario.seed,
            ledger=scenario.ledger,
            channels=scenario.channels,
            ledger_fee_per_tx=scenario.costs.ledger_fee_per_tx,
            max_rounds=scenario.max_rounds,
        )

    def _open_channel(self, plan: ChannelPlan, seed: int) -> Channel:
        channel = self.network.create_channel(
            plan.name,
            plan.members,
            endorsement_policy(plan.members, "any"),  # the chaincode's; records bring their own
            plan.collections,
            nonce=genesis_nonce(seed, plan.name),
        )
        channel.install_chaincode(CHAINCODE, {f: FUNCTIONS[f] for f in plan.functions})
        return channel

    @property
    def channel(self) -> Channel:
        """The first channel (the only one, ``consortium``, of a scenario without channels)."""
        return next(iter(self.channels.values()))

    def fee_bound(self, org: str) -> float:
        """The most the ledgers can charge ``org`` in one round it takes part in, known before
        the round (the env's hard budgets plan with it; the round charges what was spent, never
        more): its public record; its store on its updates channel and its attest on the widest
        scoring channel it belongs to, each endorsed by every member; and, as if it were the only
        participant to share them, the endorsements of the scoring and benchmark records of the
        channels it belongs to."""
        mine = self.layout.channels_of(org)
        scoring = [p for p in mine if "scoring" in p.carries]
        home = self.layout.updates_channel(org)
        attest = max((p.fee(len(p.members)) for p in scoring if p is not home), default=0.0)
        shared = max((p.endorsement_fee * len(p.members) for p in scoring), default=0.0)
        shared += sum(p.endorsement_fee * len(p.members) for p in mine if "benchmark" in p.carries)
        return self.public_fee + home.fee(len(home.members)) + attest + shared

    # --- episodes and rounds -----------------------------------------------------------------
    def tick(self) -> int:
        """Advance the logical clock by one (an episode start or a round); returns the time.
        A round's fees start from nothing."""
        self._clock.now += 1
        self.round_fees = {}
        self.scoring_channel = None
        return self._clock.now

    def start_episode(self, digest: str, artifact: str | None = None) -> tuple[int, str]:
        """Anchor the initial global state of a new episode and seal; (episode index, tx id)."""
        self.tick()
        payload: dict[str, Any] = {
            "event": EPISODE_START,
            "episode": self.episodes,
            "digest": digest,
        }
        if artifact is not None:
            payload["artifact"] = artifact
        tx_id = self._anchor("anchor", payload)
        self.seal()
        if self.peer_snapshots:
            for channel in self.channels.values():
                channel.snapshot()
        if self.episodes:
            self._forget(self.episodes)
        self.episodes += 1
        return self.episodes - 1, tx_id

    def _forget(self, episode: int) -> None:
        """Delete the world state of the episodes before ``episode`` on every channel (the
        consortium's, charged to nobody; committed with the episode's first round)."""
        for plan in self.layout.plans:
            commit = Gateway(self.channels[plan.name], self.clients[plan.members[0]]).submit_async(
                CHAINCODE, "forget", str(episode)
            )
            self._pending[commit.tx_id] = (plan.name, commit)

    def record_pruning(self, prefixes: Sequence[str]) -> str:
        """Seal a record, signed by the consortium's orderer, that the artifacts under
        ``prefixes`` (folders relative to the run folder, ending in ``/``) are deleted on
        purpose (``chains verify`` then counts them as pruned, not missing); the tx id."""
        listed = sorted(prefixes)
        payload = {
            "event": PRUNED_EVENT,
            "prefixes": listed,
            "digest": hashlib.sha256(canonical_json(listed)).hexdigest(),
        }
        tx_id = self._anchor("anchor", payload)
        self.seal()
        return tx_id

    def post_update(
        self, org: str, episode: int, round: int, digest: str, artifact: str | None = None
    ) -> str:
        """``org`` signs its update's hash onto the public chain; returns the tx id."""
        payload: dict[str, Any] = {"episode": episode, "round": round, "org": org, "digest": digest}
        if artifact is not None:
            payload["artifact"] = artifact
        self._charge(org, self.public_fee)
        return self.public.anchor("update-hash", payload, sender=self.clients[org])

    def store_private_update(
        self,
        org: str,
        episode: int,
        round: int,
        data: bytes,
        *,
        participants: Sequence[str] | None = None,
    ) -> list[str]:
        """``org``'s raw update into its collection on its updates channel, and its digest onto
        the scoring channel of ``participants`` when that is another channel; the tx ids.

        Endorsed by ``org``'s own peer; committed with the round's other private updates when
        the round is scored."""
        key = round_key(episode, round)
        home = self.layout.updates_channel(org)
        tx_ids = [self._submit(home, org, "store", key, transient={"update": data})]
        scoring = self.layout.scoring_channel(participants or (org,))
        if scoring.name != home.name:
            digest = hashlib.sha256(data).hexdigest()
            tx_ids.append(self._submit(scoring, org, "attest", key, digest))
        return tx_ids

    def record_scoring(
        self,
        episode: int,
        round: int,
        participants: Mapping[str, Mapping[str, Any]],
        *,
        pool: float,
        reputation_decay: float | None = None,
    ) -> str:
        """Commit the round's private updates, then the scoring transaction on the scoring
        channel of the participants; returns its tx id.

        ``participants[org]`` holds ``digest``, ``level``, ``contribution``, ``accepted``,
        ``payout``, ``weight`` (its share of the aggregate), ``reasons`` (the defences' texts)
        and, with ``reputation_decay``, ``reputation`` (the new one); ``pool`` is the round's
        reward pool.  Endorsed under the channel's policy; raises if any transaction is not
        valid."""
        self._commit_pending()
        plan = self.layout.scoring_channel(participants)
        self.scoring_channel = plan.name
        content: dict[str, Any] = {
            "participants": {o: dict(r) for o, r in participants.items()},
            "pool": pool,
        }
        if reputation_decay is not None:
            content["reputation_decay"] = reputation_decay
        record = canonical_json(content, what="scoring record").decode()
        key = round_key(episode, round)
        writer = self.clients[plan.writer(SCORES)]
        commit = Gateway(self.channels[plan.name], writer).submit_async(
            CHAINCODE, "record", key, record
        )
        result = commit.status()
        if result is None or not result.valid:
            raise ChaincodeError(
                f"scoring transaction {commit.tx_id} of round {key} on channel {plan.name} is "
                f"{None if result is None else result.code.name}"
            )
        self._share(plan, commit, participants)
        return result.tx_id

    def record_benchmark(
        self,
        episode: int,
        round: int,
        model_digest: str,
        own_scores: Mapping[str, float],
        participants: Sequence[str],
    ) -> list[str]:
        """On every channel that carries ``benchmark``: the global model's score on each
        member's own domain (``own_scores[org]``), committed when the round is sealed; the tx
        ids."""
        tx_ids = []
        for plan in self.layout.benchmark_channels():
            record = canonical_json(
                {"model": model_digest, "scores": {m: own_scores[m] for m in plan.members}},
                what="benchmark record",
            )
            writer = self.clients[plan.writer(BENCHMARK)]
            commit = Gateway(self.channels[plan.name], writer).submit_async(
                CHAINCODE, "benchmark", round_key(episode, round), transient={"record": record}
            )
            self._pending[commit.tx_id] = (plan.name, commit)
            self._share(plan, commit, participants)
            tx_ids.append(commit.tx_id)
        return tx_ids

    def anchor_global(
        self,
        episode: int,
        round: int,
        digest: str,
        summary: Mapping[str, Any],
        artifact: str | None = None,
    ) -> list[str]:
        """Anchor the round summary with the new global state's digest (and its artifact's
        name) in it: one record signed by the orderer; returns its tx id in a list."""
        self._commit_pending()
        record: dict[str, Any] = {**summary, "episode": episode, "round": round, "digest": digest}
        if artifact is not None:
            record["artifact"] = artifact
        return [self._anchor("round-summary", record)]

    def seal(self) -> int:
        """Commit the pending transactions: the public chain's as one block; returns its
        height."""
        self._commit_pending()
        return self.public.flush()

    def close(self) -> None:
        try:
            self.public.close()
        finally:
            self.network.close()

    # --- helpers -----------------------------------------------------------------------------
    def _anchor(self, kind: str, payload: Mapping[str, Any]) -> str:
        """A record of the consortium's, signed by its orderer."""
        return self.public.anchor(kind, payload, sender=self.network.orderer)

    def _submit(self, plan: ChannelPlan, org: str, fn: str, *args: str, **kw: Any) -> str:
        """``org``'s transaction on ``plan``'s channel (pending; ``org`` pays its fee)."""
        commit = Gateway(self.channels[plan.name], self.clients[org]).submit_async(
            CHAINCODE, fn, *args, **kw
        )
        self._pending[commit.tx_id] = (plan.name, commit)
        self._charge(org, plan.fee(len(commit.envelope.endorsements)))
        return commit.tx_id

    def _share(self, plan: ChannelPlan, commit: Commit, participants: Sequence[str]) -> None:
        """The endorsements of a consortium record, shared by its participating members."""
        payers = [o for o in participants if o in plan.members]
        cost = plan.endorsement_fee * len(commit.envelope.endorsements)
        for org in payers:
            self._charge(org, cost / len(payers))

    def _charge(self, org: str, fee: float) -> None:
        self.round_fees[org] = self.round_fees.get(org, 0.0) + fee

    def _commit_pending(self) -> None:
        if not self._pending:
            return
        waiting = {name for name, _ in self._pending.values()}
        for name, channel in self.channels.items():  # in declaration order
            if name in waiting:
                channel.flush()
        for tx_id, (_, commit) in self._pending.items():
            result = commit.status()
            if result is None or not result.valid:
                raise ChaincodeError(
                    f"transaction {tx_id} was not committed valid "
                    f"({None if result is None else result.code.name})"
                )
        self._pending.clear()
