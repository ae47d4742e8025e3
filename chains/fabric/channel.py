"""A channel: its member organizations' peers, its orderer, its chaincodes and its gateways.

Created (or reopened from its ledger files) by `Network.create_channel`. All peers commit every
block; they must agree on every validation code, or the channel stops with LedgerStateError.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chains.fabric.block import Block
from chains.fabric.chaincode import ChaincodeFunction
from chains.fabric.codec import framed_hash
from chains.fabric.config import ChaincodeDefinition, ChannelConfig, check_policy
from chains.fabric.errors import ConfigError, LedgerStateError
from chains.fabric.gateway import Commit, Gateway, TxResult, smallest_satisfying
from chains.fabric.orderer import Orderer
from chains.fabric.peer import Peer, ProposalResponse
from chains.fabric.private_data import PrivateWrite
from chains.fabric.transaction import CHAINCODE_DEFINITION, Endorsement, Envelope, make_header
from chains.fabric.validator import ValidationCode
from chains.identity import Identity

__all__ = ["Channel", "CommittedBlock"]


@dataclass(frozen=True)
class CommittedBlock:
    """What every peer committed: the block's number and hash, and each transaction's code."""

    number: int
    hash: str
    tx_ids: tuple[str, ...]
    codes: tuple[ValidationCode, ...]


class Channel:
    """One channel of a `Network`. Use `gateway(identity)` to transact."""

    def __init__(self, config: ChannelConfig, peers: Sequence[Peer], *, orderer: Identity,
                 admins: Mapping[str, Identity], clock: Callable[[], int], seed: bytes) -> None:
        self.config = config
        self.name = config.name
        self.peers: tuple[Peer, ...] = tuple(peers)
        self.clock = clock
        self._admins = dict(admins)
        self._orderer_identity = orderer
        self._seed = seed
        self._counters: dict[str, int] = {}
        self._plans: dict[tuple[str, tuple[str, ...], tuple[str, ...]], list[Peer]] = {}
        self._last: CommittedBlock | None = None
        for peer in self.peers:
            peer.gossip = self._gossip
        self._catch_up()
        top = max(self.peers, key=lambda p: p.height)
        self.orderer = Orderer(config.name, orderer, config.batch_size, height=top.height,
                               last_hash=top.last_hash, deliver=self._deliver)

    # --- public API --------------------------------------------------------------------------
    @property
    def height(self) -> int:
        """Number of committed blocks (block 0 is the channel config)."""
        return self.orderer.height

    def gateway(self, identity: Identity) -> Gateway:
        return Gateway(self, identity)

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
        return self._last if self.orderer.flush() is not None else None

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

    def tx_result(self, tx_id: str) -> TxResult | None:
        """The committed code of `tx_id` (its first occurrence), from the first peer's ledger."""
        found = self.peers[0].store.transaction(tx_id)
        if found is None:
            return None
        block, index, code = found
        env = self.peers[0].store.block(block).transactions[index]  # type: ignore[union-attr]
        payload = bytes.fromhex(env.body.get("payload", "")) if isinstance(env, Envelope) else b""
        return TxResult(tx_id, block, ValidationCode(code), payload)

    def block(self, number: int) -> Block | None:
        return self.peers[0].store.block(number)

    def close(self) -> None:
        for peer in self.peers:
            peer.store.close()

    # --- used by gateways --------------------------------------------------------------------
    def next_nonce(self, identity: Identity) -> bytes:
        """Deterministic and never repeated: seed, creator, height and a per-creator counter."""
        count = self._counters.get(identity.id, 0)
        self._counters[identity.id] = count + 1
        return framed_hash(b"fedenv/fabric/nonce/v1", self._seed, self.name.encode(),
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
            ordered = sorted(holders, key=lambda p: (p.msp_id != first.msp_id,
                                                     self.config.members.index(p.msp_id),
                                                     p.name))
            plan = smallest_satisfying(first, ordered, policies)
            self._plans[key] = plan
        return plan

    def broadcast(self, envelope: Envelope, payload: bytes = b"") -> Commit:
        commit = Commit(self, envelope, payload)
        self.orderer.broadcast(envelope, commit)
        return commit

    # --- internals ---------------------------------------------------------------------------
    def _gossip(self, tx_id: str, ns: str, writes: tuple[PrivateWrite, ...], height: int) -> None:
        for peer in self.peers:
            peer.receive_private(tx_id, ns, writes, height)

    def _deliver(self, block: Block, tickets: list[Any]) -> None:
        codes = None
        for peer in self.peers:
            checks = [c.code for c in peer.commit(block)]
            if codes is None:
                codes = checks
            elif checks != codes:
                raise LedgerStateError(f"peers diverged on block {block.number} of {self.name}: "
                                       f"{self.peers[0].name} {codes}, {peer.name} {checks}")
        assert codes is not None
        for index, ticket in enumerate(tickets):
            if isinstance(ticket, Commit):
                ticket.resolve(block.number, codes[index])
        self._last = CommittedBlock(
            block.number, block.hash,
            tuple(getattr(t, "tx_id", "") for t in block.transactions), tuple(codes))

    def _catch_up(self) -> None:
        """Bring lagging peers (a run killed mid-delivery) to the tallest peer's height."""
        top = max(self.peers, key=lambda p: p.height)
        for peer in self.peers:
            for number in range(peer.height, top.height):
                block = top.store.block(number)
                if block is None:
                    raise LedgerStateError(f"{top.name} lacks block {number} of {self.name}")
                peer.commit(block)

    def _commit_definition(self, definition: ChaincodeDefinition) -> None:
        orderer = self._orderer_identity
        nonce = self.next_nonce(orderer)
        header = make_header(CHAINCODE_DEFINITION, self.name, orderer, nonce, self.clock())
        body = {"definition": definition.to_dict()}
        unsigned = Envelope(header, body, (), b"")
        approvals = tuple(Endorsement.sign(self._admins[m], unsigned.body_bytes)
                          for m in self.config.members)
        self.orderer.order_config(Envelope.create(orderer, header, body, approvals))
        last = self._last
        if last is None or last.codes[-1] is not ValidationCode.VALID:
            raise LedgerStateError(f"chaincode definition {definition.name!r} was not committed: "
                                   f"{None if last is None else last.codes}")
