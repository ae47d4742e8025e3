"""Offline verification of ledger files and run folders (`python -m chains verify PATH`).

A public ledger is replayed block by block from the file alone (the genesis block holds the
consortium's CA certificates): hash links, block and tree-head signatures, every transaction's
signature and identity (revocations apply from their position in the log on), nonces, Merkle roots,
the stored Merkle nodes, and tree heads that only grow. Rows are streamed, so memory stays flat.
Fabric-style channel files are handed to `chains.fabric.verify_channel_file`. In a run folder, each
transaction payload naming an `"artifact"` (a path relative to the folder that holds the ledger
file, so run folders nest: `runs/<name>/env/public.db` resolves against `runs/<name>/env/`) and its
`"digest"` is checked against the SHA-256 of that file.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chains import store
from chains.merkle import EMPTY_ROOT, range_hash
from chains.validation import LedgerState, Violation, check_block

__all__ = ["LEDGER_SUFFIXES", "Problem", "VerifyReport", "verify_ledger_file", "verify_path"]

LEDGER_SUFFIXES = (".db", ".sqlite")


@dataclass
class Problem:
    """One thing that does not verify: the block (height or number) it is in, a short reason code."""

    block: int | None
    reason: str
    detail: str = ""


@dataclass
class VerifyReport:
    """The outcome of verifying one ledger file."""

    path: str
    kind: str
    ok: bool
    blocks: int
    transactions: int
    problems: list[Problem] = field(default_factory=list)
    head: str = ""  # e.g. "size=120 root=ab12..." of the last verified tree head

    def summary(self) -> str:
        status = "OK  " if self.ok else "FAIL"
        line = f"{status} {self.kind:<15} {self.path}  blocks={self.blocks} txs={self.transactions}"
        if self.head:
            line += f"  {self.head}"
        for p in self.problems:
            where = f"block {p.block}" if p.block is not None else "file"
            line += f"\n     {where}: {p.reason}" + (f" ({p.detail})" if p.detail else "")
        return line


_BLOCK_TYPES = (int, bytes, bytes, bytes, int, bytes, bytes)
_TX_TYPES = (int, int, bytes, str, int, str, bytes, bytes)
_NODE_TYPES = (int, int, bytes)


class _MalformedRow(Exception):
    """A stored row whose columns have the wrong SQLite types (garbage, or a bad edit)."""


def _typed(rows: Iterator[tuple], types: tuple[type, ...]) -> Iterator[tuple]:
    for row in rows:
        if len(row) != len(types) or not all(type(v) is t for v, t in zip(row, types)):
            kinds = ", ".join(type(v).__name__ for v in row)
            raise _MalformedRow(f"row {row[0]!r} has columns ({kinds})")
        yield row


class _Peek:
    """An iterator with a one-row lookahead."""

    def __init__(self, rows: Iterator[Any]) -> None:
        self._rows, self.next = rows, next(rows, None)

    def take_while(self, keep: Callable[[Any], bool]) -> list:
        out = []
        while self.next is not None and keep(self.next):
            out.append(self.next)
            self.next = next(self._rows, None)
        return out


def _connect_readonly(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        return conn
    except sqlite3.OperationalError:  # a WAL file whose -shm cannot be created read-only
        return sqlite3.connect(str(path))


def _read_kind(path: Path) -> str:
    conn = _connect_readonly(path)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "meta" not in tables:
            return ""
        row = conn.execute("SELECT value FROM meta WHERE key = 'kind'").fetchone()
    finally:
        conn.close()
    return row[0] if row else ""


def verify_ledger_file(path: str | Path, *, artifact_root: str | Path | None = None,
                       known_heads: Iterable[tuple[int, bytes]] = ()) -> VerifyReport:
    """Replay a public ledger file; the report names the first bad block and the reason.

    `known_heads` are (size, root) of tree heads seen before (say, gossiped by another auditor):
    the file alone cannot show that its last blocks were cut off, but it must still extend each of
    them ("rolled-back" if it is shorter, "fork" if its root at that size differs).
    """
    path = Path(path)
    report = VerifyReport(str(path), store.KIND, False, 0, 0)
    state = LedgerState()
    artifacts: list[tuple[int, str, str]] = []
    try:
        truncated = store.truncation(path)
        if truncated:
            report.problems.append(Problem(None, "truncated", truncated))
            return report
        conn = _connect_readonly(path)
    except (OSError, sqlite3.DatabaseError) as exc:
        report.problems.append(Problem(None, "unreadable", str(exc)))
        return report
    try:
        conn.execute("BEGIN")  # one read snapshot, even while a writer appends
        meta = store.read_meta(conn)
        if meta.get("kind") != store.KIND or meta.get("format") != store.FORMAT:
            report.problems.append(Problem(None, "meta", f"kind {meta.get('kind')!r}, "
                                                         f"format {meta.get('format')!r}"))
            return report
        _replay(conn, state, report, artifacts)
        if not report.problems and meta.get("chain") != state.chain:
            report.problems.append(Problem(None, "meta", "meta.chain is not the genesis id"))
        if not report.problems:
            report.problems.extend(_check_known_heads(conn, state.frontier.size, known_heads))
    except sqlite3.DatabaseError as exc:
        report.problems.append(Problem(state.height + 1, "unreadable", str(exc)))
    except _MalformedRow as exc:
        report.problems.append(Problem(state.height + 1, "malformed-row", str(exc)))
    finally:
        conn.close()
    if state.head is not None:
        report.head = f"size={state.head.size} root={state.head.root.hex()}"
    if artifact_root is not None:
        report.problems.extend(_check_artifacts(Path(artifact_root), artifacts))
    report.ok = not report.problems
    return report


def _replay(conn: sqlite3.Connection, state: LedgerState, report: VerifyReport,
            artifacts: list[tuple[int, str, str]]) -> None:
    certs: dict[str, bytes | None] = {}

    def cert(identity_id: str) -> bytes | None:
        if identity_id not in certs:
            certs[identity_id] = store.read_cert(conn, identity_id)
        return certs[identity_id]

    blocks = _typed(conn.execute("SELECT height, hash, header, signature, tree_size, tree_head, "
                                 "tree_head_signature FROM blocks ORDER BY height"), _BLOCK_TYPES)
    txs = _Peek(_typed(conn.execute("SELECT seq, height, id, sender, nonce, kind, body, signature "
                                    "FROM txs ORDER BY seq"), _TX_TYPES))
    nodes = _Peek(_typed(conn.execute("SELECT last, level, hash FROM nodes ORDER BY last, level"),
                         _NODE_TYPES))
    for block in blocks:
        height = block[0]
        block_txs = txs.take_while(lambda row, h=height: row[1] <= h)
        size = state.frontier.size + len(block_txs)
        block_nodes = nodes.take_while(lambda row, s=size: row[0] < s)
        try:
            check_block(state, block, block_txs, block_nodes, cert)
        except Violation as exc:
            report.problems.append(Problem(state.height + 1, exc.reason, exc.detail))
            return
        report.blocks += 1
        report.transactions += len(block_txs)
        for row in block_txs:
            if b'"artifact"' in row[6]:
                payload = json.loads(row[6])["payload"]
                if isinstance(payload.get("artifact"), str) and isinstance(payload.get("digest"), str):
                    artifacts.append((height, payload["artifact"], payload["digest"]))
    if report.blocks == 0:
        report.problems.append(Problem(None, "empty", "the ledger has no genesis block"))
    elif txs.next is not None:
        report.problems.append(Problem(txs.next[1], "orphan-transactions",
                                       f"transaction {txs.next[0]} belongs to no verified block"))
    elif nodes.next is not None:
        report.problems.append(Problem(None, "merkle-node", "stored Merkle nodes beyond the log"))


def _check_known_heads(conn: sqlite3.Connection, size: int,
                       known_heads: Iterable[tuple[int, bytes]]) -> list[Problem]:
    """Compare earlier tree heads with the (verified) log: its stored nodes give any prefix root."""
    problems = []
    for known_size, known_root in known_heads:
        if known_size > size:
            problems.append(Problem(None, "rolled-back", f"a tree head of size {known_size} was "
                                                         f"published; the file holds {size}"))
            continue
        root = range_hash(0, known_size, lambda lvl, i: store.read_node(conn, lvl, i)) \
            if known_size else EMPTY_ROOT
        if root != bytes(known_root):
            (height,) = conn.execute("SELECT height FROM txs WHERE seq = ?",
                                     (known_size - 1,)).fetchone()
            problems.append(Problem(height, "fork", f"root at size {known_size} is {root.hex()}, "
                                                    f"the known tree head says {known_root.hex()}"))
    return problems


def _check_artifacts(root: Path, artifacts: list[tuple[int, str, str]]) -> list[Problem]:
    problems, base = [], root.resolve()
    for height, name, digest in artifacts:
        target = (base / name).resolve()
        if Path(name).is_absolute() or not target.is_relative_to(base):
            problems.append(Problem(height, "artifact-path", f"{name} is outside {root}"))
        elif not target.is_file():
            problems.append(Problem(height, "artifact-missing", name))
        else:
            actual = _sha256_file(target)
            if actual != digest:
                problems.append(Problem(height, "artifact-digest",
                                        f"{name}: sha256 {actual}, ledger says {digest}"))
    return problems


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_path(path: str | Path, *,
                known_heads: Iterable[tuple[int, bytes]] = ()) -> list[VerifyReport]:
    """Verify a ledger file, or every *.db / *.sqlite under a folder (dispatching on meta.kind).

    `known_heads` apply to the public ledgers found (see `verify_ledger_file`).
    """
    path, known_heads = Path(path), list(known_heads)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in LEDGER_SUFFIXES and p.is_file())
        if not files:
            return [VerifyReport(str(path), "folder", False, 0, 0,
                                 [Problem(None, "no-ledgers", "no *.db or *.sqlite files found")])]
        return [_verify_file(p, artifact_root=p.parent, known_heads=known_heads) for p in files]
    if not path.is_file():
        return [VerifyReport(str(path), "missing", False, 0, 0,
                             [Problem(None, "missing", "no such file or folder")])]
    return [_verify_file(path, artifact_root=None, known_heads=known_heads)]


def _verify_file(path: Path, *, artifact_root: Path | None,
                 known_heads: list[tuple[int, bytes]]) -> VerifyReport:
    try:
        truncated = store.truncation(path)
        if truncated:
            return VerifyReport(str(path), "unknown", False, 0, 0, [Problem(None, "truncated", truncated)])
        kind = _read_kind(path)
    except (OSError, sqlite3.DatabaseError) as exc:
        return VerifyReport(str(path), "unknown", False, 0, 0, [Problem(None, "unreadable", str(exc))])
    if kind == store.KIND:
        return verify_ledger_file(path, artifact_root=artifact_root, known_heads=known_heads)
    if kind == "fabric-channel":
        try:
            from chains.fabric import verify_channel_file
        except ImportError as exc:
            return VerifyReport(str(path), kind, False, 0, 0,
                                [Problem(None, "unsupported", f"chains.fabric is unavailable ({exc})")])
        return verify_channel_file(path)
    return VerifyReport(str(path), kind or "unknown", False, 0, 0,
                        [Problem(None, "unknown-kind", f"meta.kind is {kind!r}")])
