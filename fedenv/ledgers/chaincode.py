"""The ``federation`` chaincode: what the endorsing peers of a channel run and check.

Installed on every channel with the functions its ``carries`` need (one chaincode per channel,
because world state is per chaincode: the scoring check reads what ``store`` or ``attest``
wrote):

- ``store(key)`` (updates): the caller's raw update (transient ``update``) into its own
  collection ``<org>-updates``; its SHA-256 published in world state (``digest/<key>/<org>``);
- ``attest(key, digest)`` (scoring, for organizations whose updates live on another channel):
  the caller publishes its update's SHA-256 on the scoring channel, where ``record`` checks it;
- ``record(key, json)`` (scoring): the round's scoring record; every endorsing peer checks each
  scored digest against what its owner published on this channel, that payouts are finite,
  non-negative, paid to accepted updates only and within the round's pool;
- ``benchmark(key)`` (benchmark): the global model's score on each channel member's own domain
  (in transient data), into the members-only ``benchmark`` collection; scores must be within
  0..10.

What a record holds besides what is checked here is the round's (:mod:`fedenv.round`).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any

from chains.fabric import ChaincodeError, ChaincodeStub

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
    paid = sum(row["payout"] for row in scores["participants"].values())
    if paid > scores["pool"] + 1e-6 * len(scores["participants"]):  # payouts carry 6 decimals
        raise ChaincodeError(f"payouts {paid:g} exceed the round's pool {scores['pool']:g}")
    stub.put_state(f"scores/{key}", record)
    stub.put_private_data(SCORES, key, record)  # brings in the collection's endorsement policy
    return {"round": key, "scored": len(scores["participants"])}


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


FUNCTIONS = {
    "store": store_update,
    "attest": attest_update,
    "record": record_scores,
    "benchmark": record_benchmark,
}
"""Every function of the chaincode by name (a channel installs those its ``carries`` need)."""
