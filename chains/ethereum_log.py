"""The local record of what a run anchored on Ethereum (`public-eth.db`), and the anchor that
keeps it.

An in-process chain (eth-tester) is gone when its process ends, and a node may be out of reach
when an auditor checks a run, so every anchoring transaction is kept beside the run, in one
SQLite file (WAL, `meta.kind = "ethereum-anchors"`), with the signed raw transaction bytes and
what the receipt said:

  meta(key, value)     kind, format, msp (canonical JSON of the CA certificates the senders are
                       judged by), max_payload_bytes
  certs(id, pem)       each sender's certificate, by identity id
  sessions(session, chain_id, node, account, funding)
                       one per chain connection: each start of an in-process chain (a fresh
                       chain: block 1 funds `account` with `funding` wei, then anchors follow),
                       or each connection to a node (`node` is its URL). Fresh in-process chains
                       share one chain id, so each should anchor from its own account: the same
                       account would repeat its nonces, and an identical record would be the
                       same transaction (one receipt) in two sessions
  anchors(seq, session, time, receipt, block, block_hash, status, gas_used, sender, kind,
          payload, raw)
                       every anchor in order: `raw` is the signed transaction (its Keccak-256 is
                       `receipt`), `time` the caller's logical clock, `kind`, `payload` and
                       `sender` an index into the record inside `raw`

`LoggedAnchor` satisfies `chains.anchor.Anchor`: it anchors on an `EthereumAnchor` that signs with
a local key and appends each mined transaction to the log. `chains.ethereum_verify` checks a log
offline; block hashes of an in-process chain are not kept (they carry a random prevrandao and
the wall clock, and the chain is gone), those of a node are.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chains.canonical import canonical_json, parse_canonical
from chains.errors import ChainsError, LedgerCorruptError, LedgerError
from chains.ethereum import EthereumAnchor
from chains.identity import Identity
from chains.msp import MSP
from chains.sqlite_files import check_schema, harden

__all__ = ["FORMAT", "IN_PROCESS", "KIND", "SCHEMA", "AnchorLog", "LogSession", "LoggedAnchor"]

KIND = "ethereum-anchors"
FORMAT = "1"
IN_PROCESS = "in-process"  # a session's node when the chain was eth-tester in this process

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS certs(id TEXT PRIMARY KEY, pem BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sessions(
    session INTEGER PRIMARY KEY, chain_id INTEGER NOT NULL, node TEXT NOT NULL,
    account TEXT NOT NULL, funding TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS anchors(
    seq INTEGER PRIMARY KEY, session INTEGER NOT NULL, time INTEGER NOT NULL,
    receipt TEXT NOT NULL, block INTEGER NOT NULL, block_hash TEXT NOT NULL,
    status INTEGER NOT NULL, gas_used INTEGER NOT NULL, sender TEXT NOT NULL, kind TEXT NOT NULL,
    payload BLOB NOT NULL, raw BLOB NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS anchors_by_receipt ON anchors(receipt);
"""
ANCHOR_COLUMNS = ("seq, session, time, receipt, block, block_hash, status, gas_used, sender, "
                  "kind, payload, raw")


@dataclass(frozen=True)
class LogSession:
    """One chain connection of a log."""

    session: int
    chain_id: int
    node: str       # IN_PROCESS, or the node's URL
    account: str    # the anchoring account (checksummed)
    funding: int    # wei given to the account in block 1 of an in-process chain (0 on a node)


class AnchorLog:
    """A `public-eth.db` file: created once, reopened to continue (one writer at a time)."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path, self._conn = path, conn
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        self.msp = MSP.from_dict(parse_canonical(meta["msp"].encode(), max_bytes=1 << 20,
                                                 what="log msp"))
        self.max_payload_bytes = int(meta["max_payload_bytes"])
        self._certs = {row[0] for row in conn.execute("SELECT id FROM certs")}

    @classmethod
    def create(cls, path: str | Path, msp: MSP, *, max_payload_bytes: int) -> AnchorLog:
        path = Path(path)
        if path.exists() and path.stat().st_size > 0:
            raise LedgerError(f"{path} already exists; open it instead of creating it")
        conn = _connect(path)
        conn.executescript(SCHEMA)
        rows = {"kind": KIND, "format": FORMAT, "msp": canonical_json(msp.to_dict()).decode(),
                "max_payload_bytes": str(max_payload_bytes)}
        with conn:
            conn.executemany("INSERT INTO meta(key, value) VALUES (?, ?)", rows.items())
        return cls(path, conn)

    @classmethod
    def open(cls, path: str | Path) -> AnchorLog:
        path = Path(path)
        if not path.is_file():
            raise LedgerError(f"no Ethereum anchor log at {path}")
        conn = _connect(path)
        try:
            problem = check_schema(conn, SCHEMA)
            if problem:
                raise LedgerCorruptError(str(path), None, "schema", problem)
            meta = dict(conn.execute("SELECT key, value FROM meta"))
            if meta.get("kind") != KIND or meta.get("format") != FORMAT:
                raise LedgerError(f"{path} is not an Ethereum anchor log of format {FORMAT} "
                                  f"(kind {meta.get('kind')!r}, format {meta.get('format')!r})")
            return cls(path, conn)
        except BaseException:
            conn.close()
            raise

    def close(self) -> None:
        self._conn.close()

    # --- writing ---------------------------------------------------------------------------
    def start_session(self, chain_id: int, node: str, account: str, funding: int) -> LogSession:
        with self._conn:
            cursor = self._conn.execute(
                "INSERT INTO sessions(chain_id, node, account, funding) VALUES (?, ?, ?, ?)",
                (chain_id, node, account, str(funding)))
        return LogSession(int(cursor.lastrowid or 0), chain_id, node, account, funding)

    def append(self, session: LogSession, time: int, sent: Any, sender: Identity | None,
               kind: str, payload: Mapping[str, Any]) -> None:
        """Keep one mined anchor (`sent`: a `chains.ethereum.SentAnchor` with its raw bytes)."""
        if not sent.raw:
            raise ChainsError("the log keeps locally signed transactions only (raw bytes)")
        block_hash = sent.block_hash if session.node != IN_PROCESS else ""
        with self._conn:
            if sender is not None and sender.id not in self._certs:
                self._conn.execute("INSERT INTO certs(id, pem) VALUES (?, ?)",
                                   (sender.id, sender.cert_pem))
            self._conn.execute(
                f"INSERT INTO anchors({ANCHOR_COLUMNS}) VALUES "
                "(NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (session.session, time, sent.receipt, sent.block, block_hash, sent.status,
                 sent.gas_used, sender.id if sender else "", kind, canonical_json(dict(payload)),
                 sent.raw))
        if sender is not None:
            self._certs.add(sender.id)

    # --- reading ---------------------------------------------------------------------------
    def sessions(self) -> list[LogSession]:
        return [LogSession(s, c, n, a, int(f)) for s, c, n, a, f in self._conn.execute(
            "SELECT session, chain_id, node, account, funding FROM sessions ORDER BY session")]

    def records(self, kind: str | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
        """(kind, payload) of every anchor (of `kind`), in order."""
        query = "SELECT kind, payload FROM anchors"
        args: tuple[str, ...] = ()
        if kind is not None:
            query, args = query + " WHERE kind = ?", (kind,)
        for found, payload in self._conn.execute(query + " ORDER BY seq", args):
            yield found, parse_canonical(payload, max_bytes=1 << 20, what="logged payload")

    @property
    def last_time(self) -> int:
        row = self._conn.execute("SELECT MAX(time) FROM anchors").fetchone()
        return int(row[0] or 0)

    def __len__(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM anchors").fetchone()[0])


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    harden(conn)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.isolation_level = "DEFERRED"  # `with conn:` commits one anchor atomically
    return conn


class LoggedAnchor:
    """The Anchor protocol on Ethereum, keeping every mined anchor in an `AnchorLog`."""

    def __init__(self, chain: EthereumAnchor, log: AnchorLog, *, node: str, funding: int = 0,
                 clock: Callable[[], int] = lambda: 0) -> None:
        self.chain, self.log, self.clock = chain, log, clock
        self.session = log.start_session(chain.chain_id, node, chain.account, funding)

    @property
    def height(self) -> int:
        return self.chain.height

    def anchor(self, kind: str, payload: Mapping[str, Any], *,
               sender: Identity | None = None) -> str:
        sent = self.chain.send(kind, payload, sender=sender)
        self.log.append(self.session, self.clock(), sent, sender, kind, payload)
        return sent.receipt

    def flush(self) -> int:
        """Every anchor is mined and logged when made: nothing is pending."""
        return self.height

    def confirmed(self, receipt: str) -> int | None:
        return self.chain.confirmed(receipt)

    def close(self) -> None:
        self.log.close()
