"""A channel: its member organizations' peers, its orderer, its chaincodes, and the flow between.

Created (or reopened from its ledger files) by `Network.create_channel`; clients transact
through `chains.fabric.gateway.Gateway(channel, identity)`. Data flows one way: the channel asks
peers to endorse (and hands the private writes of an endorsement to the member peers), gives
envelopes to the orderer, and delivers every block the orderer cut to every peer, in order,
catching up any peer that is behind from the orderer's store. Nothing calls back. All peers must
agree on every validation code, or the channel stops with LedgerStateError; a failed delivery
leaves the block with the orderer, and the next call delivers it, so no transaction is lost.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chains.fabric.block import Block
from chains.fabric.chaincode import ChaincodeFunction
from chains.fabric.codec import framed_hash
from chains.fabric.config import ChaincodeDefinition, ChannelConfig, check_policy
from chains.fabric.errors import ConfigError, EndorsementError, LedgerStateError
from chains.fabric.orderer import Orderer
from chains.fabric.peer import Peer, ProposalResponse
from chains.fabric.policy import smallest_satisfying
from chains.fabric.transaction import (
    CHAINCODE_DEFINITION,
    Endorsement,
    Envelope,
    SignedProposal,
    make_header,
)
from chains.fabric.validator import ValidationCode
from chains.identity import Identity

__all__ = ["Channel", "Commit", "CommittedBlock", "TxResult"]


@dataclass(frozen=True)
class CommittedBlock:
    """What every peer committed: the block's number and hash, and each transaction's code."""

    number: int
    hash: str
    tx_ids: tuple[str, ...]
    codes: tuple[ValidationCode, ...]


@dataclass(frozen=True)
class TxResult:
    """The outcome of a committed transaction. `payload` is what the chaincode returned."""

    tx_id: str
    block_number: int
    code: ValidationCode
    payload: bytes

    @property
    def valid(self) -> bool:
        return self.code is ValidationCode.VALID

    def json(self) -> Any:
        return json.loads(self.payload)


class Commit:
    """A submitted transaction, waiting to be ordered and committed."""

    def __init__(self, channel: Channel, envelope: Envelope, payload: bytes) -> None:
        self._channel = channel
        self.envelope = envelope
        self.tx_id = envelope.tx_id
        self.payload = payload
        self._result: TxResult | None = None

    @property
    def done(self) -> bool:
        return self._result is not None

    def resolve(self, block_number: int, code: ValidationCode) -> None:
        self._result = TxResult(self.tx_id, block_number, code, self.payload)

    def status(self, *, wait: bool = True) -> TxResult | None:
        """The committed result; with `wait`, cut the pending block first if need be."""
        if self._result is None and wait:
            self._channel.flush()
        return self._result


class Channel:
    """One channel of a `Network`."""

    def __init__(self, config: ChannelConfig, peers: Sequence[Peer], orderer: Orderer, *,
                 admins: Mapping[str, Identity], clock: Callable[[], int], seed: bytes) -> None:
        self.config = config
        self.name = config.name
        self.peers: tuple[Peer, ...] = tuple(peers)
        self.orderer = orderer
        self.clock = clock
        self._admins = dict(admins)
        self._seed = seed
        self._counters: dict[str, tuple[int, int]] = {}  # creator -> (height, count)
        self._plans: dict[tuple[str, tuple[str, ...], tuple[str, ...]], list[Peer]] = {}
        self._waiting: list[Commit] = []           # in the orderer's pending order
        self._tickets: dict[int, list[Commit]] = {}  # block number -> its commits, until delivered
        self._last: CommittedBlock | None = None
        self._recent: Block | None = None          # the block cut last, parsed already
        if any(p.height > orderer.height for p in self.peers):
            raise LedgerStateError(f"channel {self.name!r}: a peer is ahead of the orderer's "
                                   f"store (height {orderer.height}); its file is missing?")
        self._deliver()

    # --- public API --------------------------------------------------------------------------
    @property
    def height(self) -> int:
        """Number of blocks ordered (block 0 is the channel config)."""
        return self.orderer.height

    def install_chaincode(self, name: str, functions: Mapping[str, ChaincodeFunction], *,
                          endorsement_policy: str | None = None, version: str = "1.0"
                          ) -> ChaincodeDefinition:
        """Define (or redefine, with sequence + 1) chaincode `name` and install it on every peer.

        The definition is a config transaction approved by every member organization's admin
        and committed in its own block; reinstalling an identical definition commits nothing.
        """
        if not isinstance(functions, Mapping) or not functions or not all(
                isinstance(k, str) and callable(f) for k, f in functions.items()):
            raise ConfigError(f"chaincode {name!r} functions must be a non-empty mapping of "
                              f"name -> callable")
        policy = endorsement_policy or self.config.endorsement_policy
        check_policy(f"chaincode {name!r} endorsement_policy", policy,
                     frozenset(self.config.members))
        current = self.peers[0].validator.definitions.get(name)
        wanted = ChaincodeDefinition(name, version, 1 if current is None else current.sequence,
                                     policy, tuple(sorted(functions)))
        if current != wanted:
            wanted = ChaincodeDefinition(name, version, 1 if current is None
                                         else current.sequence + 1, policy, wanted.functions)
            wanted.validate(frozenset(self.config.members))
            self._commit_definition(wanted)
        for peer in self.peers:
            peer.install(name, functions)
        self._plans.clear()
        return wanted

    def flush(self) -> CommittedBlock | None:
        """Cut a block of the pending transactions and commit it on every peer."""
        block = self.orderer.flush()
        if block is None:
            self._deliver()  # a delivery that failed before is retried
            return None
        self._ticket(block)
        self._deliver()
        return self._last

    def resolve_peer(self, name: str) -> Peer:
        """A peer by name ('peer0.Org1'), or the first peer of an organization ('Org1')."""
        for peer in self.peers:
            if peer.name == name:
                return peer
        for peer in self.peers:
            if peer.msp_id == name:
                return peer
        raise ConfigError(f"no peer or member organization {name!r} on channel {self.name!r} "
                          f"(peers: {[p.name for p in self.peers]})")

    def block(self, number: int) -> Block | None:
        """Block `number` as the orderer cut it (None if there is none yet), like Fabric's
        GetBlockByNumber."""
        return self.orderer.store.block(number)

    def snapshot(self) -> int:
        """Every peer takes a ledger snapshot at the channel's height (after delivering what
        the orderer holds) and drops its blocks below it; the orderer keeps every block. The
        height."""
        self._deliver()
        for peer in self.peers:
            peer.snapshot()
        return self.height

    def close(self) -> None:
        for peer in self.peers:
            peer.store.close()
        self.orderer.store.close()

    # --- what gateways ask -------------------------------------------------------------------
    def next_nonce(self, identity: Identity) -> bytes:
        """Deterministic and never repeated on the ledger: seed, creator, height and the creator's
        count of proposals at this height.  Counted per height, so a channel reopened from its
        files (a resumed run, a copied env) proposes with the nonces the running one would have."""
        height, count = self._counters.get(identity.id, (self.height, 0))
        count = count if height == self.height else 0
        self._counters[identity.id] = (self.height, count + 1)
        return framed_hash(b"fedenv/fabric/nonce/v1", self._seed, self.config.chain_id.encode(),
                           identity.id.encode(), self.height.to_bytes(8, "big"),
                           count.to_bytes(8, "big"))[:24]

    def endorsement_plan(self, first: Peer, response: ProposalResponse) -> list[Peer]:
        """The peers to endorse, as Fabric's gateway picks them from a first simulation: the
        fewest that satisfy the policies of what it wrote, among the peers that hold every
        collection it read (the first peer's response is reused when it is among them)."""
        validator = first.validator
        policies = validator.policies_for(response.rwset,
                                          validator.definitions[response.rwset.ns])
        reads = tuple(sorted(response.private_reads))
        key = (first.name, tuple(p.text for p in policies), reads)
        plan = self._plans.get(key)
        if plan is None:
            holders = [p for p in self.peers if all(c in p.member_of for c in reads)]
            ordered = sorted(holders, key=lambda p: (p is not first, p.msp_id != first.msp_id,
                                                     self.config.members.index(p.msp_id),
                                                     p.name))
            chosen = smallest_satisfying([(p.msp_id, "peer") for p in ordered], policies)
            if chosen is None:
                raise EndorsementError(f"no set of peers that hold the collections read "
                                       f"satisfies the endorsement policies "
                                       f"{[str(p) for p in policies]}")
            plan = self._plans[key] = [ordered[i] for i in chosen]
        return plan

    def endorse(self, proposal: SignedProposal, peers: Sequence[Peer],
                known: Mapping[Peer, ProposalResponse] | None = None) -> list[ProposalResponse]:
        """Each peer's endorsement (`known` responses are reused); the private writes of the
        simulation go to the member peers' transient stores."""
        known = known or {}
        responses = [known[peer] if peer in known else peer.endorse(proposal) for peer in peers]
        writes = next((r.private_writes for r in responses if r.private_writes), ())
        if writes:
            for peer in self.peers:
                peer.receive_private(proposal.tx_id, responses[0].rwset.ns, writes, peer.height)
        return responses

    def broadcast(self, envelope: Envelope, payload: bytes = b"") -> Commit:
        """Give an endorsed envelope to the orderer; the Commit resolves when its block is
        delivered (MalformedError, and nothing queued, for an envelope the orderer refuses)."""
        block = self.orderer.broadcast(envelope)
        commit = Commit(self, envelope, payload)
        self._waiting.append(commit)
        if block is not None:
            self._ticket(block)
            self._deliver()
        return commit

    def order_config(self, envelope: Envelope) -> CommittedBlock:
        """Order a config transaction in its own block (after what is pending) and deliver."""
        blocks = self.orderer.order_config(envelope)
        if len(blocks) == 2:
            self._ticket(blocks[0])
        self._deliver()
        assert self._last is not None
        return self._last

    # --- delivery ----------------------------------------------------------------------------
    def _ticket(self, block: Block) -> None:
        """The waiting commits this block (cut from everything pending) resolves."""
        count = len(block.envelopes)
        self._tickets[block.number], self._waiting = self._waiting[:count], self._waiting[count:]
        self._recent = block

    def _deliver(self) -> None:
        """Bring every peer to the orderer's height, block by block, resolving commits."""
        for number in range(min(p.height for p in self.peers), self.orderer.height):
            recent = self._recent
            block = recent if recent is not None and recent.number == number else \
                self.orderer.store.block(number)
            if block is None:
                raise LedgerStateError(f"the orderer lacks block {number} of {self.name}")
            codes: list[ValidationCode] | None = None
            for peer in self.peers:
                if peer.height != number:
                    continue
                checks = [c.code for c in peer.commit(block)]
                if codes is None:
                    codes = checks
                elif checks != codes:
                    raise LedgerStateError(f"peers diverged on block {number} of {self.name}: "
                                           f"{codes} and {peer.name} {checks}")
            assert codes is not None
            for index, commit in enumerate(self._tickets.pop(number, [])):
                commit.resolve(number, codes[index])
            self._last = CommittedBlock(
                number, block.hash,
                tuple(getattr(t, "tx_id", "") for t in block.transactions), tuple(codes))

    def _commit_definition(self, definition: ChaincodeDefinition) -> None:
        orderer = self.orderer.identity
        header = make_header(CHAINCODE_DEFINITION, self.name, self.config.chain_id, orderer,
                             self.next_nonce(orderer), self.clock())
        body = {"definition": definition.to_dict()}
        unsigned = Envelope(header, body, (), b"")
        approvals = tuple(Endorsement.sign(self._admins[m], unsigned.body_bytes)
                          for m in self.config.members)
        last = self.order_config(Envelope.create(orderer, header, body, approvals))
        if last.codes[-1] is not ValidationCode.VALID:
            raise LedgerStateError(f"chaincode definition {definition.name!r} was not committed: "
                                   f"{last.codes}")
