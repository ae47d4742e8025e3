"""Peers' ledger snapshots (`chains.fabric.snapshot`): a peer keeps no blocks below its snapshot
but the genesis, reopens from it, and verify checks it against the orderer's chain."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import zlib
from pathlib import Path

import pytest
from support_fabric_files import execute, repack, stored_block

from chains.fabric import (
    CollectionConfig,
    Gateway,
    LedgerStateError,
    Network,
    ValidationCode,
    verify_channel_file,
)
from chains.verify import verify_path

ORGS = ("Org1", "Org2")
COLLECTIONS = [CollectionConfig("c", "OR('Org1.member')", endorsement_policy="OR('Org1.peer')",
                                block_to_live=3)]
CHAINCODE = {
    "put": lambda stub, key, value: stub.put_state(key, value),
    "secret": lambda stub, key: stub.put_private_data("c", key, stub.get_transient()["v"]),
}


def open_channel(path: Path | None):
    net = Network.create(ORGS, seed=23, path=path)
    ch = net.create_channel("ch", ORGS, "OR('Org1.peer', 'Org2.peer')", COLLECTIONS,
                            nonce=b"snapshot-tests")
    ch.install_chaincode("kv", CHAINCODE)
    return net, ch, Gateway(ch, net.client("Org1"))


def play(gw: Gateway, first: int, count: int) -> None:
    for i in range(first, first + count):
        assert gw.submit("kv", "put", f"k{i % 3}", f"v{i}").valid
        assert gw.submit("kv", "secret", f"s{i}", transient={"v": f"secret {i}"}).valid


def stored_numbers(path: Path) -> list[int]:
    conn = sqlite3.connect(path)
    try:
        return [n for (n,) in conn.execute("SELECT number FROM blocks ORDER BY number")]
    finally:
        conn.close()


def folder_problems(folder: Path) -> list[tuple[str, int | None, str]]:
    return [(Path(r.path).name, p.block, p.reason) for r in verify_path(folder)
            for p in r.problems]


@pytest.fixture()
def snapshotted(tmp_path: Path) -> Path:
    """A channel whose peers took a snapshot at height 8 (blocks 1..7 dropped), then 4 more
    blocks."""
    net, ch, gw = open_channel(tmp_path)
    play(gw, 0, 3)  # blocks 2..7 (the config and the definition first)
    assert ch.snapshot() == 8
    play(gw, 3, 2)
    net.close()
    return tmp_path / "ch"


def test_a_snapshot_drops_the_peers_blocks_and_the_folder_still_verifies(
        snapshotted: Path, tmp_path: Path) -> None:
    for peer in ("peer0.Org1.db", "peer0.Org2.db"):
        assert stored_numbers(snapshotted / peer) == [0, 8, 9, 10, 11]
        report = verify_channel_file(snapshotted / peer)
        assert report.ok, report.problems
        assert any("snapshot at height 8" in note for note in report.notes)
    assert stored_numbers(snapshotted / "orderer.db") == list(range(12))
    assert folder_problems(snapshotted) == []
    # the same calls without a snapshot: the same blocks, the same world state
    net, ch, gw = open_channel(None)
    play(gw, 0, 5)
    reopened, twin, _ = open_channel(tmp_path)
    assert [ch.block(n).hash for n in range(12)] == [twin.block(n).hash for n in range(12)]
    for kept, full in zip(twin.peers, ch.peers):
        assert kept.state.public == full.state.public
        assert kept.state.hashed == full.state.hashed
        assert kept.tx_ids == full.tx_ids and kept.height == full.height == 12
    reopened.close()
    net.close()


def test_a_reopened_peer_goes_on_from_its_snapshot(snapshotted: Path, tmp_path: Path) -> None:
    net, ch, gw = open_channel(tmp_path)
    old = ch.block(4).transactions[0]  # an envelope of a block the peers dropped
    assert ch.broadcast(old).status().code is ValidationCode.DUPLICATE_TXID
    play(gw, 5, 2)
    assert ch.snapshot() == 17  # a second snapshot replaces the first
    assert gw.submit("kv", "put", "after", "x").valid
    net.close()
    assert stored_numbers(snapshotted / "peer0.Org1.db") == [0, 17]
    assert folder_problems(snapshotted) == []
    net, ch, _ = open_channel(tmp_path)
    assert ch.peers[0].state.get("kv", "after")[0] == b"x"
    net.close()


def test_a_tampered_retained_block_is_named(snapshotted: Path) -> None:
    peer = snapshotted / "peer0.Org2.db"
    block = stored_block(peer, 8)
    repack(peer, 8, envelopes={0: block.envelopes[0].replace(b'"v3"', b'"v9"')})
    assert ("peer0.Org2.db", 8, "data-hash") in folder_problems(snapshotted)
    with pytest.raises(LedgerStateError, match="block 8"):
        open_channel(snapshotted.parent)


def rewrite_content(path: Path, change, *, rehash: bool) -> None:
    conn = sqlite3.connect(path)
    with conn:
        body, state_hash = conn.execute("SELECT body, state_hash FROM snapshot").fetchone()
        data = json.loads(zlib.decompress(body))
        change(data)
        content = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
        conn.execute("UPDATE snapshot SET body = ?, state_hash = ?", (
            zlib.compress(content), hashlib.sha256(content).digest() if rehash else state_hash))
    conn.close()


def test_a_snapshot_naming_another_block_fails_verify(snapshotted: Path) -> None:
    peer = snapshotted / "peer0.Org1.db"
    execute(peer, "UPDATE snapshot SET block_hash = ?", bytes(32))
    assert ("peer0.Org1.db", 7, "malformed-row") in folder_problems(snapshotted)  # vs content

    def forge(data: dict) -> None:
        data["block_hash"] = "00" * 32

    rewrite_content(peer, forge, rehash=True)
    found = folder_problems(snapshotted)
    assert ("peer0.Org1.db", 8, "previous-hash") in found  # its first block does not link
    assert ("peer0.Org1.db", 7, "snapshot") in found  # nor is it the orderer's block 7


def test_a_snapshot_whose_state_disagrees_fails_verify(snapshotted: Path) -> None:
    peer = snapshotted / "peer0.Org1.db"

    def forge(data: dict) -> None:
        data["tx_ids"] = data["tx_ids"][1:]  # an old tx id forgotten: replayable again

    rewrite_content(peer, forge, rehash=False)
    assert ("peer0.Org1.db", 7, "snapshot") in folder_problems(snapshotted)
    assert "does not hash" in str(verify_channel_file(peer).problems)
    rewrite_content(peer, lambda data: None, rehash=True)  # hash recomputed: it matches again
    assert verify_channel_file(peer).ok  # alone, the file is consistent ...
    found = [p for r in verify_path(snapshotted) for p in r.problems]
    assert [(p.block, p.reason) for p in found] == [(7, "snapshot")]  # ... not with the orderer
    assert "replayed to height 8" in found[0].detail


def test_a_block_below_the_snapshot_is_named(snapshotted: Path) -> None:
    orderer, peer = snapshotted / "orderer.db", snapshotted / "peer0.Org1.db"
    conn = sqlite3.connect(peer)
    with conn:
        conn.execute(f"ATTACH '{orderer}' AS o")
        conn.execute("INSERT INTO blocks SELECT * FROM o.blocks WHERE number = 5")
    conn.close()
    assert ("peer0.Org1.db", 5, "snapshot") in folder_problems(snapshotted)


def test_a_format_5_peer_file_is_refused_untouched(tmp_path: Path) -> None:
    net, _, gw = open_channel(tmp_path)
    play(gw, 0, 1)
    net.close()
    peer = tmp_path / "ch" / "peer0.Org1.db"
    execute(peer, "UPDATE meta SET value = '5' WHERE key = 'format'")
    before = peer.read_bytes()
    with pytest.raises(LedgerStateError, match="of format '5'; this version reads format '6'"):
        open_channel(tmp_path)
    assert peer.read_bytes() == before
    (problem,) = verify_channel_file(peer).problems
    assert problem.reason == "meta" and "format '5'" in problem.detail and "'6'" in problem.detail


def snapshot_content(path: Path) -> dict:
    conn = sqlite3.connect(path)
    try:
        (body,) = conn.execute("SELECT body FROM snapshot").fetchone()
    finally:
        conn.close()
    return json.loads(zlib.decompress(body))


def test_a_snapshot_keeps_16_bytes_of_each_used_tx_id(snapshotted: Path, tmp_path: Path) -> None:
    orderer = snapshotted / "orderer.db"
    orderer_ids = [env.tx_id for n in range(8) for env in stored_block(orderer, n).transactions]
    assert len(orderer_ids) == 8 and all(len(t) == 64 for t in orderer_ids)
    kept = snapshot_content(snapshotted / "peer0.Org1.db")["tx_ids"]
    assert kept == sorted(t[:32] for t in orderer_ids)  # every claimed tx of blocks 0..7
    # a duplicate of a dropped block is still refused, by a peer reopened from the snapshot
    net, ch, gw = open_channel(tmp_path)
    old = ch.block(5).transactions[0]
    assert ch.broadcast(old).status().code is ValidationCode.DUPLICATE_TXID
    assert ch.peers[0].tx_ids == set(kept) | {t[:32] for n in range(8, 12)
                                              for t in (e.tx_id for e in ch.block(n).transactions)}
    assert gw.submit("kv", "put", "fresh", "x").valid  # a new tx id is not refused
    net.close()


@pytest.mark.parametrize("bad", ["AB" * 16, "ab" * 32, "ab" * 15 + "zz", 7])
def test_a_snapshot_with_a_mistyped_used_tx_id_is_named(snapshotted: Path, bad: object) -> None:
    peer = snapshotted / "peer0.Org1.db"

    def forge(data: dict) -> None:
        data["tx_ids"][0] = bad

    rewrite_content(peer, forge, rehash=True)
    (problem,) = verify_channel_file(peer).problems
    assert (problem.block, problem.reason) == (7, "malformed-row")
    assert "used tx id" in problem.detail or "expected a string" in problem.detail
    with pytest.raises(LedgerStateError, match="garbled|disagrees"):
        open_channel(snapshotted.parent)
