"""A peer on one channel: endorses proposals by simulation, validates and commits blocks.

Each peer keeps its own MSP copy (built from the channel config, so certificate checks are cached
per peer), its own world state, side store, transient store and SQLite ledger, and validates
every block independently: nothing is shared between peers except the blocks themselves. A peer
calls nothing back: the channel hands it blocks and other peers' private writes, and takes the
private writes of its endorsements from the response it returns. Reopening a ledger file
replays it (`chains.fabric.replay`); a file whose derived state disagrees with its signed
blocks is refused (LedgerStateError).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from chains.canonical import canonical_json
from chains.errors import IdentityError, MalformedError
from chains.fabric.block import Block
from chains.fabric.chaincode import ChaincodeFunction, ChaincodeStub, Creator, PrivateScope
from chains.fabric.codec import ZERO_HASH, encode_payload, sha256
from chains.fabric.config import ChannelConfig
from chains.fabric.errors import (
    AccessDeniedError,
    ChaincodeError,
    EndorsementError,
    FabricError,
    LedgerStateError,
)
from chains.fabric.policy import EndorsementPolicy
from chains.fabric.private_data import (
    PrivateRecord,
    PrivateWrite,
    TransientStore,
    key_hash,
    value_hash,
)
from chains.fabric.replay import check_derived, replay_blocks
from chains.fabric.rwset import RWSet, Version
from chains.fabric.snapshot import Snapshot
from chains.fabric.state import HashedKey, WorldState
from chains.fabric.store import LedgerStore
from chains.fabric.transaction import (
    ENDORSER_TX,
    Endorsement,
    Envelope,
    SignedProposal,
    tx_id_of,
    used_id,
)
from chains.fabric.validator import ChannelValidator, TxCheck
from chains.identity import Identity
from chains.msp import MSP

__all__ = ["Peer", "ProposalResponse"]

_REMEMBERED_ENDORSEMENTS = 100_000


@dataclass(frozen=True)
class ProposalResponse:
    """One peer's signed simulation result. `body_bytes` is what the endorsement signs."""

    peer: str
    body: dict
    body_bytes: bytes
    endorsement: Endorsement
    payload: bytes
    rwset: RWSet
    private_reads: frozenset[str]  # collections whose values the simulation read
    private_writes: tuple[PrivateWrite, ...] = ()  # plaintext, for member peers only


class Peer:
    """`identity` (role peer) of a member organization, joined to the channel of `config`."""

    def __init__(self, identity: Identity, config: ChannelConfig, store: LedgerStore) -> None:
        self.identity = identity
        self.name = identity.name
        self.msp_id = identity.msp_id
        self.config = config
        self.store = store
        self.msp = MSP.from_dict(config.msp)
        self.validator = ChannelValidator(config, self.msp, own_signature=self._signed_by_me)
        self._endorsed: dict[bytes, bytes] = {}  # own endorsement signature -> digest of message
        self.state = WorldState({c.name: c.block_to_live for c in config.collections})
        self.tx_ids: set[str] = set()  # the used tx ids, as kept (`used_id`: 16 bytes)
        self.height, self.last_hash, self.last_time = 0, ZERO_HASH, 0
        if store.height():
            self._reopen()
        self.transient = TransientStore()
        self.chaincodes: dict[str, dict[str, ChaincodeFunction]] = {}
        self.missing_private: list[tuple[str, str]] = []  # (tx_id, collection) lacking values
        policies = {c.name: EndorsementPolicy(c.member_policy) for c in config.collections}
        self.member_of = frozenset(n for n, p in policies.items() if self.msp_id in p.msp_ids())
        self.scope = PrivateScope(
            collections={c.name: c for c in config.collections}, member_policies=policies,
            key_salts={n: bytes.fromhex(s) for n, s in config.key_salts.items()},
            peer_msp_id=self.msp_id, peer_name=self.name)

    def _reopen(self) -> None:
        """Rebuild everything derived from the stored blocks; refuse a file that disagrees."""
        try:
            replay = replay_blocks(self.store.conn)
            problems = replay.problems + check_derived(self.store.conn, replay)
        except MalformedError as exc:  # e.g. a BLOB turned into text that is not UTF-8
            raise LedgerStateError(f"{self.store.path}: a stored row is garbled ({exc})") \
                from None
        if replay.config is not None and replay.config.chain_id != self.config.chain_id:
            raise LedgerStateError(f"{self.store.path} holds another chain than channel "
                                   f"{self.config.name!r}")
        if problems:
            first = problems[0]
            where = "file" if first.block is None else f"block {first.block}"
            raise LedgerStateError(f"{self.store.path}: the stored state disagrees with the "
                                   f"signed blocks ({len(problems)} problem(s); first at {where}:"
                                   f" {first.reason}: {first.detail})")
        assert replay.state is not None and replay.validator is not None
        self.state = replay.state
        for hk, record in self.store.private_records():
            self.state.set_private(hk, record)
        self.validator.definitions = dict(replay.validator.definitions)
        self.tx_ids = replay.seen
        self.height, self.last_hash, self.last_time = (replay.height, replay.last_hash,
                                                       replay.last_time)

    def install(self, chaincode: str, functions: Mapping[str, ChaincodeFunction]) -> None:
        self.chaincodes[chaincode] = dict(functions)

    # --- endorsement -------------------------------------------------------------------------
    def _creator(self, proposal: SignedProposal) -> Creator:
        """The validated creator of a well-formed, correctly signed proposal for this channel."""
        if not isinstance(proposal, SignedProposal):
            raise TypeError(f"a peer endorses a SignedProposal, got {type(proposal).__name__}")
        header = proposal.header
        try:
            proposal.check_shape()
            nonce = bytes.fromhex(header["nonce"])
            signed = proposal.signed_bytes()
        except MalformedError as exc:
            raise EndorsementError(f"peer {self.name}: malformed proposal: {exc}") from None
        if header["type"] != ENDORSER_TX or header["channel"] != self.config.name \
                or header["chain"] != self.config.chain_id:
            raise AccessDeniedError(f"peer {self.name}: proposal is not an endorser transaction "
                                    f"for channel {self.config.name!r} (chain "
                                    f"{self.config.chain_id[:12]})")
        at = header["timestamp"]  # the client's time; validation judges at the block's time
        try:
            msp_id, role = self.msp.verify(proposal.creator, signed, proposal.signature, at=at)
            if msp_id not in self.validator.members:
                raise IdentityError("unknown organization", f"{msp_id!r} is not a channel member")
        except IdentityError as exc:
            raise AccessDeniedError(f"peer {self.name} refused the proposal creator: {exc}") \
                from None
        if tx_id_of(nonce, proposal.creator) != proposal.tx_id:
            raise EndorsementError(f"peer {self.name}: tx_id is not SHA-256(nonce || creator)")
        return Creator(msp_id, role, proposal.creator)

    def _simulate(self, proposal: SignedProposal, creator: Creator | None = None
                  ) -> tuple[ChaincodeStub, bytes]:
        creator = creator or self._creator(proposal)
        chaincode, fn_name = proposal.header["chaincode"], proposal.header["fn"]
        if chaincode not in self.validator.definitions:
            raise ChaincodeError(f"chaincode {chaincode!r} is not defined on channel "
                                 f"{self.config.name!r}")
        functions = self.chaincodes.get(chaincode)
        if functions is None:
            raise ChaincodeError(f"chaincode {chaincode!r} is not installed on peer {self.name}")
        fn = functions.get(fn_name)
        if fn is None:
            raise ChaincodeError(f"chaincode {chaincode!r} has no function {fn_name!r} "
                                 f"(has: {sorted(functions)})")
        stub = ChaincodeStub(proposal, creator, self.state, self.scope)
        try:
            result = fn(stub, *proposal.args)
            payload = encode_payload(result)
        except FabricError:
            raise
        except Exception as exc:
            raise ChaincodeError(f"chaincode {chaincode}.{fn_name} failed on peer {self.name}: "
                                 f"{type(exc).__name__}: {exc}") from exc
        return stub, payload

    def endorse(self, proposal: SignedProposal) -> ProposalResponse:
        """Simulate and sign; writes nothing. The response carries the simulation's private
        plaintext (never signed, never ordered) for the channel to hand to member peers."""
        creator = self._creator(proposal)
        if used_id(proposal.tx_id) in self.tx_ids:
            raise EndorsementError(f"peer {self.name}: tx_id {proposal.tx_id} was already used")
        stub, payload = self._simulate(proposal, creator)
        body = {"proposal_hash": proposal.proposal_hash,
                "sequence": self.validator.definitions[stub.rwset.ns].sequence,
                "rwset": stub.rwset.to_dict(), "status": 200, "payload": payload.hex()}
        body_bytes = canonical_json(body)
        endorsement = Endorsement.sign(self.identity, body_bytes)
        if len(self._endorsed) >= _REMEMBERED_ENDORSEMENTS:
            del self._endorsed[next(iter(self._endorsed))]  # the oldest
        self._endorsed[endorsement.signature] = sha256(
            Endorsement.signed_bytes(body_bytes, self.identity.cert_pem))
        return ProposalResponse(self.name, body, body_bytes, endorsement, payload, stub.rwset,
                                frozenset(stub.private_reads),
                                tuple(stub.private_writes.values()))

    def _signed_by_me(self, endorsement: Endorsement, signed: bytes) -> bool:
        """True for an endorsement this peer made over exactly `signed` (Ed25519 signatures are
        deterministic, so re-verifying one's own signature proves nothing new)."""
        digest = self._endorsed.pop(endorsement.signature, None)
        return (digest is not None and endorsement.endorser == self.identity.cert_pem
                and digest == sha256(signed))

    def evaluate(self, proposal: SignedProposal) -> bytes:
        """Run a query: simulate and return the payload; nothing is signed or ordered."""
        return self._simulate(proposal)[1]

    def receive_private(self, tx_id: str, ns: str, writes: tuple[PrivateWrite, ...],
                        height: int) -> None:
        """Keep another peer's private writes of member collections until the block commits."""
        mine = tuple(w for w in writes if w.collection in self.member_of)
        if mine:
            self.transient.put(tx_id, ns, mine, height)

    # --- commit ------------------------------------------------------------------------------
    def _private_lookup(self, env: Envelope, version: Version
                        ) -> dict[HashedKey, PrivateRecord | None]:
        """This peer's plaintext for the valid transaction's member-collection puts."""
        out: dict[HashedKey, PrivateRecord | None] = {}
        rw = env.rwset
        entry = self.transient.pop(env.tx_id)
        plain = {} if entry is None or entry[0] != rw.ns else {
            (w.collection, key_hash(self.scope.key_salts[w.collection], w.key)): w
            for w in entry[1]}
        for coll, writes in rw.hashed_writes.items():
            if coll not in self.member_of:
                continue
            for kh, (op, vh) in writes.items():
                if op != "put":
                    continue
                w = plain.get((coll, kh))
                if w is None or w.value is None or w.salt is None \
                        or value_hash(w.salt, w.value) != vh:
                    self.missing_private.append((env.tx_id, coll))
                    out[(rw.ns, coll, kh)] = None
                else:
                    out[(rw.ns, coll, kh)] = PrivateRecord(w.key, w.value, w.salt, version)
        return out

    def check_block(self, block: Block) -> None:
        """The block is the next one of this chain, its time does not go back and the orderer
        signed it (valid at that time); else LedgerStateError."""
        if not isinstance(block, Block) or block.number != self.height \
                or block.previous_hash != self.last_hash:
            raise LedgerStateError(f"peer {self.name}: block {getattr(block, 'number', '?')} "
                                   f"does not extend height {self.height} "
                                   f"(hash {self.last_hash[:12]})")
        if block.header.chain != self.config.chain_id or block.timestamp < self.last_time:
            raise LedgerStateError(f"peer {self.name}: block {block.number} names another "
                                   f"chain or goes back in time")
        try:
            msp_id, _ = self.msp.verify(block.orderer, block.header_bytes, block.signature,
                                        at=block.timestamp, role="orderer")
            if msp_id != self.config.orderer_msp_id:
                raise IdentityError("unknown organization", f"{msp_id!r} is not the orderer")
        except IdentityError as exc:
            raise LedgerStateError(f"peer {self.name}: block {block.number} orderer signature: "
                                   f"{exc}") from None

    def commit(self, block: Block) -> list[TxCheck]:
        """Validate every transaction, persist block + codes + valid writes atomically."""
        self.check_block(block)
        result = self.validator.validate_block(block, self.state, self.tx_ids,
                                               self._private_lookup)
        self.store.commit_block(block, result)
        result.batch.apply()
        self.validator.apply(result)
        for index in result.claimed:
            self.tx_ids.add(used_id(block.transactions[index].tx_id))  # type: ignore[union-attr]
        for env in block.transactions:
            if isinstance(env, Envelope):
                self.transient.pop(env.tx_id)
        self.height = block.number + 1
        self.last_hash = block.hash
        self.last_time = block.timestamp
        self.transient.expire(self.height)
        return result.checks

    def snapshot(self) -> Snapshot:
        """Take a ledger snapshot at this peer's height (Fabric 2.3+) and drop its copies of
        the blocks below it, but the genesis (`chains.fabric.snapshot`); the orderer keeps
        them. The peer then starts from the snapshot when its file is reopened."""
        if self.height < 1:
            raise LedgerStateError(f"peer {self.name}: no block to take a snapshot at")
        snapshot = Snapshot.take(self.height, self.last_hash, self.last_time, self.state,
                                 self.validator.definitions, self.tx_ids)
        self.store.take_snapshot(snapshot)
        return snapshot

    def private_record(self, chaincode: str, collection: str, key: str) -> PrivateRecord | None:
        """This peer's side-store record (value, salt, version), if it holds one."""
        salt = self.scope.key_salts.get(collection)
        if salt is None:
            raise ChaincodeError(f"no private data collection {collection!r}")
        return self.state.private.get((chaincode, collection, key_hash(salt, key)))
