"""Offline verification of one peer's channel ledger file, from the file alone.

The genesis block (the channel config: member CAs, orderer organization, collections) is the
trust anchor. Then, block by block: numbers without gaps ("missing-block"), the hash link
("previous-hash"), the data hash ("data-hash"), the stored block hash ("block-hash"), the
orderer's signature ("orderer-signature"). Validation is replayed exactly as peers run it, and
each stored validation code is compared with the replayed one: a transaction stored as VALID
whose creator signature fails is "creator-signature", whose endorsement signatures fail is
"endorsement-signature", whose valid endorsers do not satisfy the policy is
"endorsement-policy"; any other disagreement (MVCC included) is "validation-code". Finally the
stored world state must equal the replayed one ("world-state") and every side-store value must
match its on-ledger salted hashes and still be alive ("private-data").
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from chains.errors import IdentityError
from chains.fabric.block import Block, data_hash
from chains.fabric.codec import ZERO_HASH
from chains.fabric.config import ChannelConfig
from chains.fabric.errors import ConfigError
from chains.fabric.private_data import key_hash, value_hash
from chains.fabric.state import WorldState
from chains.fabric.store import FORMAT, KIND
from chains.fabric.transaction import CONFIG, Envelope
from chains.fabric.validator import ChannelValidator, TxCheck, ValidationCode
from chains.identity import MSP
from chains.verify import Problem, VerifyReport

__all__ = ["PrivateWriteProof", "find_private_write", "verify_channel_file"]


def _connect(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        return conn
    except sqlite3.OperationalError:  # WAL without a writable -shm
        return sqlite3.connect(str(path))


def _genesis_config(block: Block) -> ChannelConfig:
    txs = block.transactions
    if block.previous_hash != ZERO_HASH or len(txs) != 1 or not isinstance(txs[0], Envelope) \
            or txs[0].type != CONFIG:
        raise ConfigError("block 0 is not a single channel config transaction")
    try:
        config = ChannelConfig.from_dict(txs[0].body["config"])
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"malformed channel config: {exc!r}") from None
    config.validate()
    return config


def _reason(recorded: str, check: TxCheck) -> str:
    if recorded == ValidationCode.VALID.value:
        if check.code is ValidationCode.BAD_SIGNATURE:
            return "creator-signature"
        if check.code is ValidationCode.ENDORSEMENT_POLICY_FAILURE:
            return "endorsement-signature" if check.bad_endorsements else "endorsement-policy"
    return "validation-code"


def verify_channel_file(path: str | Path) -> VerifyReport:
    """Verify a `fabric-channel` SQLite file; `problems` name each block and reason."""
    path = Path(path)
    report = VerifyReport(str(path), KIND, False, 0, 0)
    try:
        conn = _connect(path)
    except sqlite3.DatabaseError as exc:
        report.problems.append(Problem(None, "unreadable", str(exc)))
        return report
    try:
        _verify(conn, report)
    except sqlite3.DatabaseError as exc:
        report.problems.append(Problem(None, "unreadable", str(exc)))
    finally:
        conn.close()
    report.ok = not report.problems
    return report


def _verify(conn: sqlite3.Connection, report: VerifyReport) -> None:
    problems = report.problems
    meta = dict(conn.execute("SELECT key, value FROM meta"))
    if meta.get("kind") != KIND or meta.get("format") != FORMAT:
        problems.append(Problem(None, "meta", f"kind {meta.get('kind')!r}, format "
                                              f"{meta.get('format')!r}"))
        return
    block_numbers = {n for (n,) in conn.execute("SELECT number FROM blocks")}
    orphans = [n for (n,) in conn.execute("SELECT DISTINCT block FROM transactions")
               if n not in block_numbers]
    for number in orphans:
        problems.append(Problem(number, "orphan-transactions",
                                "transactions of a block that is not stored"))
    config: ChannelConfig | None = None
    msp: MSP | None = None
    validator: ChannelValidator | None = None
    state: WorldState | None = None
    seen: set[str] = set()
    replaying = True
    expected, previous = 0, ZERO_HASH
    rows = conn.execute("SELECT number, previous_hash, data_hash, hash, orderer, signature "
                        "FROM blocks ORDER BY number")
    for number, prev_hash, d_hash, stored_hash, orderer, signature in rows:
        if number != expected:
            for missing in range(expected, number):
                problems.append(Problem(missing, "missing-block", "no such block in the file"))
            replaying = False
        txs = list(conn.execute("SELECT envelope, code FROM transactions WHERE block = ? "
                                "ORDER BY idx", (number,)))
        block = Block(number, prev_hash, d_hash, tuple(bytes(e) for e, _ in txs),
                      orderer.encode("ascii"), bytes.fromhex(signature))
        codes = [c for _, c in txs]
        report.blocks += 1
        report.transactions += len(txs)
        if number == 0:
            try:
                config = _genesis_config(block)
                msp = MSP.from_dict(config.msp)
                validator = ChannelValidator(config, msp)
                state = WorldState({c.name: c.block_to_live for c in config.collections})
            except (ConfigError, IdentityError) as exc:
                problems.append(Problem(0, "genesis", str(exc)))
                return
            if meta.get("channel") != config.name:
                problems.append(Problem(None, "meta", f"meta.channel {meta.get('channel')!r}, "
                                                      f"genesis says {config.name!r}"))
        elif msp is None:
            problems.append(Problem(None, "genesis", "block 0 is missing"))
            return
        if prev_hash != previous:
            link = (f"{prev_hash[:16]}... does not link to block {number - 1} ({previous[:16]}...)"
                    if number else "the genesis block must link to the zero hash")
            problems.append(Problem(number, "previous-hash", link))
        if data_hash(block.envelopes) != d_hash:
            problems.append(Problem(number, "data-hash", "transactions do not hash to the header"))
        if block.hash != stored_hash:
            problems.append(Problem(number, "block-hash", "stored hash is not the header's hash"))
        assert msp is not None and validator is not None and state is not None
        try:
            member = msp.validate(block.orderer, role="orderer")
            if member[0] != validator.config.orderer_msp_id:
                raise IdentityError("unknown organization", member[0])
            msp.verify(block.orderer, block.header_bytes, block.signature)
        except IdentityError as exc:
            problems.append(Problem(number, "orderer-signature", str(exc)))
        previous, expected = block.hash, number + 1
        if not replaying:
            continue
        result = validator.validate_block(block, state, seen)
        for index, (check, recorded) in enumerate(zip(result.checks, codes)):
            if check.code.value != recorded:
                env = block.transactions[index]
                tx = getattr(env, "tx_id", "?")
                problems.append(Problem(number, _reason(recorded, check),
                                        f"tx {index} ({tx[:16]}): stored {recorded}, replay "
                                        f"{check.code.value}" + (f": {check.detail}"
                                                                 if check.detail else "")))
        result.batch.apply()
        validator.apply(result)
        seen.update(block.transactions[i].tx_id for i in result.claimed)  # type: ignore[union-attr]
    if msp is None:
        problems.append(Problem(None, "empty", "the file has no genesis block"))
        return
    report.head = f"height={expected} hash={previous}"
    if replaying and state is not None and config is not None:
        _check_state(conn, state, config, problems)


def _check_state(conn: sqlite3.Connection, state: WorldState, config: ChannelConfig,
                 problems: list[Problem]) -> None:
    stored = {(ns, key): (bytes(value), (block, tx)) for ns, key, value, block, tx
              in conn.execute("SELECT ns, key, value, block, tx FROM state")}
    keys = set(stored) | set(state.public)
    differing = sorted(k for k in keys if stored.get(k) != state.public.get(k))
    if differing:
        problems.append(Problem(None, "world-state", f"{len(differing)} key(s) differ from the "
                                                     f"replay, first {differing[0]}"))
    hashed = {(ns, c, kh): (vh, (b, t)) for ns, c, kh, vh, b, t
              in conn.execute("SELECT ns, collection, key_hash, value_hash, block, tx "
                              "FROM hashed_state")}
    if hashed != state.hashed:
        problems.append(Problem(None, "world-state", "private key hashes differ from the replay"))
    salts = {n: bytes.fromhex(s) for n, s in config.key_salts.items()}
    for ns, coll, kh, key, value, salt, block, tx in conn.execute(
            "SELECT ns, collection, key_hash, key, value, salt, block, tx FROM private_state"):
        live = state.hashed.get((ns, coll, kh))
        if coll not in salts or key_hash(salts[coll], key) != kh:
            problems.append(Problem(None, "private-data", f"{coll}/{key}: key hash mismatch"))
        elif live is None:
            problems.append(Problem(None, "private-data", f"{coll}/{key}: value kept after it "
                                                          f"was purged, deleted or expired"))
        elif live != (value_hash(bytes(salt), bytes(value)), (block, tx)):
            problems.append(Problem(None, "private-data", f"{coll}/{key}: value does not match "
                                                          f"its on-ledger hash"))


@dataclass(frozen=True)
class PrivateWriteProof:
    """Where the ledger commits to a private value: a VALID transaction's hashed write."""

    block: int
    index: int
    tx_id: str


def find_private_write(path: str | Path, chaincode: str, collection: str, key: str,
                       value: bytes, salt: bytes) -> PrivateWriteProof | None:
    """The first VALID transaction whose on-ledger hashes commit to (key, value, salt), if any.

    Works after the value expired or was purged from every side store: the hashes stay."""
    conn = _connect(Path(path))
    try:
        first = conn.execute("SELECT envelope FROM transactions WHERE block = 0").fetchone()
        if first is None:
            return None
        config = _genesis_config(Block(0, ZERO_HASH, "", (bytes(first[0]),), b"", b""))
        salt_hex = config.key_salts.get(collection)
        if salt_hex is None:
            raise ConfigError(f"no collection {collection!r} on channel {config.name!r}")
        kh = key_hash(bytes.fromhex(salt_hex), key)
        vh = value_hash(bytes(salt), bytes(value))
        needle = kh.encode("ascii")
        for block, index, tx_id, raw in conn.execute(
                "SELECT block, idx, tx_id, envelope FROM transactions WHERE code = 'VALID' "
                "ORDER BY block, idx"):
            if needle not in raw:
                continue
            env = Envelope.from_bytes(bytes(raw))
            if env.header.get("chaincode") != chaincode:
                continue
            writes = env.rwset.hashed_writes.get(collection, {})
            if writes.get(kh) == ("put", vh):
                return PrivateWriteProof(block, index, tx_id)
        return None
    finally:
        conn.close()
