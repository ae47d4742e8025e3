"""Read-write sets: what a simulation read (key, version) and would write, in canonical form.

A version is (block number, transaction index) of the write that produced the value, as in
Fabric; a read of a missing key records version None. Private collections appear only hashed:
(key hash, version) reads and (key hash, op, value hash) writes, ops "put", "delete", "purge".
"""

from __future__ import annotations

import re
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
    raise MalformedError(f"malformed version {str(raw)[:60]}")


_FIELDS = frozenset({"ns", "reads", "ranges", "writes", "collections"})
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
_HEX = re.compile(r"(?:[0-9a-f]{2})*\Z")


def _str(raw: Any, what: str) -> str:
    if not isinstance(raw, str):
        raise MalformedError(f"malformed {what} {str(raw)[:60]}")
    return raw


def _hex(raw: Any, what: str) -> bytes:
    if not isinstance(raw, str) or not _HEX.match(raw):
        raise MalformedError(f"malformed {what}: not lowercase hex")
    return bytes.fromhex(raw)


def _digest(raw: Any, what: str) -> str:
    if not isinstance(raw, str) or not _HEX64.match(raw):
        raise MalformedError(f"malformed {what}: not 64 lowercase hex characters")
    return raw


def _entries(raw: Any, size: int, what: str) -> list[list[Any]]:
    """`raw` if it is a list of lists of exactly `size` items."""
    if not isinstance(raw, list) or not all(isinstance(e, list) and len(e) == size for e in raw):
        raise MalformedError(f"malformed {what} list: each entry is a list of {size}")
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
        """Parse and strictly shape-check a stored read-write set; MalformedError names what is
        malformed (exact fields, lists of fixed-size entries, hex where bytes are meant)."""
        if not isinstance(data, dict) or set(data) != _FIELDS:
            raise MalformedError(f"read-write set must have exactly the fields {sorted(_FIELDS)}")
        rw = cls(ns=_str(data["ns"], "namespace"))
        for key, version in _entries(data["reads"], 2, "read"):
            rw.reads[_str(key, "read key")] = _version_in(version)
        for start, end, found in _entries(data["ranges"], 3, "range"):
            rw.ranges.append((_str(start, "range start"), _str(end, "range end"),
                              [(_str(k, "range key"), _version_in(v))
                               for k, v in _entries(found, 2, "range result")]))
        for key, value in _entries(data["writes"], 2, "write"):
            rw.writes[_str(key, "write key")] = None if value is None else _hex(value, "value")
        if not isinstance(data["collections"], dict):
            raise MalformedError("read-write set collections must be an object")
        for name, entry in data["collections"].items():
            if not isinstance(entry, dict) or set(entry) != {"reads", "writes"}:
                raise MalformedError(f"collection entry {name[:40]!r} must have reads and writes")
            reads = rw.hashed_reads.setdefault(name, {})
            for kh, version in _entries(entry["reads"], 2, "private read"):
                reads[_digest(kh, "key hash")] = _version_in(version)
            writes = rw.hashed_writes.setdefault(name, {})
            for kh, op, vh in _entries(entry["writes"], 3, "private write"):
                if op not in PRIVATE_OPS or (op == "put") != isinstance(vh, str):
                    raise MalformedError(f"malformed private write {str([kh, op, vh])[:120]}")
                writes[_digest(kh, "key hash")] = (op, None if vh is None else
                                                   _digest(vh, "value hash"))
        return rw
