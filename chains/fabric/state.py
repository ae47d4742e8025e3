"""World state of one channel at one peer: public keys, private key hashes, side store, versions.

`WorldState` is the committed state (in memory; `store.py` keeps the durable copy, and a peer
rebuilds this from it on open). `UpdateBatch` collects the writes of the valid transactions of
one block so that MVCC checks see the effect of earlier valid transactions in the same block,
then applies them all at once, including blockToLive expiry.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping

from chains.fabric.private_data import PrivateRecord
from chains.fabric.rwset import RWSet, Version

__all__ = ["HashedKey", "UpdateBatch", "WorldState"]

HashedKey = tuple[str, str, str]  # (namespace, collection, key hash)


def _in_range(key: str, start: str, end: str) -> bool:
    return key >= start and (end == "" or key < end)


class WorldState:
    """Committed state. `block_to_live` maps collection name -> blockToLive (0 = forever)."""

    def __init__(self, block_to_live: Mapping[str, int]) -> None:
        self.block_to_live = dict(block_to_live)
        self.public: dict[tuple[str, str], tuple[bytes, Version]] = {}
        self.hashed: dict[HashedKey, tuple[str, Version]] = {}
        self.private: dict[HashedKey, PrivateRecord] = {}
        self._sorted_keys: dict[str, list[str]] = {}
        self._expiry: dict[int, set[HashedKey]] = {}

    # --- reads -----------------------------------------------------------------------------
    def get(self, ns: str, key: str) -> tuple[bytes, Version] | None:
        return self.public.get((ns, key))

    def version(self, ns: str, key: str) -> Version | None:
        entry = self.public.get((ns, key))
        return None if entry is None else entry[1]

    def range(self, ns: str, start: str, end: str) -> Iterator[tuple[str, bytes, Version]]:
        """Keys of `ns` in [start, end) in order ("" as end: to the last key)."""
        keys = self._sorted_keys.get(ns, [])
        for i in range(bisect.bisect_left(keys, start), len(keys)):
            key = keys[i]
            if end and key >= end:
                break
            value, version = self.public[(ns, key)]
            yield key, value, version

    def hashed_version(self, hk: HashedKey) -> Version | None:
        entry = self.hashed.get(hk)
        return None if entry is None else entry[1]

    # --- writes (only through UpdateBatch.apply, or when loading) ----------------------------
    def set_public(self, ns: str, key: str, value: bytes | None, version: Version) -> None:
        keys = self._sorted_keys.setdefault(ns, [])
        if value is None:
            if self.public.pop((ns, key), None) is not None:
                del keys[bisect.bisect_left(keys, key)]
            return
        if (ns, key) not in self.public:
            bisect.insort(keys, key)
        self.public[(ns, key)] = (value, version)

    def set_hashed(self, hk: HashedKey, value_hash: str | None, version: Version) -> None:
        if value_hash is None:
            self.hashed.pop(hk, None)
            return
        self.hashed[hk] = (value_hash, version)
        btl = self.block_to_live.get(hk[1], 0)
        if btl > 0:
            self._expiry.setdefault(version[0] + btl + 1, set()).add(hk)

    def set_private(self, hk: HashedKey, record: PrivateRecord | None) -> None:
        if record is None:
            self.private.pop(hk, None)
        else:
            self.private[hk] = record

    def due_for_expiry(self, block: int) -> set[HashedKey]:
        return self._expiry.get(block, set())

    def forget_expiry(self, block: int) -> None:
        self._expiry.pop(block, None)


class UpdateBatch:
    """The pending writes of one block over a committed `WorldState`."""

    def __init__(self, state: WorldState, block: int) -> None:
        self.state = state
        self.block = block
        self.public: dict[tuple[str, str], tuple[bytes | None, Version]] = {}
        self.hashed: dict[HashedKey, tuple[str | None, Version]] = {}
        self.private: dict[HashedKey, PrivateRecord | None] = {}
        self.erased: set[HashedKey] = set()  # purged or expired: scrub from disk
        self.expired: list[HashedKey] = []

    def version(self, ns: str, key: str) -> Version | None:
        pending = self.public.get((ns, key))
        if pending is not None:
            return None if pending[0] is None else pending[1]
        return self.state.version(ns, key)

    def hashed_version(self, hk: HashedKey) -> Version | None:
        pending = self.hashed.get(hk)
        if pending is not None:
            return None if pending[0] is None else pending[1]
        return self.state.hashed_version(hk)

    def range_versions(self, ns: str, start: str, end: str) -> list[tuple[str, Version]]:
        """What a range query over [start, end) would find now, with versions."""
        found = {key: version for key, _, version in self.state.range(ns, start, end)}
        for (pns, key), (value, version) in self.public.items():
            if pns == ns and _in_range(key, start, end):
                if value is None:
                    found.pop(key, None)
                else:
                    found[key] = version
        return sorted(found.items())

    def reads_current(self, rw: RWSet) -> bool:
        """MVCC: every version read is still the current one."""
        ns = rw.ns
        for key, version in rw.reads.items():
            if self.version(ns, key) != version:
                return False
        for coll, reads in rw.hashed_reads.items():
            for kh, version in reads.items():
                if self.hashed_version((ns, coll, kh)) != version:
                    return False
        return True

    def ranges_unchanged(self, rw: RWSet) -> bool:
        """Phantom check: every range query would return the same keys and versions."""
        return all(self.range_versions(rw.ns, start, end) == found
                   for start, end, found in rw.ranges)

    def add(self, rw: RWSet, version: Version,
            private: Mapping[HashedKey, PrivateRecord | None] | None = None) -> None:
        """Record the writes of a valid transaction; `private` holds a member peer's plaintext
        (None for a key whose value this peer lacks or that is deleted)."""
        ns = rw.ns
        for key, value in rw.writes.items():
            self.public[(ns, key)] = (value, version)
        for coll, writes in rw.hashed_writes.items():
            for kh, (op, vh) in writes.items():
                hk = (ns, coll, kh)
                self.hashed[hk] = (vh if op == "put" else None, version)
                if op == "purge":
                    self.erased.add(hk)
        if private:
            self.private.update(private)

    def close(self) -> None:
        """Add blockToLive expiry of this block: data whose lifetime ends here is removed."""
        state = self.state
        for hk in sorted(state.due_for_expiry(self.block)):
            if hk in self.hashed:
                continue  # rewritten or deleted in this very block
            version = state.hashed_version(hk)
            btl = state.block_to_live.get(hk[1], 0)
            if version is not None and btl > 0 and version[0] + btl + 1 <= self.block:
                self.hashed[hk] = (None, (self.block, 0))
                self.expired.append(hk)
                self.erased.add(hk)

    def apply(self) -> None:
        """Write the batch into the committed state (after the durable store committed it)."""
        state = self.state
        for (ns, key), (value, version) in self.public.items():
            state.set_public(ns, key, value, version)
        for hk, (vh, version) in self.hashed.items():
            state.set_hashed(hk, vh, version)
            if vh is None:
                state.set_private(hk, None)
        for hk, record in self.private.items():
            if self.hashed.get(hk, (None,))[0] is not None:
                state.set_private(hk, record)
        state.forget_expiry(self.block)
