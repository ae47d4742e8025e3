"""A client's gateway to a channel, shaped like the Fabric Gateway API.

    gw = Gateway(channel, identity)
    result = gw.submit("scores", "record", "round-3", transient={"update": raw})  # committed
    commit = gw.submit_async(...); ...; commit.status()                           # batched
    value = gw.evaluate("scores", "get", "round-3")                               # query only

`submit` = propose (signed by the client) -> endorse (simulation on enough peers to satisfy the
endorsement policies, chosen as Fabric's gateway does: the client's own organization first, then
the fewest further peers; responses must agree byte for byte) and sign the envelope -> broadcast
-> wait for the commit (here: cut the block now). The same steps exist one by one, as in the
Fabric Gateway client API: `gw.propose(...)` -> `gw.endorse(proposal)` -> `Transaction.submit()`
-> `Commit.status()`, so a real Fabric Gateway client fits behind them. The gateway drives the
channel; the channel never knows its gateways.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from chains.fabric.channel import Channel, Commit, TxResult
from chains.fabric.codec import framed_hash, sha256, to_bytes
from chains.fabric.errors import EndorsementError
from chains.fabric.peer import Peer, ProposalResponse
from chains.fabric.transaction import Envelope, SignedProposal
from chains.identity import Identity

__all__ = ["Commit", "Gateway", "Transaction", "TxResult"]


@dataclass(frozen=True)
class Transaction:
    """An endorsed, client-signed transaction, not yet ordered. `result` is the payload."""

    channel: Channel
    envelope: Envelope
    result: bytes

    @property
    def tx_id(self) -> str:
        return self.envelope.tx_id

    def submit(self) -> Commit:
        """Broadcast to the orderer; the block is cut when full or on `flush`/`status`."""
        return self.channel.broadcast(self.envelope, self.result)


class Gateway:
    """Submits and evaluates transactions on `channel` as `identity`."""

    def __init__(self, channel: Channel, identity: Identity) -> None:
        if not isinstance(channel, Channel):
            raise TypeError(f"gateway channel must be a Channel, got {type(channel).__name__}")
        if not isinstance(identity, Identity):
            raise TypeError(f"gateway identity must be an Identity, got {type(identity).__name__}")
        self.channel = channel
        self.identity = identity

    # --- the four steps ----------------------------------------------------------------------
    def propose(self, chaincode: str, fn: str, *args: str | bytes,
                transient: Mapping[str, bytes | str] | None = None) -> SignedProposal:
        """A signed proposal with a fresh deterministic nonce; transient data rides beside it."""
        if not isinstance(chaincode, str) or not isinstance(fn, str):
            raise TypeError("chaincode and fn must be str")
        channel = self.channel
        nonce = channel.next_nonce(self.identity)
        private = {}
        for key, value in (transient or {}).items():
            if not isinstance(key, str):
                raise TypeError(f"transient keys must be str, got {type(key).__name__}")
            private[key] = to_bytes(value, f"transient[{key!r}]")
        tx_id = sha256(nonce, self.identity.cert_pem).hex()
        salt_seed = b""
        if channel.config.collections:  # a secret only this client can derive, never on-ledger
            salt_seed = framed_hash(self.identity.sign(b"fedenv/fabric/private-salt/v1/"
                                                       + tx_id.encode()))
        return SignedProposal.create(self.identity, channel=channel.name,
                                     chain=channel.config.chain_id, chaincode=chaincode, fn=fn,
                                     args=args, nonce=nonce, timestamp=channel.clock(),
                                     transient=private, salt_seed=salt_seed)

    def endorse(self, proposal: SignedProposal,
                endorsers: Sequence[str] | None = None) -> Transaction:
        """Gather endorsements (from `endorsers`, peer names or MSP IDs, if given) and sign."""
        channel = self.channel
        if endorsers is not None:
            responses = channel.endorse(proposal, [channel.resolve_peer(n) for n in endorsers])
        else:
            first = self._first_peer()
            probe = first.endorse(proposal)  # its simulation tells what the plan must cover
            responses = channel.endorse(proposal, channel.endorsement_plan(first, probe),
                                        known={first: probe})
        if not responses:
            raise EndorsementError("no endorsers given")
        self._check_agree(responses)
        header = proposal.header
        envelope = Envelope.create(self.identity, header, responses[0].body,
                                   tuple(r.endorsement for r in responses),
                                   header_bytes=proposal.header_bytes,
                                   body_bytes=responses[0].body_bytes)
        return Transaction(channel, envelope, responses[0].payload)

    # --- conveniences ------------------------------------------------------------------------
    def submit_async(self, chaincode: str, fn: str, *args: str | bytes,
                     transient: Mapping[str, bytes | str] | None = None,
                     endorsers: Sequence[str] | None = None) -> Commit:
        proposal = self.propose(chaincode, fn, *args, transient=transient)
        return self.endorse(proposal, endorsers).submit()

    def submit(self, chaincode: str, fn: str, *args: str | bytes,
               transient: Mapping[str, bytes | str] | None = None,
               endorsers: Sequence[str] | None = None) -> TxResult:
        """Endorse, order and commit (cutting the block now); the result carries the code."""
        result = self.submit_async(chaincode, fn, *args, transient=transient,
                                   endorsers=endorsers).status()
        assert result is not None
        return result

    def evaluate(self, chaincode: str, fn: str, *args: str | bytes,
                 transient: Mapping[str, bytes | str] | None = None,
                 peer: str | None = None) -> bytes:
        """Query one peer (own organization's first): simulation only, nothing is ordered."""
        target = self.channel.resolve_peer(peer) if peer is not None else self._first_peer()
        return target.evaluate(self.propose(chaincode, fn, *args, transient=transient))

    # --- helpers -----------------------------------------------------------------------------
    def _first_peer(self) -> Peer:
        own = [p for p in self.channel.peers if p.msp_id == self.identity.msp_id]
        return (own or list(self.channel.peers))[0]

    @staticmethod
    def _check_agree(responses: list[ProposalResponse]) -> None:
        reference = responses[0]
        differing = [r.peer for r in responses[1:] if r.body_bytes != reference.body_bytes]
        if differing:
            raise EndorsementError(
                f"endorsements disagree: {differing} returned a different read-write set or "
                f"payload than {reference.peer}; the transaction was not submitted")

