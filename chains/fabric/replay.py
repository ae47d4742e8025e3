"""Replaying a peer's channel file from its signed blocks: what a peer reopening it and the
offline verifier both run.

The genesis block (the channel config: member CAs, orderer organization, collections) is the
trust anchor. Then, block by block: numbers without gaps ("missing-block"), the chain id
("block-chain"), the hash link ("previous-hash": a block's hash is the SHA-256 of the header
the reader unpacks, never stored), the data hash ("data-hash"), time that never goes back
("block-time"), the orderer's signature at the
block's time ("orderer-signature"). Validation is replayed exactly as peers run it and each
stored code and transaction id is compared with the replayed one ("creator-signature",
"endorsement-signature", "endorsement-policy", "validation-code", "tx-id"). `check_derived`
then requires the stored world state, key hashes and chaincode definitions to equal the replay
("world-state", "chaincodes") and every side-store value to match its on-ledger salted hashes
and still be alive ("private-data"). Rows of the wrong SQLite type are "malformed-row".
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Collection
from dataclasses import dataclass, field

from chains.errors import ChainsError, IdentityError, MalformedError
from chains.fabric.block import Block, data_hash
from chains.fabric.codec import ZERO_HASH
from chains.fabric.config import ChaincodeDefinition, ChannelConfig
from chains.fabric.errors import ConfigError
from chains.fabric.packing import BLOCK_COLUMNS, BlockPacking
from chains.fabric.private_data import key_hash, value_hash
from chains.fabric.snapshot import Snapshot, read_snapshot
from chains.fabric.state import WorldState
from chains.fabric.transaction import CONFIG, Envelope, used_id
from chains.fabric.validator import ChannelValidator, TxCheck, ValidationCode
from chains.msp import MSP
from chains.report import Problem

__all__ = ["ChannelReplay", "check_derived", "genesis_config", "replay_blocks"]


@dataclass
class ChannelReplay:
    """What replaying a channel file established, and what did not verify."""

    config: ChannelConfig | None = None
    validator: ChannelValidator | None = None
    state: WorldState | None = None
    seen: set[str] = field(default_factory=set)
    height: int = 0
    last_hash: str = ZERO_HASH
    last_time: int = 0
    hashes: dict[int, str] = field(default_factory=dict)  # block number -> hash, as replayed
    transactions: int = 0
    complete: bool = True  # every block was validated (no gap stopped the replay)
    problems: list[Problem] = field(default_factory=list)
    snapshot: Snapshot | None = None  # the peer file's, when it took one
    state_hashes: dict[int, str] = field(default_factory=dict)  # height -> snapshot state hash


def genesis_config(block: Block) -> ChannelConfig:
    """The channel config block 0 holds; ConfigError if it is not a single config transaction."""
    txs = block.transactions
    if block.previous_hash != ZERO_HASH or len(txs) != 1 or not isinstance(txs[0], Envelope) \
            or txs[0].type != CONFIG:
        raise ConfigError("block 0 is not a single channel config transaction")
    return ChannelConfig.from_dict(txs[0].body["config"])


def _reason(recorded: str, check: TxCheck) -> str:
    if recorded == ValidationCode.VALID.value:
        if check.code is ValidationCode.BAD_SIGNATURE:
            return "creator-signature"
        if check.code is ValidationCode.ENDORSEMENT_POLICY_FAILURE:
            return "endorsement-signature" if check.bad_endorsements else "endorsement-policy"
    return "validation-code"


def read_block(conn: sqlite3.Connection, packing: BlockPacking, row: tuple,
               transactions: bool) -> tuple[Block, list[tuple]]:
    """The Block of a `blocks` row and its transaction rows (idx, tx_id, code) from the peer
    file's `transactions` (`transactions` False: the orderer's file, (idx,) only);
    MalformedError naming the block for a garbled row."""
    block = packing.unpack(row)
    number = block.number
    if transactions:
        txs = conn.execute("SELECT idx, tx_id, code FROM transactions WHERE block = ? "
                           "ORDER BY idx", (number,)).fetchall()
    else:
        txs = [(i,) for i in range(len(block.envelopes))]
    if len(txs) != len(block.envelopes) or any(tx[0] != i for i, tx in enumerate(txs)):
        raise MalformedError(f"block {number}: its transaction rows do not match its "
                             f"{len(block.envelopes)} envelopes")
    if block.number != row[0]:
        raise MalformedError(f"block {row[0]}: the body holds block {block.number}")
    return block, txs


def check_link(replay: ChannelReplay, block: Block, msp: MSP,
               config: ChannelConfig) -> None:
    """The header checks every copy of a chain must pass (peer and orderer files alike)."""
    number, problems = block.number, replay.problems
    if block.header.chain != config.chain_id:
        problems.append(Problem(number, "block-chain", "the header names another chain"))
    if block.previous_hash != replay.last_hash:
        problems.append(Problem(number, "previous-hash", f"{block.previous_hash[:16]}... does "
                                                         f"not link to the block before"))
    if data_hash(block.envelopes) != block.header.data_hash:
        problems.append(Problem(number, "data-hash", "transactions do not hash to the header"))
    if block.timestamp < replay.last_time:
        problems.append(Problem(number, "block-time", f"time {block.timestamp} is before "
                                                      f"{replay.last_time}"))
    try:
        member = msp.validate(block.orderer, at=block.timestamp, role="orderer")
        if member[0] != config.orderer_msp_id:
            raise IdentityError("unknown organization", member[0])
        msp.verify(block.orderer, block.header_bytes, block.signature, at=block.timestamp)
    except IdentityError as exc:
        problems.append(Problem(number, "orderer-signature", str(exc)))
    replay.height, replay.last_hash = number + 1, block.hash
    replay.last_time = max(replay.last_time, block.timestamp)
    replay.hashes[number] = block.hash


def replay_blocks(conn: sqlite3.Connection, *, transactions: bool = True,
                  validate: bool = True, deadline: float | None = None,
                  snapshots_at: Collection[int] = ()) -> ChannelReplay:
    """Replay the `blocks` of a channel file (`transactions` False: an orderer file, whose
    blocks have no stored codes) (see the module doc); past `deadline` (a `time.monotonic()`
    value) it stops with a "timeout" problem. A peer file's snapshot is the state the blocks
    above it are replayed from (block 0, the config, is read first). `snapshots_at`: the
    heights at which to record the hash a snapshot of the replayed state would have
    (`state_hashes`; `validate` needed)."""
    replay = ChannelReplay()
    msp: MSP | None = None
    try:
        packing = BlockPacking.of(conn)
        snapshot = read_snapshot(conn) if transactions else None
    except MalformedError as exc:
        replay.problems.append(Problem(None, "malformed-row", str(exc)))
        replay.complete = False
        return replay
    rows = conn.execute(f"SELECT {BLOCK_COLUMNS} FROM blocks ORDER BY number")
    for row in rows:
        number = row[0]
        if deadline is not None and time.monotonic() > deadline:
            replay.problems.append(Problem(number, "timeout", "verification ran past its "
                                                              "time limit"))
            replay.complete = False
            break
        if replay.snapshot is not None and isinstance(number, int) and 0 < number < \
                replay.snapshot.height:
            replay.problems.append(Problem(number, "snapshot", f"block {number} is below the "
                                           f"snapshot at height {replay.snapshot.height}, "
                                           "which a peer keeps no blocks of"))
            continue
        if number != replay.height:
            replay.problems.extend(Problem(n, "missing-block", "no such block in the file")
                                   for n in range(replay.height, min(number, replay.height + 5))
                                   if isinstance(number, int))
            replay.complete = False
            if not isinstance(number, int) or msp is None:
                break
        try:
            block, txs = read_block(conn, packing, row, transactions)
        except MalformedError as exc:
            replay.problems.append(Problem(number, "malformed-row", str(exc)))
            replay.complete = False
            break
        if number == 0:
            try:
                replay.config = config = genesis_config(block)
                msp = MSP.from_dict(config.msp)
            except ChainsError as exc:
                replay.problems.append(Problem(0, "genesis", str(exc)))
                return replay
            replay.validator = ChannelValidator(config, msp)
            replay.state = WorldState({c.name: c.block_to_live for c in config.collections})
        elif msp is None:
            replay.problems.append(Problem(None, "genesis", "block 0 is missing"))
            return replay
        assert replay.config is not None and replay.validator is not None
        check_link(replay, block, msp, replay.config)
        replay.transactions += len(txs)
        if validate and replay.complete:
            _validate(replay, block, txs)
            if replay.height in snapshots_at:
                replay.state_hashes[replay.height] = _state_hash(replay)
        if number == 0 and snapshot is not None and not _restore(replay, snapshot):
            return replay
    if msp is None and not replay.problems:
        replay.problems.append(Problem(None, "empty", "the file has no genesis block"))
    return replay


def _restore(replay: ChannelReplay, snapshot: Snapshot) -> bool:
    """Continue the replay from the peer's snapshot (after block 0); False, with a problem, if
    the snapshot cannot be used."""
    assert replay.config is not None and replay.validator is not None
    where = snapshot.height - 1
    replay.snapshot = snapshot
    if not snapshot.hash_matches():
        replay.problems.append(Problem(where, "snapshot", "the snapshot's content does not "
                                                          "hash to its state hash"))
        replay.complete = False
        return False
    try:
        content = snapshot.restore({c.name: c.block_to_live for c in replay.config.collections})
    except MalformedError as exc:
        replay.problems.append(Problem(where, "malformed-row", str(exc)))
        replay.complete = False
        return False
    replay.state, replay.seen = content.state, content.tx_ids
    replay.validator.definitions = content.definitions
    replay.height, replay.last_hash = snapshot.height, snapshot.block_hash
    replay.last_time = max(replay.last_time, snapshot.time)
    if replay.hashes.setdefault(where, snapshot.block_hash) != snapshot.block_hash:
        replay.problems.append(Problem(where, "snapshot", "the snapshot names another block "
                                                          f"{where} than the file holds"))
    return True


def _state_hash(replay: ChannelReplay) -> str:
    """The state hash a snapshot taken now would have."""
    assert replay.state is not None and replay.validator is not None
    return Snapshot.take(replay.height, replay.last_hash, replay.last_time, replay.state,
                         replay.validator.definitions, replay.seen).state_hash


def _validate(replay: ChannelReplay, block: Block, txs: list[tuple]) -> None:
    assert replay.validator is not None and replay.state is not None
    result = replay.validator.validate_block(block, replay.state, replay.seen)
    for index, (check, tx) in enumerate(zip(result.checks, txs)):
        if len(tx) < 3:
            continue  # an orderer's block: no stored codes to compare
        _, tx_id, recorded = tx
        env = block.transactions[index]
        expected_id = env.tx_id if isinstance(env, Envelope) else ""
        if tx_id != expected_id:
            replay.problems.append(Problem(block.number, "tx-id", f"tx {index}: stored tx_id "
                                                                  "is not the envelope's"))
        if check.code.value != recorded:
            replay.problems.append(Problem(
                block.number, _reason(str(recorded), check),
                f"tx {index} ({expected_id[:16]}): stored {str(recorded)[:40]}, replay "
                f"{check.code.value}" + (f": {check.detail}" if check.detail else "")))
    result.batch.apply()
    replay.validator.apply(result)
    replay.seen.update(used_id(block.transactions[i].tx_id)  # type: ignore[union-attr]
                       for i in result.claimed)


def check_derived(conn: sqlite3.Connection, replay: ChannelReplay) -> list[Problem]:
    """Stored world state, key hashes, chaincode definitions and side store vs the replay."""
    state, config, validator = replay.state, replay.config, replay.validator
    if state is None or config is None or validator is None or not replay.complete:
        return []
    problems = []
    stored = {(ns, key): (value, (block, tx)) for ns, key, value, block, tx
              in conn.execute("SELECT ns, key, value, block, tx FROM state")}
    keys = set(stored) | set(state.public)
    differing = sorted((k for k in keys if stored.get(k) != state.public.get(k)), key=repr)
    if differing:
        problems.append(Problem(None, "world-state", f"{len(differing)} key(s) differ from the "
                                                     f"replay, first {differing[0]!r}"))
    hashed = {(ns, c, kh): (vh, (b, t)) for ns, c, kh, vh, b, t
              in conn.execute("SELECT ns, collection, key_hash, value_hash, block, tx "
                              "FROM hashed_state")}
    if hashed != state.hashed:
        problems.append(Problem(None, "world-state", "private key hashes differ from the replay"))
    definitions = {}
    for name, raw in conn.execute("SELECT name, definition FROM chaincodes"):
        try:
            definitions[name] = ChaincodeDefinition.from_dict(json.loads(raw))
        except (ValueError, TypeError, ChainsError):
            definitions[name] = None
    if definitions != validator.definitions:
        problems.append(Problem(None, "chaincodes", "stored chaincode definitions differ from "
                                                    "the replay"))
    salts = {n: bytes.fromhex(s) for n, s in config.key_salts.items()}
    for ns, coll, kh, key, value, salt, block, tx in conn.execute(
            "SELECT ns, collection, key_hash, key, value, salt, block, tx FROM private_state"):
        live = state.hashed.get((ns, coll, kh))
        if not isinstance(key, str) or type(value) is not bytes or type(salt) is not bytes:
            problems.append(Problem(None, "malformed-row", f"private_state row of {coll!r}"))
        elif coll not in salts or key_hash(salts[coll], key) != kh:
            problems.append(Problem(None, "private-data", f"{coll}/{key}: key hash mismatch"))
        elif live is None:
            problems.append(Problem(None, "private-data", f"{coll}/{key}: value kept after it "
                                                          f"was purged, deleted or expired"))
        elif live != (value_hash(salt, value), (block, tx)):
            problems.append(Problem(None, "private-data", f"{coll}/{key}: value does not match "
                                                          f"its on-ledger hash"))
    return problems
