"""The env's ledgers: one public ledger and one permissioned consortium channel, over `chains`.

Layout inside a run folder::

    public.db                              public ledger (RFC 9162 Merkle log, signed blocks)
    fabric/consortium/peer0.<org>.db       each organization's peer's copy of the channel

Per round (see :class:`Ledgers` for the calls):

- each participant's client signs an ``update-hash`` transaction on the public ledger carrying
  its update's SHA-256 (and, when stored, the adapter file's path in the run folder);
- each participant stores its raw update in its own private data collection
  ``<org>-updates`` on the consortium channel (``federation.store``): the collection's
  endorsement policy is the owner's peer alone, so the bytes never leave the organization; the
  channel ledger gets the salted hash, and the peer publishes the update's SHA-256 in world state
  (``digest/<key>/<org>``);
- ``federation.record`` records the round's contributions, accepted updates and payouts in
  world state and in the consortium-wide ``scores`` collection, whose endorsement policy is the
  channel's rule (``OutOf(majority)`` of the organizations' peers by default): a scoring
  transaction is valid only when that many peers endorsed it, and every endorsing peer checks
  that each scored update's digest is the one its owner's peer published, that payouts are
  finite, non-negative, paid to accepted updates only and within the round's pool;
- the consortium's orderer anchors the new global state's digest (``global-model-hash``) and the
  round's summary (``round-summary``) on the public ledger and seals the round's block.

Growth: a round commits two channel blocks (the private updates, then the scoring), so the
collections' ``blockToLive`` defaults to ``2 x max_rounds`` blocks: a raw update (and a scoring
record's private copy) stays in the side stores for the rest of its episode (what unlearning
needs) and leaves every file, WAL included, during the next one; the hashes stay on the
ledger.  The scenario's ``ledger.block_to_live`` sets another value (0: for ever).

One chaincode holds both functions because world state is per chaincode: the scoring check
reads what ``store`` wrote.  The chaincode's own policy is any one peer; the collections'
endorsement policies give each function its real rule.

Every key, certificate, nonce and salt derives from ``seed`` (the ledgers' genesis nonces too,
so their chain ids are the seed's); block times are the env's logical round clock
(:meth:`Ledgers.tick`, once per episode start and per round), never the wall clock.  Same seed
and calls, same bytes.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chains.canonical import canonical_json
from chains.fabric import ChaincodeError, ChaincodeStub, CollectionConfig, Gateway, Network
from chains.public_ledger import LedgerConfig, PublicLedger

CHANNEL = "consortium"
CHAINCODE = "federation"
SCORES = "scores"
PUBLIC_FILE = "public.db"
FABRIC_DIR = "fabric"
MAX_PAYLOAD_BYTES = 65536  # a round summary names every organization
EPISODE_START = "episode-start"
ARTIFACTS_PRUNED = "artifacts-pruned"  # chains.verify counts the named folders as pruned
BLOCKS_PER_ROUND = 2  # channel blocks a round with participants commits: updates, then scores


def round_key(episode: int, round: int) -> str:
    """The world-state / collection key of one round."""
    return f"e{episode:05d}-r{round:04d}"


def genesis_nonce(seed: int, ledger: str) -> bytes:
    """The seed's nonce for one ledger's genesis (its chain id is then the seed's too)."""
    return hashlib.sha256(f"fedenv/ledgers/{seed}/{ledger}".encode()).digest()[:16]


def collection_name(org: str) -> str:
    return f"{org}-updates"


def endorsement_policy(orgs: Sequence[str], rule: str) -> str:
    """``majority`` / ``all`` / ``any`` of the organizations' peers, as a Fabric policy."""
    need = {"majority": len(orgs) // 2 + 1, "all": len(orgs), "any": 1}[rule]
    return f"OutOf({need}, {', '.join(repr(f'{o}.peer') for o in orgs)})"


# --- chaincode (runs on the endorsing peers) ---------------------------------------------------


def _store_update(stub: ChaincodeStub, key: str) -> str:
    """``federation.store(key)``: the caller's raw update (transient "update") into its
    collection."""
    value = stub.get_transient().get("update")
    if not value:
        raise ChaincodeError("store needs the update bytes in transient data 'update'")
    org = stub.creator.msp_id
    digest = hashlib.sha256(value).hexdigest()
    stub.put_private_data(collection_name(org), key, value)
    stub.put_state(f"digest/{key}/{org}", digest)
    return digest


def _record_scores(stub: ChaincodeStub, key: str, record: str) -> dict[str, Any]:
    """``federation.record(key, json)``: check the round's scores against the stored updates."""
    scores = json.loads(record)
    if stub.get_state(f"scores/{key}") is not None:
        raise ChaincodeError(f"round {key} is already scored")
    for org, row in sorted(scores["participants"].items()):
        published = stub.get_state(f"digest/{key}/{org}")
        if published is None or published.decode() != row["digest"]:
            raise ChaincodeError(
                f"{org}: scored digest {row['digest'][:12]} is not the update "
                f"its peer stored for round {key}"
            )
        payout = row["payout"]
        if not (isinstance(payout, (int, float)) and math.isfinite(payout) and payout >= 0):
            raise ChaincodeError(f"{org}: payout must be finite and >= 0, got {payout!r}")
        if payout > 0 and not row["accepted"]:
            raise ChaincodeError(f"{org}: a rejected update cannot be paid")
    paid = sum(row["payout"] for row in scores["participants"].values())
    if paid > scores["pool"] + 1e-6 * len(scores["participants"]):  # payouts carry 6 decimals
        raise ChaincodeError(f"payouts {paid:g} exceed the round's pool {scores['pool']:g}")
    stub.put_state(f"scores/{key}", record)
    stub.put_private_data(SCORES, key, record)  # brings in the collection's endorsement policy
    return {"round": key, "scored": len(scores["participants"])}


@dataclass
class _RoundClock:
    """Block and proposal times: the env's round counter (a callable, as `chains` expects)."""

    now: int = 0

    def __call__(self) -> int:
        return self.now


class Ledgers:
    """The public ledger and the consortium channel of one run folder (created or reopened)."""

    def __init__(
        self,
        folder: str | Path,
        orgs: Sequence[str],
        *,
        seed: int,
        endorsement: str = "majority",
        block_to_live: int | None = None,
        max_rounds: int = 10,
    ) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.orgs = tuple(orgs)
        self._clock = _RoundClock()
        self.network = Network.create(
            self.orgs, seed=seed, path=self.folder / FABRIC_DIR, clock=self._clock
        )
        members = ", ".join(f"'{o}.member'" for o in self.orgs)
        lifetime = BLOCKS_PER_ROUND * max_rounds if block_to_live is None else block_to_live
        collections = [
            CollectionConfig(
                collection_name(o),
                f"OR('{o}.member')",
                block_to_live=lifetime,
                endorsement_policy=f"OR('{o}.peer')",
            )
            for o in self.orgs
        ]
        collections.append(
            CollectionConfig(
                SCORES,
                f"OR({members})",
                block_to_live=lifetime,
                endorsement_policy=endorsement_policy(self.orgs, endorsement),
            )
        )
        self.channel = self.network.create_channel(
            CHANNEL,
            self.orgs,
            endorsement_policy(self.orgs, "any"),
            collections,
            nonce=genesis_nonce(seed, CHANNEL),
        )
        self.channel.install_chaincode(
            CHAINCODE, {"store": _store_update, "record": _record_scores}
        )
        self.clients = {org: self.network.client(org) for org in self.orgs}
        path = self.folder / PUBLIC_FILE
        config = LedgerConfig(max_payload_bytes=MAX_PAYLOAD_BYTES, synchronous="NORMAL")
        if path.exists():
            self.public = PublicLedger.open(
                path, proposer=self.network.orderer, clock=self._clock, config=config
            )
            self._clock.now = self.public.block(self.public.height).header.timestamp
            self.episodes = sum(
                1
                for _, tx in self.public.transactions("anchor")
                if tx.payload.get("event") == EPISODE_START
            )
        else:
            self.episodes = 0
            self.public = PublicLedger.create(
                path,
                orgs=self.network.msp(self.orgs),
                proposer=self.network.orderer,
                clock=self._clock,
                config=config,
                nonce=genesis_nonce(seed, PUBLIC_FILE),
            )
        self._pending_private: dict[str, Any] = {}

    # --- episodes and rounds -----------------------------------------------------------------
    def tick(self) -> int:
        """Advance the logical clock by one (an episode start or a round); returns the time."""
        self._clock.now += 1
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
        tx_id = self.public.anchor("anchor", payload)
        self.seal()
        self.episodes += 1
        return self.episodes - 1, tx_id

    def record_pruning(self, prefixes: Sequence[str]) -> str:
        """Seal a signed record that the artifacts under ``prefixes`` (folders relative to the
        run folder, ending in ``/``) are deleted on purpose; returns its tx id."""
        listed = sorted(prefixes)
        payload = {
            "event": ARTIFACTS_PRUNED,
            "prefixes": listed,
            "digest": hashlib.sha256(canonical_json(listed)).hexdigest(),
        }
        tx_id = self.public.anchor("anchor", payload)
        self.seal()
        return tx_id

    def post_update(
        self, org: str, episode: int, round: int, digest: str, artifact: str | None = None
    ) -> str:
        """``org`` signs its update's hash onto the public ledger; returns the tx id (pending)."""
        payload: dict[str, Any] = {"episode": episode, "round": round, "org": org, "digest": digest}
        if artifact is not None:
            payload["artifact"] = artifact
        return self.public.transact(self.clients[org], "update-hash", payload)

    def store_private_update(self, org: str, episode: int, round: int, data: bytes) -> str:
        """``org``'s raw update into its private collection; returns the channel tx id.

        Endorsed by ``org``'s own peer only; committed in one block with the round's other
        private updates when the round is scored."""
        commit = Gateway(self.channel, self.clients[org]).submit_async(
            CHAINCODE, "store", round_key(episode, round), transient={"update": data}
        )
        self._pending_private[commit.tx_id] = commit
        return commit.tx_id

    def record_scoring(
        self,
        episode: int,
        round: int,
        participants: Mapping[str, Mapping[str, Any]],
        *,
        pool: float,
    ) -> str:
        """Commit the round's private updates, then the scoring transaction; returns its tx id.

        ``participants[org]`` holds ``digest``, ``contribution``, ``accepted``, ``payout``;
        ``pool`` is the round's reward pool.  Endorsed under the channel's policy; raises if any
        transaction is not valid."""
        self._commit_private()
        record = canonical_json(
            {"participants": {o: dict(r) for o, r in participants.items()}, "pool": pool},
            what="scoring record",
        ).decode()
        scorer = self.clients[self.orgs[0]]
        result = Gateway(self.channel, scorer).submit(
            CHAINCODE, "record", round_key(episode, round), record
        )
        if not result.valid:
            raise ChaincodeError(
                f"scoring transaction {result.tx_id} of round "
                f"{round_key(episode, round)} is {result.code.name}"
            )
        return result.tx_id

    def anchor_global(
        self,
        episode: int,
        round: int,
        digest: str,
        summary: Mapping[str, Any],
        artifact: str | None = None,
    ) -> list[str]:
        """Anchor the new global state's hash and the round summary; returns both tx ids."""
        self._commit_private()
        model: dict[str, Any] = {"episode": episode, "round": round, "digest": digest}
        if artifact is not None:
            model["artifact"] = artifact
        return [
            self.public.anchor("global-model-hash", model),
            self.public.anchor("round-summary", {"episode": episode, "round": round, **summary}),
        ]

    def seal(self) -> int:
        """Commit the public ledger's pending transactions as one block; returns its height."""
        self._commit_private()
        self.public.seal()
        return self.public.height

    def close(self) -> None:
        self.public.close()
        self.network.close()

    def _commit_private(self) -> None:
        if not self._pending_private:
            return
        self.channel.flush()
        for tx_id, commit in self._pending_private.items():
            result = commit.status()
            if result is None or not result.valid:
                raise ChaincodeError(
                    f"private update transaction {tx_id} was not committed "
                    f"valid ({None if result is None else result.code.name})"
                )
        self._pending_private.clear()
