"""Block headers, signed tree heads and the logical clock of the public ledger.

A block header is canonical JSON of `{"height", "prev", "proposer", "timestamp", "tx_count",
"tx_root"}` (hashes in hex); the block hash is SHA-256 of those bytes and the proposer signs
`b"fedenv/block/v1\\0" + header`. The genesis block's `prev` is 64 zeros.

A signed tree head (RFC 9162's STH, in JSON) is `{"log", "size", "root", "timestamp"}` over all
transactions so far; the block's proposer signs `b"fedenv/sth/v1\\0" + tree_head`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

from chains.identity import Identity, verify_signature
from chains.transactions import canonical_json

__all__ = ["BLOCK_DOMAIN", "GENESIS_PREV", "STH_DOMAIN", "Block", "BlockHeader", "Clock",
           "LogicalClock", "TreeHead"]

BLOCK_DOMAIN = b"fedenv/block/v1\x00"
STH_DOMAIN = b"fedenv/sth/v1\x00"
GENESIS_PREV = bytes(32)

Clock = Callable[[], int]


class LogicalClock:
    """A deterministic clock: start, start + step, start + 2 * step, ... (never the wall clock)."""

    def __init__(self, start: int = 0, step: int = 1) -> None:
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        self.now, self.step = start, step

    def __call__(self) -> int:
        now = self.now
        self.now += self.step
        return now


def _int(fields: dict, name: str) -> int:
    value = fields.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    return value


def _hash(fields: dict, name: str) -> bytes:
    value = fields.get(name)
    if not isinstance(value, str) or len(value) != 64:
        raise ValueError(f"{name} must be 64 hex characters")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise ValueError(f"{name} must be 64 hex characters") from None


def _load(data: bytes, keys: set[str], what: str) -> dict:
    try:
        fields = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{what} is not JSON ({exc})") from None
    if not isinstance(fields, dict) or set(fields) != keys:
        raise ValueError(f"{what} must have exactly {sorted(keys)}")
    if canonical_json(fields) != bytes(data):
        raise ValueError(f"{what} is not in canonical JSON form")
    return fields


@dataclass(frozen=True)
class BlockHeader:
    height: int
    prev: bytes
    tx_root: bytes
    tx_count: int
    timestamp: int
    proposer: str  # identity id of the proposer (hex SHA-256 of its certificate)

    def encode(self) -> bytes:
        return canonical_json({"height": self.height, "prev": self.prev.hex(),
                               "proposer": self.proposer, "timestamp": self.timestamp,
                               "tx_count": self.tx_count, "tx_root": self.tx_root.hex()})

    @property
    def hash(self) -> bytes:
        return hashlib.sha256(self.encode()).digest()

    def sign(self, proposer: Identity) -> bytes:
        return proposer.sign(BLOCK_DOMAIN + self.encode())

    def verify(self, public_key: bytes, signature: bytes) -> bool:
        return verify_signature(public_key, BLOCK_DOMAIN + self.encode(), signature)

    @classmethod
    def decode(cls, data: bytes) -> BlockHeader:
        f = _load(data, {"height", "prev", "proposer", "timestamp", "tx_count", "tx_root"}, "header")
        if not isinstance(f["proposer"], str) or not f["proposer"]:
            raise ValueError("proposer must be a non-empty string")
        return cls(_int(f, "height"), _hash(f, "prev"), _hash(f, "tx_root"), _int(f, "tx_count"),
                   _int(f, "timestamp"), f["proposer"])


@dataclass(frozen=True)
class TreeHead:
    """A signed tree head: the log `log` had `size` transactions with Merkle root `root` at `timestamp`."""

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
        f = _load(data, {"log", "root", "size", "timestamp"}, "tree head")
        if not isinstance(f["log"], str) or not f["log"]:
            raise ValueError("log must be a non-empty string")
        return cls(f["log"], _int(f, "size"), _hash(f, "root"), _int(f, "timestamp"),
                   bytes(signature))


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
