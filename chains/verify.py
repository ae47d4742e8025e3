"""Offline verification of ledger files and run folders (`python -m chains verify PATH`).

A public ledger is replayed block by block from the file alone (`chains.replay`: the genesis
block holds the consortium's CA certificates): hash links, block and tree-head signatures, every
transaction's signature, identity and validity (revocations apply from their position in the log
on), nonces, Merkle roots, every derived column, and tree heads that only grow. Rows are
streamed, so memory stays flat. Channel and orderer files of `chains.fabric` are handed to
`chains.fabric.verify`, Ethereum anchor logs (`public-eth.db`) to `chains.ethereum_verify`. In a
run folder, each transaction payload naming an `"artifact"` (a path
relative to the folder that holds the ledger file, so run folders nest:
`runs/<name>/env/public.db` resolves against `runs/<name>/env/`) and its `"digest"` is checked
against that file (`chains.artifacts`); an `anchor` record whose payload lists `"erased"`
artifact names lets those files be gone (right to erasure) when its sender is the one that
anchored them (a file still there must still match); the registered verify plugins
(`chains.verify_plugins`) then check what they know how to recompute; and the files of one chain (the orderer's and every
peer's copy of a channel, copies of a public ledger) are compared block by block: two different
blocks at one height are a `fork`, reported with both hashes.

A hostile folder gets an answer, never a traceback, a write or a hang: links are not followed,
files are opened read-only within size and time bounds (`chains.sqlite_files`, `VerifyLimits`),
schemas must be exactly the ledger's, and every failure is a `Problem` with a reason.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from chains.artifacts import PRUNED_EVENT, check_artifacts
from chains.canonical import parse_json
from chains.errors import ChainsError, ConfigError, MalformedError
from chains.ethereum_log import KIND as ETHEREUM_KIND
from chains.ethereum_verify import check_ethereum_log
from chains.fabric.snapshot import Snapshot
from chains.fabric.verify import (
    ORDERER_KIND,
    check_channel,
    check_orderer,
    snapshot_state_hashes,
)
from chains.merkle import EMPTY_ROOT, range_hash
from chains.replay import ReplayFailure, replay
from chains.report import DEFAULT_LIMITS, Problem, VerifyLimits, VerifyReport
from chains.sqlite_files import UnsafeFile, check_schema, open_readonly
from chains.store import FORMAT, KIND, SCHEMA, read_meta, read_node
from chains.validation import LedgerState
from chains.verify_plugins import Anchored, run_plugins

__all__ = ["LEDGER_SUFFIXES", "Problem", "VerifyLimits", "VerifyReport", "verify_ledger_file",
           "verify_path"]

LEDGER_SUFFIXES = (".db", ".sqlite")
_CHANNEL_KIND = "fabric-channel"


@dataclass
class _Chain:
    """Which chain a verified file holds and its block hashes by height (for fork checks)."""

    key: str = ""
    hashes: dict[int, str] = field(default_factory=dict)
    snapshot: Snapshot | None = None  # a peer file's ledger snapshot


def _heads(known_heads: Iterable[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    heads = []
    for head in known_heads:
        ok = isinstance(head, tuple) and len(head) == 2
        size, root = head if ok else (None, None)
        if not ok or isinstance(size, bool) or not isinstance(size, int) or size < 0 \
                or not isinstance(root, bytes) or len(root) != 32:
            raise ConfigError(f"a known tree head is (size >= 0, 32-byte root), got {head!r}"[:200])
        heads.append((size, root))
    return heads


def verify_ledger_file(path: str | Path, *, artifact_root: str | Path | None = None,
                       known_heads: Iterable[tuple[int, bytes]] = (),
                       limits: VerifyLimits = DEFAULT_LIMITS) -> VerifyReport:
    """Replay a public ledger file; the report names the first bad block and the reason.

    `known_heads` are (size, root) of tree heads seen before (say, gossiped by another auditor):
    the file alone cannot show that its last blocks were cut off, but it must still extend each of
    them ("rolled-back" if it is shorter, "fork" if its root at that size differs).
    """
    heads = _heads(known_heads)
    root = None if artifact_root is None else Path(artifact_root)
    return _verify_file(Path(path), root, heads, limits, expect=KIND)[0]


def _verify_public(conn: sqlite3.Connection, report: VerifyReport, chain: _Chain,
                   artifact_root: Path | None, known_heads: list[tuple[int, bytes]],
                   limits: VerifyLimits, deadline: float) -> None:
    conn.execute("BEGIN")  # one read snapshot
    try:  # the kind and format first: an older format's schema differs too
        meta: dict[str, str] | None = read_meta(conn)
    except (sqlite3.DatabaseError, MalformedError):
        meta = None  # no readable meta table: a schema problem
    if meta is not None and (meta.get("kind") != KIND or meta.get("format") != FORMAT):
        report.problems.append(Problem(None, "meta", f"kind {meta.get('kind')!r}, format "
                                                     f"{meta.get('format')!r}, expected "
                                                     f"{KIND!r}, {FORMAT!r}"))
        return
    problem = check_schema(conn, SCHEMA)
    if problem:
        report.problems.append(Problem(None, "schema", problem))
        return
    state = LedgerState()
    artifacts: list[tuple[int, object, object, str]] = []
    pruned: list[tuple[int, object]] = []
    anchors: list[Anchored] = []
    erased: set[tuple[str, object]] = set()  # (sender, artifact name) erased by its own sender

    def on_block(height: int, rows: list) -> None:
        report.blocks += 1
        report.transactions += len(rows)
        chain.hashes[len(chain.hashes)] = state.prev_hash.hex()
        for row in rows:
            if b'"artifact"' in row[6] or row[5] == "anchor":
                payload = parse_json(row[6], max_bytes=len(row[6]))["payload"]
                if b'"artifact"' in row[6]:
                    artifacts.append((height, payload.get("artifact"), payload.get("digest"),
                                      row[3]))
                if row[5] == "anchor":
                    anchors.append(Anchored(height, row[3], payload))
                    if payload.get("event") == PRUNED_EVENT:
                        pruned.append((height, payload.get("prefixes")))
                    names = payload.get("erased")
                    if isinstance(names, list):
                        erased.update((row[3], name) for name in names if isinstance(name, str))

    try:
        replay(conn, state, on_block=on_block, deadline=deadline)
    except ReplayFailure as exc:
        report.problems.append(Problem(exc.block, exc.reason, exc.detail))
    if state.head is not None:
        report.head = f"size={state.head.size} root={state.head.root.hex()}"
    if report.problems:
        return
    chain.key = f"{KIND}:{state.chain}"
    if meta.get("chain") != state.chain:
        report.problems.append(Problem(None, "meta", "meta.chain is not the genesis id"))
    report.problems.extend(_check_known_heads(conn, state.frontier.size, known_heads))
    if artifact_root is not None:
        kept = [(h, name, digest) for h, name, digest, sender in artifacts
                if (sender, name) not in erased]
        gone = [(h, name, digest) for h, name, digest, sender in artifacts
                if (sender, name) in erased]
        report.problems.extend(check_artifacts(artifact_root, kept, limits, deadline,
                                               pruned=pruned, notes=report.notes))
        missing = check_artifacts(artifact_root, gone, limits, deadline)
        report.problems.extend(p for p in missing if p.reason != "artifact-missing")
        if gone:
            report.notes.append(f"{sum(p.reason == 'artifact-missing' for p in missing)} "
                                "artifact(s) erased at the request of the identity that anchored "
                                "them: their hashes stay on the ledger, their files are gone")
        report.problems.extend(run_plugins(artifact_root, anchors))


def _check_known_heads(conn: sqlite3.Connection, size: int,
                       known_heads: list[tuple[int, bytes]]) -> list[Problem]:
    """Compare earlier tree heads with the (verified) log: its stored nodes give any prefix root."""
    problems = []
    for known_size, known_root in known_heads:
        if known_size > size:
            problems.append(Problem(None, "rolled-back", f"a tree head of size {known_size} was "
                                                         f"published; the file holds {size}"))
            continue
        root = range_hash(0, known_size, lambda lvl, i: read_node(conn, lvl, i)) \
            if known_size else EMPTY_ROOT
        if root != known_root:
            row = conn.execute("SELECT height FROM txs WHERE seq = ?", (known_size - 1,)).fetchone()
            problems.append(Problem(row[0] if row else None, "fork",
                                    f"root at size {known_size} is {root.hex()}, the known tree "
                                    f"head says {known_root.hex()}"))
    return problems


def _read_kind(conn: sqlite3.Connection) -> str:
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "meta" not in tables:
        return ""
    row = conn.execute("SELECT value FROM meta WHERE key = 'kind'").fetchone()
    return row[0] if row and isinstance(row[0], str) else ""


def _verify_file(path: Path, artifact_root: Path | None, known_heads: list[tuple[int, bytes]],
                 limits: VerifyLimits, *, expect: str | None = None
                 ) -> tuple[VerifyReport, _Chain]:
    report, chain = VerifyReport(str(path), expect or "unknown", False, 0, 0), _Chain()
    deadline = time.monotonic() + limits.max_seconds
    try:
        with open_readonly(path, limits, report.notes) as conn:
            kind = _read_kind(conn)
            report.kind = kind or report.kind
            if kind == KIND:
                _verify_public(conn, report, chain, artifact_root, known_heads, limits, deadline)
            elif expect is not None:
                report.problems.append(Problem(None, "meta", f"meta.kind is {kind!r}, not "
                                                             f"{expect!r}"))
            elif kind in (_CHANNEL_KIND, ORDERER_KIND):
                check = check_channel if kind == _CHANNEL_KIND else check_orderer
                chain.key, chain.hashes, chain.snapshot = check(conn, report, deadline)
            elif kind == ETHEREUM_KIND:
                check_ethereum_log(conn, report, artifact_root, limits, deadline)
            else:
                report.problems.append(Problem(None, "unknown-kind", f"meta.kind is {kind!r}"))
    except UnsafeFile as exc:
        report.problems.append(Problem(None, exc.reason, exc.detail))
    except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:  # SQLite's message, undecodable
        text = str(exc)
        reason = ("timeout" if "interrupt" in text else
                  "malformed-row" if "too big" in text else "unreadable")
        report.problems.append(Problem(None, reason, text))
    except MalformedError as exc:
        report.problems.append(Problem(None, "malformed-row", str(exc)))
    except (OSError, ChainsError) as exc:
        report.problems.append(Problem(None, "unreadable", str(exc)))
    report.ok = not report.problems
    return report, chain


def _ledger_files(folder: Path, limits: VerifyLimits) -> tuple[list[Path], list[VerifyReport]]:
    """Ledger files under `folder`, walked without following links, within the bounds."""
    found, refused, seen = [], [], 0
    stack = [(folder, 0)]
    while stack:
        directory, depth = stack.pop()
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            refused.append(_refusal(directory, "unreadable", str(exc)))
            continue
        for entry in entries:
            seen += 1
            if seen > limits.max_entries:
                refused.append(_refusal(folder, "too-many-entries", f"more than "
                                                                    f"{limits.max_entries}"))
                return sorted(found), refused
            path = Path(entry.path)
            try:
                mode = entry.stat(follow_symlinks=False).st_mode
            except OSError as exc:
                refused.append(_refusal(path, "unreadable", str(exc)))
                continue
            if stat.S_ISDIR(mode):
                if depth + 1 > limits.max_depth:
                    refused.append(_refusal(path, "too-deep", f"below {limits.max_depth} "
                                                              "levels"))
                else:
                    stack.append((path, depth + 1))
            elif path.suffix in LEDGER_SUFFIXES:
                if stat.S_ISLNK(mode):
                    refused.append(_refusal(path, "link", "a symbolic link; verify does not "
                                                          "follow links"))
                elif not stat.S_ISREG(mode):
                    refused.append(_refusal(path, "not-a-file", "not a regular file"))
                else:
                    found.append(path)
    return sorted(found), refused


def _refusal(path: Path, reason: str, detail: str) -> VerifyReport:
    return VerifyReport(str(path), "unknown", False, 0, 0, [Problem(None, reason, detail)])


def _check_forks(results: list[tuple[VerifyReport, _Chain]], limits: VerifyLimits) -> None:
    """Files of one chain must hold the same block at every height both have."""
    groups: dict[str, list[tuple[VerifyReport, _Chain]]] = {}
    for report, chain in results:
        if chain.key:
            groups.setdefault(chain.key, []).append((report, chain))
    for members in groups.values():
        for i, (report, chain) in enumerate(members):
            for other, other_chain in members[:i]:
                for height in sorted(other_chain.hashes.keys() & chain.hashes.keys()):
                    a, b = other_chain.hashes[height], chain.hashes[height]
                    if a != b:
                        report.problems.append(Problem(height, "fork", (
                            f"block {height} is {b} here and {a} in {other.path}")))
                        report.ok = False
                        break
        _check_snapshots(members, limits)


def _check_snapshots(members: list[tuple[VerifyReport, _Chain]], limits: VerifyLimits) -> None:
    """Each peer's snapshot against the orderer's chain of its channel: its block hash must be
    the orderer's block below its height, its state hash that of the orderer's chain replayed
    to its height."""
    taken = [(report, chain.snapshot) for report, chain in members if chain.snapshot]
    if not taken:
        return
    orderer = next((r for r, _ in members if r.kind == ORDERER_KIND), None)
    if orderer is None or not orderer.ok:
        for report, snapshot in taken:
            report.notes.append(f"snapshot at height {snapshot.height} not checked: no sound "
                                "orderer file of its channel in the folder")
        return
    hashes = next(c.hashes for r, c in members if r is orderer)
    try:
        states = snapshot_state_hashes(orderer.path, {s.height for _, s in taken},
                                       limits=limits)
    except (OSError, sqlite3.DatabaseError, ChainsError, UnsafeFile) as exc:
        states = {}
        orderer.notes.append(f"the peers' snapshots could not be replayed: {exc}")
    for report, snapshot in taken:
        where = snapshot.height - 1
        found = hashes.get(where)
        if found != snapshot.block_hash:
            report.problems.append(Problem(where, "snapshot", (
                f"the snapshot at height {snapshot.height} names block {where} "
                f"{snapshot.block_hash[:16]}..., the orderer's is "
                f"{'missing' if found is None else found[:16] + '...'} ({orderer.path})")))
        elif states.get(snapshot.height) != snapshot.state_hash:
            report.problems.append(Problem(where, "snapshot", (
                f"the snapshot's state hash {snapshot.state_hash[:16]}... is not that of the "
                f"orderer's chain replayed to height {snapshot.height}")))
        report.ok = not report.problems


def verify_path(path: str | Path, *, known_heads: Iterable[tuple[int, bytes]] = (),
                limits: VerifyLimits = DEFAULT_LIMITS) -> list[VerifyReport]:
    """Verify a ledger file, or every *.db / *.sqlite under a folder (dispatching on meta.kind),
    and compare the files of each chain. `known_heads` apply to the public ledgers found."""
    heads = _heads(known_heads)
    try:
        path = Path(path)
        info = os.stat(path)
    except (OSError, ValueError, TypeError) as exc:
        reason = "missing" if isinstance(exc, FileNotFoundError) else "unreadable"
        return [_refusal(Path(str(path)), reason, "no such file or folder"
                         if reason == "missing" else str(exc))]
    if stat.S_ISDIR(info.st_mode):
        files, refused = _ledger_files(path, limits)
        if not files and not refused:
            return [_refusal(path, "no-ledgers", "no *.db or *.sqlite files found")]
        results = [_verify_file(p, p.parent, heads, limits) for p in files]
        _check_forks(results, limits)
        return [report for report, _ in results] + refused
    if not stat.S_ISREG(info.st_mode):
        return [_refusal(path, "not-a-file", "not a regular file or a folder")]
    return [_verify_file(path, None, heads, limits)[0]]
