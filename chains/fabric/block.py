"""Blocks of a channel, hash-linked as in Fabric, with the orderer's time and the channel's id.

The header is canonical JSON of `{"chain", "data_hash", "number", "previous_hash", "timestamp"}`
(Fabric hashes an ASN.1 encoding of number, previous hash and data hash; the chain id binds the
block to one channel and the timestamp is the ledger time at which certificates are judged). The
block hash is SHA-256 of the header bytes; the data hash is SHA-256 over the SHA-256 of each
envelope, in order. The ordering service signs the header bytes. Validation codes are block
metadata, as in Fabric: each committing peer computes them, they are not covered by the block
hash, and a verifier recomputes them by replaying validation.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from chains.canonical import canonical_json, parse_canonical
from chains.errors import MalformedError
from chains.fabric.codec import sha256, sha256_hex
from chains.fabric.transaction import Envelope
from chains.identity import Identity

__all__ = ["Block", "BlockHeader", "data_hash"]

_HEADER_KEYS = frozenset({"chain", "data_hash", "number", "previous_hash", "timestamp"})


def data_hash(envelopes: tuple[bytes, ...] | list[bytes]) -> str:
    return sha256_hex(b"".join(sha256(e) for e in envelopes))


@dataclass(frozen=True)
class BlockHeader:
    """The signed part of a block."""

    number: int
    previous_hash: str
    data_hash: str
    timestamp: int
    chain: str

    def encode(self) -> bytes:
        return canonical_json({"chain": self.chain, "data_hash": self.data_hash,
                               "number": self.number, "previous_hash": self.previous_hash,
                               "timestamp": self.timestamp})

    @classmethod
    def decode(cls, data: bytes) -> BlockHeader:
        """Parse stored header bytes (small, flat, canonical); MalformedError otherwise."""
        f = parse_canonical(data, max_bytes=1024, max_depth=1, what="block header")
        if not isinstance(f, dict) or set(f) != _HEADER_KEYS:
            raise MalformedError(f"block header must have exactly {sorted(_HEADER_KEYS)}")
        for name in ("number", "timestamp"):
            if isinstance(f[name], bool) or not isinstance(f[name], int) or f[name] < 0:
                raise MalformedError(f"block header {name} must be an int >= 0")
        for name in ("chain", "data_hash", "previous_hash"):
            value = f[name]
            if not isinstance(value, str) or len(value) != 64 or value.strip("0123456789abcdef"):
                raise MalformedError(f"block header {name} must be 64 lowercase hex characters")
        return cls(f["number"], f["previous_hash"], f["data_hash"], f["timestamp"], f["chain"])


@dataclass(frozen=True)
class Block:
    """A block as the orderer cut it: header, envelope bytes, orderer certificate and signature."""

    header: BlockHeader
    envelopes: tuple[bytes, ...]
    orderer: bytes
    signature: bytes

    @classmethod
    def cut(cls, number: int, previous_hash: str, timestamp: int, chain: str,
            envelopes: tuple[bytes, ...], orderer: Identity) -> Block:
        header = BlockHeader(number, previous_hash, data_hash(envelopes), timestamp, chain)
        return cls(header, envelopes, orderer.cert_pem, orderer.sign(header.encode()))

    @property
    def number(self) -> int:
        return self.header.number

    @property
    def previous_hash(self) -> str:
        return self.header.previous_hash

    @property
    def timestamp(self) -> int:
        return self.header.timestamp

    @cached_property
    def header_bytes(self) -> bytes:
        return self.header.encode()

    @cached_property
    def hash(self) -> str:
        return sha256_hex(self.header_bytes)

    @cached_property
    def transactions(self) -> tuple[Envelope | MalformedError, ...]:
        """Parsed envelopes; a malformed one is kept as its error (it will be BAD_PAYLOAD)."""
        out: list[Envelope | MalformedError] = []
        for raw in self.envelopes:
            try:
                out.append(Envelope.from_bytes(raw))
            except MalformedError as exc:
                out.append(exc)
        return tuple(out)
