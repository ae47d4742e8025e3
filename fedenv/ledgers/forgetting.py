"""The ledgers' part of unlearning an organization: its signed request, the purge of its raw
updates, and the certificate.

- :func:`post_request`: the organization's client signs an ``anchor`` record (``event`` =
  ``unlearning-request``) on the public chain: which episode, the method, the request's
  digest, and the run-folder files of its updates that are erased (``erased``), so an auditor
  knows those files are gone on purpose while their digests stay on the ledger;
- :func:`purge_updates`: the organization purges its raw update of each round from its
  collection ``<org>-updates`` on its updates channel (``federation.purge``): the values leave
  every member peer's side store and files; the salted hashes and the published digests stay;
- :func:`record_certificate`: the certificate (canonical JSON) on the organization's updates
  channel (``federation.certify``: every endorsing peer checks the removed digests against what
  the organization published and purged there; on a channel that also carries ``scoring`` the
  certificate goes into its ``scores`` collection too, so the channel's endorsement policy
  applies), and its SHA-256 anchored on the public chain by the consortium's orderer
  (``event`` = ``unlearning-certificate``, with the certificate file as ``artifact``).

These calls charge no fees, and each is idempotent, so that an unlearning killed half-way can
be carried out again in the same run folder (:mod:`fedenv.unlearning.unlearner`): a request or
certificate already anchored on the public chain (sqlite), a round already purged and a
certificate already on the channel are found (the chaincode keeps their tx ids) and their tx ids
returned instead of being sent again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from chains.canonical import canonical_json
from chains.fabric import ChaincodeError, Gateway
from fedenv.ledgers.chaincode import CHAINCODE, SCORES
from fedenv.ledgers.run_ledgers import Ledgers

REQUEST = "unlearning-request"
CERTIFICATE = "unlearning-certificate"


def post_request(
    ledgers: Ledgers, org: str, request: Mapping[str, Any], erased: Sequence[str]
) -> str:
    """``org`` signs its unlearning ``request`` (plain JSON data) onto the public chain; the tx id
    (that of the same request already committed, if it is)."""
    digest = hashlib.sha256(canonical_json(dict(request), what="unlearning request")).hexdigest()
    payload = {"event": REQUEST, **request, "digest": digest, "erased": list(erased)}
    found = _anchored(ledgers, payload)
    return found or ledgers.public.anchor("anchor", payload, sender=ledgers.clients[org])


def purge_updates(ledgers: Ledgers, org: str, round_keys: Sequence[str]) -> list[str]:
    """Purge ``org``'s raw update of each round key from its collection; the tx ids (committed;
    a round already purged gives the tx id of its purge)."""
    plan = ledgers.layout.updates_channel(org)
    done = {key: _channel_state(ledgers, org, f"purged/{key}/{org}") for key in round_keys}
    gateway = Gateway(ledgers.channels[plan.name], ledgers.clients[org])
    commits = {
        key: gateway.submit_async(CHAINCODE, "purge", key) for key in round_keys if not done[key]
    }
    if commits:
        ledgers.channels[plan.name].flush()
    return [done[key] or _committed(commits[key], plan.name) for key in round_keys]


def record_certificate(
    ledgers: Ledgers, org: str, key: str, certificate: bytes, artifact: str | None
) -> tuple[str, str]:
    """The certificate on ``org``'s updates channel and its hash on the public chain; (channel
    tx id, public tx id)."""
    plan = ledgers.layout.updates_channel(org)
    channel_tx = _channel_state(ledgers, org, f"unlearning-tx/{key}")
    if channel_tx is None:
        endorse = SCORES if "scoring" in plan.carries else ""
        writer = ledgers.clients[plan.writer(SCORES)] if endorse else ledgers.clients[org]
        commit = Gateway(ledgers.channels[plan.name], writer).submit_async(
            CHAINCODE, "certify", key, certificate.decode(), endorse
        )
        ledgers.channels[plan.name].flush()
        channel_tx = _committed(commit, plan.name)
    payload: dict[str, Any] = {
        "event": CERTIFICATE,
        "key": key,
        "org": org,
        "channel": plan.name,
        "channel_tx": channel_tx,
        "digest": hashlib.sha256(certificate).hexdigest(),
    }
    if artifact is not None:
        payload["artifact"] = artifact
    found = _anchored(ledgers, payload)
    return channel_tx, found or ledgers.public.anchor(
        "anchor", payload, sender=ledgers.network.orderer
    )


def _anchored(ledgers: Ledgers, payload: Mapping[str, Any]) -> str | None:
    """The id of an ``anchor`` record with exactly ``payload`` committed on the public chain
    (None if there is none, or the chain cannot be searched: Ethereum's log)."""
    find = getattr(ledgers.public, "find_anchor", None)
    return None if find is None else find(dict(payload))


def _channel_state(ledgers: Ledgers, org: str, key: str) -> str | None:
    """The value of ``key`` in the chaincode's state on ``org``'s updates channel (its peer's)."""
    channel = ledgers.channels[ledgers.layout.updates_channel(org).name]
    peer = next(p for p in channel.peers if p.identity.msp_id == org)
    entry = peer.state.get(CHAINCODE, key)  # (value, version)
    return None if entry is None else entry[0].decode()


def _committed(commit, channel: str) -> str:
    result = commit.status()
    if result is None or not result.valid:
        raise ChaincodeError(
            f"transaction {commit.tx_id} on channel {channel} is "
            f"{None if result is None else result.code.name}"
        )
    return result.tx_id
