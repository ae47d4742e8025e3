"""Blocks of a channel, hash-linked as in Fabric: header = (number, previous hash, data hash).

The block hash is SHA-256 of the canonical JSON header (Fabric hashes an ASN.1 encoding of the
same three fields). The data hash is SHA-256 over the SHA-256 of each envelope, in order. The
ordering service signs the header bytes. Validation codes are block metadata, as in Fabric: each
committing peer computes them, they are not covered by the block hash, and a verifier recomputes
them by replaying validation.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from chains.fabric.codec import ZERO_HASH, canonical, sha256, sha256_hex
from chains.fabric.transaction import Envelope
from chains.identity import Identity

__all__ = ["Block", "data_hash", "header_bytes"]


def data_hash(envelopes: tuple[bytes, ...] | list[bytes]) -> str:
    return sha256_hex(b"".join(sha256(e) for e in envelopes))


def header_bytes(number: int, previous_hash: str, data_hash_hex: str) -> bytes:
    return canonical({"number": number, "previous_hash": previous_hash, "data_hash": data_hash_hex})


@dataclass(frozen=True)
class Block:
    """A block as the orderer cut it: header fields, envelope bytes, orderer signature."""

    number: int
    previous_hash: str
    data_hash: str
    envelopes: tuple[bytes, ...]
    orderer: bytes
    signature: bytes

    @classmethod
    def cut(cls, number: int, previous_hash: str, envelopes: tuple[bytes, ...],
            orderer: Identity) -> Block:
        digest = data_hash(envelopes)
        signature = orderer.sign(header_bytes(number, previous_hash, digest))
        return cls(number, previous_hash, digest, envelopes, orderer.cert_pem, signature)

    @cached_property
    def header_bytes(self) -> bytes:
        return header_bytes(self.number, self.previous_hash, self.data_hash)

    @cached_property
    def hash(self) -> str:
        return sha256_hex(self.header_bytes)

    @cached_property
    def transactions(self) -> tuple[Envelope | ValueError, ...]:
        """Parsed envelopes; a malformed one is kept as its ValueError (it will be BAD_PAYLOAD)."""
        out: list[Envelope | ValueError] = []
        for raw in self.envelopes:
            try:
                out.append(Envelope.from_bytes(raw))
            except ValueError as exc:
                out.append(exc)
        return tuple(out)

    @property
    def is_genesis(self) -> bool:
        return self.number == 0 and self.previous_hash == ZERO_HASH
