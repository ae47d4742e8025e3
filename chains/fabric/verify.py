"""Offline verification of a channel's files: each peer's ledger and the orderer's chain.

A peer file is replayed from its genesis config (`chains.fabric.replay`: links, signatures,
validation codes, transaction ids, world state, side store); an orderer file has its chain
checked (links, data hashes, orderer signatures, times). Files are opened read-only within
bounds (`chains.sqlite_files`) and must have exactly their format's schema. `chains.verify`
compares the files of one channel block by block to catch an orderer that equivocated.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from chains.errors import ChainsError, MalformedError
from chains.fabric.errors import ConfigError
from chains.fabric.orderer_store import FORMAT as ORDERER_FORMAT
from chains.fabric.orderer_store import KIND as ORDERER_KIND
from chains.fabric.orderer_store import SCHEMA as ORDERER_SCHEMA
from chains.fabric.packing import BLOCK_COLUMNS, BlockPacking
from chains.fabric.private_data import key_hash, value_hash
from chains.fabric.replay import ChannelReplay, check_derived, genesis_config, replay_blocks
from chains.fabric.snapshot import Snapshot
from chains.fabric.store import FORMAT, KIND, SCHEMA
from chains.fabric.transaction import Envelope
from chains.report import DEFAULT_LIMITS, Problem, VerifyLimits, VerifyReport
from chains.sqlite_files import UnsafeFile, check_schema, open_readonly

__all__ = ["ORDERER_KIND", "PrivateWriteProof", "check_channel", "check_orderer",
           "find_private_write", "snapshot_state_hashes", "verify_channel_file"]

def _meta(conn: sqlite3.Connection, report: VerifyReport, schema: str, kind: str,
          version: str) -> dict | None:
    """The file's meta if it is of `kind` and `version` with exactly `schema`, else None and a
    problem ("meta" or "schema") in the report."""
    meta = {}
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
                    ).fetchone():
        meta = dict(conn.execute("SELECT key, value FROM meta"))
    if meta.get("kind") != kind or meta.get("format") != version:
        report.problems.append(Problem(None, "meta", f"kind {meta.get('kind')!r}, format "
                                                     f"{str(meta.get('format'))[:20]!r}; this "
                                                     f"version verifies {kind!r} format "
                                                     f"{version!r}"))
        return None
    problem = check_schema(conn, schema)
    if problem:
        report.problems.append(Problem(None, "schema", problem))
        return None
    return meta


def _read_kind(conn: sqlite3.Connection) -> object:
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
                        ).fetchone():
        return None
    row = conn.execute("SELECT value FROM meta WHERE key = 'kind'").fetchone()
    return None if row is None else row[0]


Chain = tuple[str, dict[int, str], Snapshot | None]  # chain key, block hashes, the snapshot


def _finish(replay: ChannelReplay, report: VerifyReport, meta: dict) -> Chain:
    report.problems.extend(replay.problems)
    report.blocks, report.transactions = len(replay.hashes), replay.transactions
    if replay.config is None:
        return "", {}, None
    if replay.snapshot is not None:
        report.blocks -= 1  # the snapshot's block hash is not a stored block
        report.notes.append(f"snapshot at height {replay.snapshot.height} (state hash "
                            f"{replay.snapshot.state_hash[:16]}...): blocks 1 to "
                            f"{replay.snapshot.height - 1} are the orderer's only")
    if meta.get("channel") != replay.config.name:
        report.problems.append(Problem(None, "meta", f"meta.channel {meta.get('channel')!r}, "
                                                     f"genesis says {replay.config.name!r}"))
    report.head = f"height={replay.height} hash={replay.last_hash}"
    return f"fabric:{replay.config.chain_id}", replay.hashes, replay.snapshot


def check_channel(conn: sqlite3.Connection, report: VerifyReport, deadline: float | None = None
                  ) -> Chain:
    """Verify an open peer file into `report`; returns (chain key, block hashes by number,
    the snapshot); blocks above a snapshot are replayed from it."""
    meta = _meta(conn, report, SCHEMA, KIND, FORMAT)
    if meta is None:
        return "", {}, None
    conn.execute("BEGIN")
    replay = replay_blocks(conn, deadline=deadline)
    orphans = conn.execute("SELECT count(*) FROM transactions WHERE block NOT IN "
                           "(SELECT number FROM blocks)").fetchone()[0]
    if orphans:
        replay.problems.append(Problem(None, "orphan-transactions",
                                       f"{orphans} transaction(s) of blocks that are not stored"))
    replay.problems.extend(check_derived(conn, replay))
    return _finish(replay, report, meta)


def check_orderer(conn: sqlite3.Connection, report: VerifyReport, deadline: float | None = None
                  ) -> Chain:
    """Verify an open orderer file into `report`; returns (chain key, block hashes, None)."""
    meta = _meta(conn, report, ORDERER_SCHEMA, ORDERER_KIND, ORDERER_FORMAT)
    if meta is None:
        return "", {}, None
    conn.execute("BEGIN")
    replay = replay_blocks(conn, transactions=False, validate=False, deadline=deadline)
    return _finish(replay, report, meta)


def snapshot_state_hashes(path: str | Path, heights: set[int], *,
                          limits: VerifyLimits = DEFAULT_LIMITS) -> dict[int, str]:
    """The state hash a peer's snapshot at each of `heights` must have: the orderer's chain
    (file `path`) replayed with validation, as a peer would; heights it does not reach are
    left out."""
    deadline = time.monotonic() + limits.max_seconds
    with open_readonly(Path(path), limits) as conn:
        conn.execute("BEGIN")
        replay = replay_blocks(conn, transactions=False, deadline=deadline,
                               snapshots_at=heights)
    return replay.state_hashes


def verify_channel_file(path: str | Path, *, limits: VerifyLimits = DEFAULT_LIMITS
                        ) -> VerifyReport:
    """Verify a peer's (`fabric-channel`) or the orderer's (`fabric-orderer`) SQLite file;
    `problems` name each block and reason."""
    path = Path(path)
    report = VerifyReport(str(path), KIND, False, 0, 0)
    deadline = time.monotonic() + limits.max_seconds
    try:
        with open_readonly(path, limits, report.notes) as conn:
            kind = _read_kind(conn)
            if kind == ORDERER_KIND:
                report.kind = ORDERER_KIND
                check_orderer(conn, report, deadline)
            else:
                check_channel(conn, report, deadline)
    except UnsafeFile as exc:
        report.problems.append(Problem(None, exc.reason, exc.detail))
    except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
        reason = "timeout" if "interrupt" in str(exc) else "unreadable"
        report.problems.append(Problem(None, reason, str(exc)))
    except MalformedError as exc:
        report.problems.append(Problem(None, "malformed-row", str(exc)))
    except (OSError, ChainsError) as exc:
        report.problems.append(Problem(None, "unreadable", str(exc)))
    report.ok = not report.problems
    return report


@dataclass(frozen=True)
class PrivateWriteProof:
    """Where the ledger commits to a private value: a VALID transaction's hashed write."""

    block: int
    index: int
    tx_id: str


def find_private_write(path: str | Path, chaincode: str, collection: str, key: str,
                       value: bytes, salt: bytes, *, limits: VerifyLimits = DEFAULT_LIMITS
                       ) -> PrivateWriteProof | None:
    """The first VALID transaction whose on-ledger hashes commit to (key, value, salt), if any.

    Works after the value expired or was purged from every side store: the hashes stay."""
    with open_readonly(Path(path), limits) as conn:
        try:
            packing = BlockPacking.of(conn)
            rows = conn.execute(f"SELECT {BLOCK_COLUMNS} FROM blocks ORDER BY number")
            genesis = next(rows, None)
            if genesis is None or genesis[0] != 0:
                return None
            config = genesis_config(packing.unpack(genesis))
        except MalformedError as exc:
            raise ConfigError(f"block 0 of {path} is not a channel config: {exc}") from None
        salt_hex = config.key_salts.get(collection)
        if salt_hex is None:
            raise ConfigError(f"no collection {collection!r} on channel {config.name!r}")
        kh = key_hash(bytes.fromhex(salt_hex), key)
        vh = value_hash(bytes(salt), bytes(value))
        needle = kh.encode("ascii")
        for row in rows:
            try:
                block = packing.unpack(row)
            except MalformedError:
                continue
            valid = {index for index, in conn.execute(
                "SELECT idx FROM transactions WHERE block = ? AND code = 'VALID'", (row[0],))}
            for index, (raw, env) in enumerate(zip(block.envelopes, block.transactions)):
                if index not in valid or needle not in raw or not isinstance(env, Envelope) \
                        or env.header.get("chaincode") != chaincode:
                    continue
                if env.rwset.hashed_writes.get(collection, {}).get(kh) == ("put", vh):
                    return PrivateWriteProof(block.number, index, env.tx_id)
        return None

