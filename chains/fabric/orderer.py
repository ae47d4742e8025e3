"""The ordering service: a deterministic sequencer standing in for Fabric's Raft cluster.

It gives transactions one total order (arrival order), cuts a block when `batch_size` are
pending or on an explicit `flush`, stamps it with the channel clock's time, signs its header,
stores it (`OrdererStore`) and returns it; delivering it to the peers is the channel's job, so
data flows one way: channel -> orderer, then channel -> peers. Config transactions travel alone
in their own block, as in Fabric. Like Fabric's orderer it neither executes nor validates
transactions; it refuses what it cannot parse (`MalformedError`: the bytes are re-read strictly,
as a real orderer reads them from the wire) and envelopes for another channel, and leaves
signatures to the peers' validation codes. There is no crash fault tolerance to simulate: one
process, one sequencer.
"""

from __future__ import annotations

from collections.abc import Callable

from chains.fabric.block import Block
from chains.fabric.config import ChannelConfig
from chains.fabric.errors import FabricError
from chains.fabric.orderer_store import OrdererStore
from chains.fabric.transaction import Envelope
from chains.identity import Identity

__all__ = ["Orderer"]


class Orderer:
    """Sequences envelopes of one channel into signed, hash-linked, stored blocks."""

    def __init__(self, config: ChannelConfig, identity: Identity, store: OrdererStore,
                 clock: Callable[[], int]) -> None:
        self.channel = config.name
        self.chain = config.chain_id
        self.identity = identity
        self.batch_size = config.batch_size
        self.store = store
        self.clock = clock
        self._pending: list[Envelope] = []

    @property
    def height(self) -> int:
        return self.store.height

    @property
    def pending(self) -> int:
        return len(self._pending)

    def broadcast(self, envelope: Envelope) -> Block | None:
        """Queue a transaction; returns the block if this one filled it.

        Malformed envelopes are refused here (MalformedError), as Fabric's orderer answers
        BAD_REQUEST, and so are envelopes for another channel (FabricError)."""
        if not isinstance(envelope, Envelope):
            raise TypeError(f"broadcast takes an Envelope, got {type(envelope).__name__}")
        parsed = Envelope.from_bytes(envelope.raw)
        if parsed.header["channel"] != self.channel or parsed.header["chain"] != self.chain:
            raise FabricError(f"envelope is for channel {parsed.header['channel']!r} (chain "
                              f"{parsed.header['chain'][:12]}), this orderer serves "
                              f"{self.channel!r} ({self.chain[:12]})")
        self._pending.append(parsed)
        if len(self._pending) >= self.batch_size:
            return self.flush()
        return None

    def flush(self) -> Block | None:
        """Cut a block of everything pending (None when nothing is)."""
        if not self._pending:
            return None
        block = self._cut(self._pending)  # if cutting fails, nothing pending is lost
        self._pending = []
        return block

    def order_config(self, envelope: Envelope) -> list[Block]:
        """The block of what was pending (if any), then a block holding only `envelope`."""
        first = self.flush()
        config = self._cut([Envelope.from_bytes(envelope.raw)])
        return [config] if first is None else [first, config]

    def _cut(self, envelopes: list[Envelope]) -> Block:
        timestamp = self.clock()
        if isinstance(timestamp, bool) or not isinstance(timestamp, int) \
                or timestamp < self.store.last_time:
            raise FabricError(f"the channel clock gave {timestamp!r}; block times are ints that "
                              f"never go back (last {self.store.last_time})")
        block = Block.cut(self.store.height, self.store.last_hash, timestamp, self.chain,
                          tuple(e.raw for e in envelopes), self.identity)
        block.__dict__["transactions"] = tuple(envelopes)  # parsed already; same bytes
        self.store.append(block)
        return block
