"""Block headers and signed tree heads of the public ledger.

A block header is canonical JSON of `{"chain", "height", "prev", "proposer", "timestamp",
"tx_count", "tx_root"}` (hashes in hex, `chain` the ledger id); the block hash is SHA-256 of those
bytes and the proposer signs `b"fedenv/block/v2\\0" + header`. The genesis block's `prev` is 64
zeros. A signed tree head (RFC 9162's STH, in JSON) is `{"log", "root", "size", "timestamp"}` over
all transactions so far (`log` is the ledger id); the block's proposer signs
`b"fedenv/sth/v2\\0" + tree_head`. Both decode only from small, flat, canonical bytes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from chains.canonical import canonical_json, parse_canonical
from chains.errors import MalformedError
from chains.identity import Identity, verify_signature

__all__ = ["BLOCK_DOMAIN", "GENESIS_PREV", "STH_DOMAIN", "Block", "BlockHeader", "TreeHead"]

BLOCK_DOMAIN = b"fedenv/block/v2\x00"
STH_DOMAIN = b"fedenv/sth/v2\x00"
GENESIS_PREV = bytes(32)
MAX_HEADER_BYTES = 1024


def _int(fields: dict, name: str) -> int:
    value = fields[name]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedError(f"{name} must be a non-negative int, got {value!r}")
    return value


def _hash(fields: dict, name: str) -> bytes:
    value = fields[name]
    if not isinstance(value, str) or len(value) != 64 or value != value.lower():
        raise MalformedError(f"{name} must be 64 lowercase hex characters")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise MalformedError(f"{name} must be 64 lowercase hex characters") from None


def _text(fields: dict, name: str) -> str:
    value = fields[name]
    if not isinstance(value, str) or not value:
        raise MalformedError(f"{name} must be a non-empty string")
    return value


def _load(data: bytes, keys: set[str], what: str) -> dict:
    fields = parse_canonical(data, max_bytes=MAX_HEADER_BYTES, max_depth=1, what=what)
    if not isinstance(fields, dict) or set(fields) != keys:
        raise MalformedError(f"{what} must have exactly {sorted(keys)}")
    return fields


@dataclass(frozen=True)
class BlockHeader:
    chain: str
    height: int
    prev: bytes
    tx_root: bytes
    tx_count: int
    timestamp: int
    proposer: str  # identity id of the proposer (hex SHA-256 of its certificate)

    def encode(self) -> bytes:
        return canonical_json({"chain": self.chain, "height": self.height,
                               "prev": self.prev.hex(), "proposer": self.proposer,
                               "timestamp": self.timestamp, "tx_count": self.tx_count,
                               "tx_root": self.tx_root.hex()})

    @property
    def hash(self) -> bytes:
        return hashlib.sha256(self.encode()).digest()

    def sign(self, proposer: Identity) -> bytes:
        return proposer.sign(BLOCK_DOMAIN + self.encode())

    @classmethod
    def decode(cls, data: bytes) -> BlockHeader:
        """Parse stored header bytes; MalformedError says what is wrong."""
        f = _load(data, {"chain", "height", "prev", "proposer", "timestamp", "tx_count",
                         "tx_root"}, "block header")
        return cls(_text(f, "chain"), _int(f, "height"), _hash(f, "prev"), _hash(f, "tx_root"),
                   _int(f, "tx_count"), _int(f, "timestamp"), _text(f, "proposer"))


@dataclass(frozen=True)
class TreeHead:
    """A signed tree head: log `log` had `size` transactions with Merkle root `root` at `timestamp`."""

    log: str
    size: int
    root: bytes
    timestamp: int
    signature: bytes = b""

    def encode(self) -> bytes:
        return canonical_json({"log": self.log, "root": self.root.hex(), "size": self.size,
                               "timestamp": self.timestamp})

    def signed_by(self, signer: Identity) -> TreeHead:
        sig = signer.sign(STH_DOMAIN + self.encode())
        return TreeHead(self.log, self.size, self.root, self.timestamp, sig)

    def verify(self, public_key: bytes) -> bool:
        """True when the signature is the given signer's Ed25519 signature of this tree head."""
        return verify_signature(public_key, STH_DOMAIN + self.encode(), self.signature)

    @classmethod
    def decode(cls, data: bytes, signature: bytes = b"") -> TreeHead:
        """Parse stored tree-head bytes; MalformedError says what is wrong."""
        f = _load(data, {"log", "root", "size", "timestamp"}, "tree head")
        if type(signature) is not bytes or len(signature) > 64:
            raise MalformedError("tree head signature must be at most 64 bytes")
        return cls(_text(f, "log"), _int(f, "size"), _hash(f, "root"), _int(f, "timestamp"),
                   signature)


@dataclass(frozen=True)
class Block:
    header: BlockHeader
    hash: bytes
    signature: bytes
    tree_head: TreeHead
    tx_ids: tuple[str, ...]

    @property
    def height(self) -> int:
        return self.header.height
