"""The ordering service: a deterministic sequencer standing in for Fabric's Raft cluster.

It gives transactions one total order (arrival order), cuts a block when `batch_size` are
pending or on an explicit `flush`, signs each block header, and delivers it to the channel's
peers. Config transactions travel alone in their own block, as in Fabric. Like Fabric's
orderer it neither executes nor validates transactions; unlike it, it only refuses malformed
envelopes and does not filter bad signatures at broadcast, so that peers' validation (and its
codes) is what keeps the ledger honest. There is no crash fault tolerance to simulate: one
process, one sequencer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chains.fabric.block import Block
from chains.fabric.errors import FabricError
from chains.fabric.transaction import Envelope
from chains.identity import Identity

__all__ = ["Deliver", "Orderer"]

Deliver = Callable[[Block, list[Any]], None]


class Orderer:
    """Sequences envelopes of one channel into signed, hash-linked blocks."""

    def __init__(self, channel: str, identity: Identity, batch_size: int, *, height: int,
                 last_hash: str, deliver: Deliver) -> None:
        self.channel = channel
        self.identity = identity
        self.batch_size = batch_size
        self.height = height
        self.last_hash = last_hash
        self.deliver = deliver
        self._pending: list[tuple[Envelope, Any]] = []

    @property
    def pending(self) -> int:
        return len(self._pending)

    def broadcast(self, envelope: Envelope, ticket: Any = None) -> Block | None:
        """Queue an endorser transaction; returns the block if this one filled it.

        Malformed envelopes are refused here (MalformedError), as Fabric's orderer answers
        BAD_REQUEST; everything else, signatures included, is for the peers to judge."""
        if not isinstance(envelope, Envelope):
            raise TypeError(f"broadcast takes an Envelope, got {type(envelope).__name__}")
        envelope.check_shape()
        if envelope.header.get("channel") != self.channel:
            raise FabricError(f"envelope is for channel {envelope.header.get('channel')!r}, "
                              f"this orderer serves {self.channel!r}")
        self._pending.append((envelope, ticket))
        if len(self._pending) >= self.batch_size:
            return self.flush()
        return None

    def flush(self) -> Block | None:
        """Cut a block of everything pending (None when nothing is)."""
        if not self._pending:
            return None
        batch, self._pending = self._pending, []
        return self._cut(batch)

    def order_config(self, envelope: Envelope) -> Block:
        """Flush pending transactions, then cut a block holding only `envelope`."""
        self.flush()
        return self._cut([(envelope, None)])

    def _cut(self, batch: list[tuple[Envelope, Any]]) -> Block:
        envelopes = [env for env, _ in batch]
        block = Block.cut(self.height, self.last_hash, tuple(e.raw for e in envelopes),
                          self.identity)
        block.__dict__["transactions"] = tuple(envelopes)  # parsed already; same bytes
        self.height += 1
        self.last_hash = block.hash
        self.deliver(block, [ticket for _, ticket in batch])
        return block
