"""Private data: salted hashes on the ledger, values in member peers' side stores.

On the channel ledger a private write appears as
    key hash   = SHA-256(key_salt || key)    key_salt: 16 bytes per collection, in the config
    value hash = SHA-256(salt || value)      salt: 16 bytes per write, known only to members
The per-write salt derives from a secret the submitting client puts beside the proposal (never
on the ledger), so guessing a low-entropy value from its on-ledger hash is not possible, while
anyone given (value, salt) can check it against the hash that stays on the ledger forever, even
after the value itself expired (blockToLive) or was purged from every side store.

Values reach member peers the way Fabric gossips them: the endorsing peer hands the plaintext
write set to every member peer's transient store; at commit each member moves it to its side
store after checking it against the hashes in the block.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from chains.fabric.codec import framed_hash, sha256

__all__ = ["SALT_BYTES", "PrivateRecord", "PrivateWrite", "TransientStore", "key_hash",
           "matches_on_ledger", "value_hash", "value_salt"]

SALT_BYTES = 16


def key_hash(key_salt: bytes, key: str) -> str:
    """Hex on-ledger hash of a private key."""
    return sha256(key_salt, key.encode("utf-8")).hex()


def value_hash(salt: bytes, value: bytes) -> str:
    """Hex on-ledger hash of a private value."""
    return sha256(salt, value).hex()


def value_salt(salt_seed: bytes, ns: str, collection: str, key: str) -> bytes:
    """The salt of one private write, from the client's per-transaction secret seed."""
    return framed_hash(b"fedenv/fabric/private-salt/v1", salt_seed, ns.encode(),
                       collection.encode(), key.encode())[:SALT_BYTES]


def matches_on_ledger(*, key_salt: bytes, key: str, value: bytes, salt: bytes,
                      on_ledger_key_hash: str, on_ledger_value_hash: str) -> bool:
    """True when (key, value, salt) is what the on-ledger hashes commit to."""
    return (hmac.compare_digest(key_hash(key_salt, key), on_ledger_key_hash)
            and hmac.compare_digest(value_hash(salt, value), on_ledger_value_hash))


@dataclass(frozen=True)
class PrivateWrite:
    """A plaintext private write from a simulation; op is "put", "delete" or "purge"."""

    collection: str
    key: str
    op: str
    value: bytes | None = None
    salt: bytes | None = None


@dataclass(frozen=True)
class PrivateRecord:
    """A value in a member peer's side store, with the salt and the version that wrote it."""

    key: str
    value: bytes
    salt: bytes
    version: tuple[int, int]


class TransientStore:
    """A peer's holding area for private write sets of endorsed, not yet committed transactions.

    Entries leave when their transaction commits (valid or not) or after `retention` blocks.
    """

    def __init__(self, retention: int = 1000) -> None:
        self.retention = retention
        self._entries: dict[str, tuple[int, str, tuple[PrivateWrite, ...]]] = {}

    def put(self, tx_id: str, ns: str, writes: tuple[PrivateWrite, ...], height: int) -> None:
        self._entries[tx_id] = (height, ns, writes)

    def pop(self, tx_id: str) -> tuple[str, tuple[PrivateWrite, ...]] | None:
        entry = self._entries.pop(tx_id, None)
        return None if entry is None else (entry[1], entry[2])

    def expire(self, height: int) -> None:
        stale = [t for t, (h, _, _) in self._entries.items() if h + self.retention < height]
        for tx_id in stale:
            del self._entries[tx_id]

    def __len__(self) -> int:
        return len(self._entries)
