"""Read-write sets: what a simulation read (key, version) and would write, in canonical form.

A version is (block number, transaction index) of the write that produced the value, as in
Fabric; a read of a missing key records version None. Private collections appear only hashed:
(key hash, version) reads and (key hash, op, value hash) writes, ops "put", "delete", "purge".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chains.fabric.errors import MalformedError

__all__ = ["PRIVATE_OPS", "RWSet", "Version"]

Version = tuple[int, int]
PRIVATE_OPS = ("put", "delete", "purge")


def _version_out(version: Version | None) -> list[int] | None:
    return None if version is None else [version[0], version[1]]


def _version_in(raw: Any) -> Version | None:
    if raw is None:
        return None
    if (isinstance(raw, list) and len(raw) == 2
            and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in raw)):
        return (raw[0], raw[1])
    raise MalformedError(f"malformed version {raw!r}")


def _str(raw: Any, what: str) -> str:
    if not isinstance(raw, str):
        raise MalformedError(f"malformed {what} {raw!r}")
    return raw


@dataclass
class RWSet:
    """The read-write set of one transaction on one chaincode namespace `ns`."""

    ns: str
    reads: dict[str, Version | None] = field(default_factory=dict)
    ranges: list[tuple[str, str, list[tuple[str, Version]]]] = field(default_factory=list)
    writes: dict[str, bytes | None] = field(default_factory=dict)
    hashed_reads: dict[str, dict[str, Version | None]] = field(default_factory=dict)
    hashed_writes: dict[str, dict[str, tuple[str, str | None]]] = field(default_factory=dict)

    def collections_written(self) -> tuple[str, ...]:
        return tuple(sorted(c for c, w in self.hashed_writes.items() if w))

    def to_dict(self) -> dict[str, Any]:
        collections = {}
        for name in sorted(set(self.hashed_reads) | set(self.hashed_writes)):
            reads = self.hashed_reads.get(name, {})
            writes = self.hashed_writes.get(name, {})
            collections[name] = {
                "reads": [[kh, _version_out(reads[kh])] for kh in sorted(reads)],
                "writes": [[kh, writes[kh][0], writes[kh][1]] for kh in sorted(writes)],
            }
        return {
            "ns": self.ns,
            "reads": [[k, _version_out(self.reads[k])] for k in sorted(self.reads)],
            "ranges": [[start, end, [[k, _version_out(v)] for k, v in found]]
                       for start, end, found in self.ranges],
            "writes": [[k, None if self.writes[k] is None else self.writes[k].hex()]  # type: ignore[union-attr]
                       for k in sorted(self.writes)],
            "collections": collections,
        }

    @classmethod
    def from_dict(cls, data: Any) -> RWSet:
        """Parse and shape-check a stored read-write set; ValueError names what is malformed."""
        if not isinstance(data, dict):
            raise MalformedError("read-write set must be an object")
        rw = cls(ns=_str(data.get("ns"), "namespace"))
        for key, version in data.get("reads", []):
            rw.reads[_str(key, "read key")] = _version_in(version)
        for start, end, found in data.get("ranges", []):
            rw.ranges.append((_str(start, "range start"), _str(end, "range end"),
                              [(_str(k, "range key"), _version_in(v)) for k, v in found]))
        for key, value in data.get("writes", []):
            rw.writes[_str(key, "write key")] = None if value is None else bytes.fromhex(value)
        for name, entry in (data.get("collections") or {}).items():
            reads = rw.hashed_reads.setdefault(_str(name, "collection"), {})
            for kh, version in entry.get("reads", []):
                reads[_str(kh, "key hash")] = _version_in(version)
            writes = rw.hashed_writes.setdefault(name, {})
            for kh, op, vh in entry.get("writes", []):
                if op not in PRIVATE_OPS or (op == "put") != isinstance(vh, str):
                    raise MalformedError(f"malformed private write {[kh, op, vh]!r}")
                writes[_str(kh, "key hash")] = (op, vh)
        return rw
