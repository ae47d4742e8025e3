"""The ``federation`` chaincode: what the endorsing peers of a channel run and check.

Installed on every channel with the functions its ``carries`` need (one chaincode per channel,
because world state is per chaincode: the scoring check reads what ``store`` or ``attest``
wrote):

- ``store(key)`` (updates): the caller's raw update (transient ``update``) into its own
  collection ``<org>-updates``; its SHA-256 published in world state (``digest/<key>/<org>``);
- ``attest(key, digest)`` (scoring, for organizations whose updates live on another channel):
  the caller publishes its update's SHA-256 on the scoring channel, where ``record`` checks it;
- ``record(key, json)`` (scoring): the round's scoring record, the round's decisions (each
  update's contribution, acceptance, share of the aggregate, payout, the defences' reasons for
  every rejection or down-weighting, and its organization's new reputation when the reputation
  defence is on); every endorsing peer checks each scored digest against what its owner published
  on this channel, that payouts are finite, non-negative, paid to accepted updates only and
  within the round's pool, that every rejection names its reason, that shares are in [0, 1],
  positive exactly for accepted updates and sum to at most 1, and that each reputation follows
  :func:`fedenv.scoring.reputation.next_reputation` from the value the channel holds for the
  organization in that episode (the decay is fixed on the channel by the first record that
  carries one);
- ``benchmark(key)`` (benchmark): the global model's score on each channel member's own domain
  (in transient data), into the members-only ``benchmark`` collection; scores must be within
  0..10;
- ``purge(key)`` (updates): the caller's raw update of a round purged from its collection, on
  every member peer and for good (its salted hash and published digest stay); the purge's tx id
  is kept under ``purged/<key>/<org>``;
- ``certify(key, json, endorse)`` (updates): an unlearning certificate; every endorsing peer
  checks that each removed digest is one the forgotten organization published on this channel
  and that its raw update was purged; ``endorse = "scores"`` also writes it into the ``scores``
  collection, which brings in the channel's endorsement policy; its tx id is kept under
  ``unlearning-tx/<key>``;
- ``forget(episode)`` (every channel): world state bounded: the keys above of the episodes
  before ``episode`` (``<kind>/e<NNNNN>...``) are deleted, at the start of each episode (their
  history stays in the blocks, which the orderer keeps: docs/run_folders.md, "Lifetimes and
  pruning"); what a round checks reads its own episode's keys only. It is the consortium's
  housekeeping (submitted by the channel's first member, endorsed under the chaincode's policy
  as ``store`` is) and deletes world-state copies only: their history stays in the blocks.

What a record holds besides what is checked here is the round's (:mod:`fedenv.round`).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any

from chains.fabric import ChaincodeError, ChaincodeStub
from fedenv.scoring.reputation import INITIAL, TOLERANCE, next_reputation

CHAINCODE = "federation"
SCORES = "scores"
BENCHMARK = "benchmark"
_DIGEST = re.compile(r"[0-9a-f]{64}")


def collection_name(org: str) -> str:
    """The collection of ``org``'s raw updates."""
    return f"{org}-updates"


def store_update(stub: ChaincodeStub, key: str) -> str:
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


def attest_update(stub: ChaincodeStub, key: str, digest: str) -> str:
    """``federation.attest(key, digest)``: the caller's update digest, its bytes held on its own
    updates channel."""
    if not _DIGEST.fullmatch(digest):
        raise ChaincodeError(f"attest needs a SHA-256 hex digest, got {digest[:80]!r}")
    org = stub.creator.msp_id
    if stub.get_state(f"digest/{key}/{org}") is not None:
        raise ChaincodeError(f"{org} already published its update of round {key}")
    stub.put_state(f"digest/{key}/{org}", digest)
    return digest


def record_scores(stub: ChaincodeStub, key: str, record: str) -> dict[str, Any]:
    """``federation.record(key, json)``: check the round's scores against the published
    digests."""
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
        _check_decision(org, row)
    rows = scores["participants"].values()
    paid = sum(row["payout"] for row in rows)
    if paid > scores["pool"] + 1e-6 * len(rows):  # payouts carry 6 decimals
        raise ChaincodeError(f"payouts {paid:g} exceed the round's pool {scores['pool']:g}")
    if sum(row["weight"] for row in rows) > 1.0 + 1e-6 * len(rows):
        raise ChaincodeError("the accepted updates' shares sum to more than 1")
    _check_reputations(stub, key, scores)
    stub.put_state(f"scores/{key}", record)
    stub.put_private_data(SCORES, key, record)  # brings in the collection's endorsement policy
    return {"round": key, "scored": len(scores["participants"])}


def _check_decision(org: str, row: dict[str, Any]) -> None:
    """One participant's decision: a share exactly when accepted, a reason for a rejection."""
    if "weight" not in row or "reasons" not in row:
        raise ChaincodeError(f"{org}: a decision needs its weight and reasons")
    weight, reasons = row["weight"], row["reasons"]
    if not (isinstance(weight, (int, float)) and 0.0 <= weight <= 1.0):
        raise ChaincodeError(f"{org}: share {weight!r} is not in [0, 1]")
    if (weight > 0) != bool(row["accepted"]):
        raise ChaincodeError(f"{org}: an accepted update has a share, a rejected one none")
    if not isinstance(reasons, list) or not all(isinstance(r, str) and r for r in reasons):
        raise ChaincodeError(f"{org}: reasons must be a list of texts")
    if not row["accepted"] and not reasons:
        raise ChaincodeError(f"{org}: a rejection must name its reason")


def _check_reputations(stub: ChaincodeStub, key: str, scores: dict[str, Any]) -> None:
    """Each reputation in the record follows the decay rule from the value the channel holds."""
    decay = scores.get("reputation_decay")
    if decay is None:
        return
    fixed = stub.get_state("policy/reputation_decay")
    if fixed is None:
        stub.put_state("policy/reputation_decay", json.dumps(decay))
    elif json.loads(fixed) != decay:
        raise ChaincodeError(f"reputation decay {decay} is not the channel's {json.loads(fixed)}")
    episode = key.split("-")[0]
    for org, row in sorted(scores["participants"].items()):
        state = f"reputation/{episode}/{org}"
        held = stub.get_state(state)
        previous = INITIAL if held is None else float(json.loads(held))
        expected = next_reputation(previous, bool(row["accepted"]), decay)
        if abs(row.get("reputation", math.nan) - expected) > TOLERANCE:
            raise ChaincodeError(
                f"{org}: reputation {row.get('reputation')} does not follow from "
                f"{previous} (expected {expected:.6f})"
            )
        stub.put_state(state, json.dumps(row["reputation"]))


def record_benchmark(stub: ChaincodeStub, key: str) -> dict[str, Any]:
    """``federation.benchmark(key)``: the global model's score on each member's own domain
    (transient ``record``, JSON), kept in the members-only collection: only its salted hash is
    on the channel's blocks, and the evaluated model's digest in world state."""
    record = stub.get_transient().get("record")
    if not record:
        raise ChaincodeError("benchmark needs the record in transient data 'record'")
    evaluation = json.loads(record)
    if not _DIGEST.fullmatch(str(evaluation.get("model", ""))):
        raise ChaincodeError("a benchmark record names the evaluated model's SHA-256")
    for org, score in sorted(evaluation["scores"].items()):
        if not (isinstance(score, (int, float)) and math.isfinite(score) and 0 <= score <= 10):
            raise ChaincodeError(f"{org}: a benchmark score is within 0..10, got {score!r}")
    if stub.get_state(f"benchmark/{key}") is not None:
        raise ChaincodeError(f"round {key} is already evaluated on this channel")
    stub.put_state(f"benchmark/{key}", evaluation["model"])
    stub.put_private_data(BENCHMARK, key, record)
    return {"round": key, "domains": len(evaluation["scores"])}


def purge_update(stub: ChaincodeStub, key: str) -> str:
    """``federation.purge(key)``: the caller's raw update of round ``key`` out of its collection
    for good (the right to be forgotten); the hashes stay on the channel."""
    org = stub.creator.msp_id
    if stub.get_state(f"digest/{key}/{org}") is None:
        raise ChaincodeError(f"{org} stored no update for round {key} on this channel")
    if stub.get_state(f"purged/{key}/{org}") is not None:
        raise ChaincodeError(f"{org}'s update of round {key} is already purged")
    stub.purge_private_data(collection_name(org), key)
    stub.put_state(f"purged/{key}/{org}", stub.tx_id)  # a resumed unlearning finds it
    return key


def certify_unlearning(stub: ChaincodeStub, key: str, record: str, endorse: str = "") -> str:
    """``federation.certify(key, json, endorse)``: an unlearning certificate (canonical JSON with
    ``org`` and ``removed``: ``[{"round": round key, "digest": ...}]``), checked against what the
    forgotten organization published and purged on this channel; returns its SHA-256."""
    certificate = json.loads(record)
    org = certificate["org"]
    if stub.get_state(f"unlearning/{key}") is not None:
        raise ChaincodeError(f"{key} is already certified")
    for removed in certificate["removed"]:
        round_key, digest = removed["round_key"], removed["digest"]
        published = stub.get_state(f"digest/{round_key}/{org}")
        if published is None or published.decode() != digest:
            raise ChaincodeError(
                f"{org}: removed digest {str(digest)[:12]} is not the update it stored for "
                f"round {round_key}"
            )
        if stub.get_state(f"purged/{round_key}/{org}") is None:
            raise ChaincodeError(f"{org}: its update of round {round_key} is not purged")
    stub.put_state(f"unlearning/{key}", record)
    stub.put_state(f"unlearning-tx/{key}", stub.tx_id)  # a resumed unlearning finds it
    if endorse == SCORES:
        stub.put_private_data(SCORES, f"unlearning/{key}", record)
    return hashlib.sha256(record.encode()).hexdigest()


EPISODE_KEYED = ("benchmark/", "digest/", "purged/", "reputation/", "scores/", "unlearning-tx/",
                 "unlearning/")
"""The prefixes of world-state keys that name an episode next (``<prefix>e<NNNNN>...``)."""


def forget_episodes(stub: ChaincodeStub, episode: str) -> int:
    """``federation.forget(episode)``: delete the episode-keyed world state of the episodes
    before ``episode`` (an episode index); the number of keys deleted."""
    if not episode.isdigit() or len(episode) > 5:
        raise ChaincodeError(f"forget needs an episode index of up to 5 digits, got "
                             f"{episode[:20]!r}")
    deleted = 0
    for prefix in EPISODE_KEYED:
        for key, _ in stub.get_state_by_range(f"{prefix}e", f"{prefix}e{int(episode):05d}"):
            stub.del_state(key)
            deleted += 1
    return deleted


FUNCTIONS = {
    "store": store_update,
    "attest": attest_update,
    "record": record_scores,
    "benchmark": record_benchmark,
    "purge": purge_update,
    "certify": certify_unlearning,
    "forget": forget_episodes,
}
"""Every function of the chaincode by name (a channel installs those its ``carries`` need)."""
