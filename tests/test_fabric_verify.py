"""Offline verification of channel files: an honest file verifies; each tampering is named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support_fabric_files import execute, repack, stored_block

from chains.canonical import canonical_json
from chains.fabric import (
    CollectionConfig,
    Gateway,
    LedgerStateError,
    Network,
    ValidationCode,
    verify_channel_file,
)
from chains.fabric.block import Block, data_hash
from chains.fabric.transaction import Envelope
from chains.verify import verify_path

ORGS = ("Org1", "Org2", "Org3")


def _incr(stub, key):
    stub.put_state(key, str(int(stub.get_state(key) or b"0") + 1))


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Blocks: 0 config, 1 chaincode definition, 2 put, 3 two incr (VALID, MVCC), 4 put private,
    5 put. Returns the folder; tests copy the file they tamper with."""
    folder = tmp_path_factory.mktemp("fabric-ledger")
    net = Network.create(ORGS, seed=9, path=folder)
    ch = net.create_channel("ch", ORGS, "OutOf(2, 'Org1.peer', 'Org2.peer', 'Org3.peer')",
                            collections=[CollectionConfig("org1", "OR('Org1.member')")])
    ch.install_chaincode("kv", {
        "put": lambda stub, key, value: stub.put_state(key, value), "incr": _incr,
        "pput": lambda stub, key: stub.put_private_data("org1", key,
                                                        stub.get_transient()["v"])})
    gw = Gateway(ch, net.client("Org1"))
    assert gw.submit("kv", "put", "k", "v").block_number == 2
    first, second = gw.submit_async("kv", "incr", "n"), gw.submit_async("kv", "incr", "n")
    assert (first.status().code, second.status().code) == (ValidationCode.VALID,
                                                            ValidationCode.MVCC_READ_CONFLICT)
    assert gw.submit("kv", "pput", "p", transient={"v": "private"}).valid
    assert gw.submit("kv", "put", "k", "w").block_number == 5
    net.close()
    return folder


def copy_of(ledger: Path, tmp_path: Path, org: str = "Org1") -> Path:
    target = tmp_path / f"peer0.{org}.db"
    target.write_bytes((ledger / "ch" / f"peer0.{org}.db").read_bytes())
    return target


def envelope(path: Path, block: int, index: int) -> dict:
    return json.loads(stored_block(path, block).envelopes[index])


def set_envelope(path: Path, block: int, index: int, env: dict) -> None:
    repack(path, block, envelopes={index: canonical_json(env)})


def reasons(path: Path) -> list[tuple[int | None, str]]:
    report = verify_channel_file(path)
    assert report.ok is (not report.problems)
    return [(p.block, p.reason) for p in report.problems]


def header_of(path: Path, number: int) -> dict:
    return json.loads(stored_block(path, number).header_bytes)


def set_header(path: Path, number: int, header: dict) -> None:
    repack(path, number, header=canonical_json(header))


def test_honest_files_verify(ledger: Path) -> None:
    reports = verify_path(ledger)
    assert sorted(r.kind for r in reports) == ["fabric-channel"] * 3 + ["fabric-orderer"]
    assert all(r.ok for r in reports), [r.summary() for r in reports]
    assert {(r.blocks, r.transactions) for r in reports} == {(6, 7)}
    assert len({r.head for r in reports}) == 1  # every peer has the orderer's chain


def test_changed_write_value(ledger: Path, tmp_path: Path) -> None:
    path = copy_of(ledger, tmp_path)
    env = envelope(path, 2, 0)
    assert env["payload"]["body"]["rwset"]["writes"] == [["k", b"v".hex()]]
    env["payload"]["body"]["rwset"]["writes"] = [["k", b"x".hex()]]
    set_envelope(path, 2, 0, env)
    found = reasons(path)
    assert found == [(2, "data-hash"), (2, "creator-signature")]  # k is rewritten in block 5


def test_changed_write_value_with_rehashed_block(ledger: Path, tmp_path: Path) -> None:
    """A tamperer who also fixes the data hash still breaks the orderer's signature and the
    next block's link (the block's hash is the SHA-256 of the header a reader unpacks)."""
    path = copy_of(ledger, tmp_path)
    env = envelope(path, 2, 0)
    env["payload"]["body"]["rwset"]["writes"] = [["k", b"x".hex()]]
    set_envelope(path, 2, 0, env)
    header = header_of(path, 2)
    header["data_hash"] = data_hash([canonical_json(env)])
    set_header(path, 2, header)
    found = reasons(path)
    assert found[0] == (2, "orderer-signature")
    assert (2, "creator-signature") in found and (3, "previous-hash") in found
    assert (2, "data-hash") not in found


def test_changed_endorsement_signature(ledger: Path, tmp_path: Path) -> None:
    path = copy_of(ledger, tmp_path)
    env = envelope(path, 2, 0)
    signature = env["endorsements"][1]["signature"]
    env["endorsements"][1]["signature"] = ("0" if signature[0] != "0" else "1") + signature[1:]
    set_envelope(path, 2, 0, env)
    found = reasons(path)
    assert found[0] == (2, "data-hash")
    assert (2, "endorsement-signature") in found


def test_removed_block(ledger: Path, tmp_path: Path) -> None:
    path = copy_of(ledger, tmp_path)
    execute(path, "DELETE FROM blocks WHERE number = 3")
    execute(path, "DELETE FROM transactions WHERE block = 3")
    found = reasons(path)
    assert found[0] == (3, "missing-block")
    assert (4, "previous-hash") in found


def test_changed_previous_hash(ledger: Path, tmp_path: Path) -> None:
    path = copy_of(ledger, tmp_path)
    set_header(path, 3, {**header_of(path, 3), "previous_hash": "ab" * 32})
    found = reasons(path)
    assert found[:2] == [(3, "previous-hash"), (3, "orderer-signature")]
    assert (4, "previous-hash") in found  # block 3's hash is that of the header it holds


@pytest.mark.parametrize("index, flipped", [(0, "MVCC_READ_CONFLICT"), (1, "VALID")])
def test_flipped_validation_code(ledger: Path, tmp_path: Path, index: int, flipped: str) -> None:
    path = copy_of(ledger, tmp_path)
    execute(path, "UPDATE transactions SET code = ? WHERE block = 3 AND idx = ?", flipped, index)
    assert reasons(path) == [(3, "validation-code")]


def test_changed_orderer_signature(ledger: Path, tmp_path: Path) -> None:
    path = copy_of(ledger, tmp_path)
    execute(path, "UPDATE blocks SET signature = ? WHERE number = 4", bytes(64))
    assert reasons(path) == [(4, "orderer-signature")]


def test_changed_world_state_and_private_value(ledger: Path, tmp_path: Path) -> None:
    path = copy_of(ledger, tmp_path)
    execute(path, "UPDATE state SET value = ? WHERE key = 'k'", b"forged")
    assert reasons(path) == [(None, "world-state")]
    path = copy_of(ledger, tmp_path)
    execute(path, "UPDATE private_state SET value = ? WHERE key = 'p'", b"forged")
    assert reasons(path) == [(None, "private-data")]


def test_not_a_channel_file(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    execute(path, "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT)")
    execute(path, "INSERT INTO meta VALUES ('kind', 'public-ledger')")
    assert reasons(path) == [(None, "meta")]


# --- an orderer that equivocates, and derived state a peer refuses on reopen ---------------------
def test_an_equivocating_orderer_is_caught_by_comparing_the_files(tmp_path: Path) -> None:
    """The orderer signs two different blocks at one height and gives one to each peer: each
    file verifies alone, the folder does not, and the fork names both block hashes."""
    net = Network.create(ORGS, seed=13, path=tmp_path)
    ch = net.create_channel("ch", ORGS, "OR('Org1.peer', 'Org2.peer', 'Org3.peer')")
    ch.install_chaincode("kv", {"put": lambda stub, key, value: stub.put_state(key, value)})
    gw = Gateway(ch, net.client("Org1"))
    one = gw.endorse(gw.propose("kv", "put", "k", "one")).envelope
    two = gw.endorse(gw.propose("kv", "put", "k", "two")).envelope
    store = ch.orderer.store
    blocks = [Block.cut(ch.height, store.last_hash, store.last_time, ch.config.chain_id,
                        (env.raw,), net.orderer) for env in (one, two)]
    assert blocks[0].number == blocks[1].number and blocks[0].hash != blocks[1].hash
    store.append(blocks[0])
    ch.peers[0].commit(blocks[0])
    for peer in ch.peers[1:]:
        peer.commit(blocks[1])
    net.close()
    alone = [verify_channel_file(p) for p in sorted((tmp_path / "ch").glob("*.db"))]
    assert all(r.ok for r in alone), [r.summary() for r in alone]
    reports = {Path(r.path).name: r for r in verify_path(tmp_path)}
    forks = [(name, p) for name, r in reports.items() for p in r.problems if p.reason == "fork"]
    assert {name for name, _ in forks} == {"peer0.Org2.db", "peer0.Org3.db"}
    for _, problem in forks:
        assert problem.block == blocks[0].number
        assert blocks[0].hash in problem.detail and blocks[1].hash in problem.detail
    assert not reports["peer0.Org2.db"].ok and reports["peer0.Org1.db"].ok


@pytest.mark.parametrize("tamper, reason", [
    ("UPDATE transactions SET code = 'BAD_SIGNATURE' WHERE block = 2", "validation-code"),
    ("UPDATE transactions SET tx_id = 'x' WHERE block = 2", "tx-id"),
    ("UPDATE state SET block = 0 WHERE key = 'k'", "world-state"),
    ("DELETE FROM hashed_state", "world-state"),
    ("DELETE FROM chaincodes", "chaincodes"),
    ("UPDATE chaincodes SET definition = '{}'", "chaincodes"),
    ("INSERT INTO state VALUES ('kv', 'extra', x'00', 2, 0)", "world-state"),
    ("UPDATE blocks SET body = CAST(body AS TEXT) WHERE number = 2", "malformed-row"),
    ("CREATE TRIGGER t AFTER INSERT ON blocks BEGIN DELETE FROM state; END", "schema"),
])
def test_reopen_refuses_a_file_whose_derived_state_disagrees(ledger: Path, tmp_path: Path,
                                                             tamper: str, reason: str) -> None:
    folder = tmp_path / "run"
    (folder / "ch").mkdir(parents=True)
    for file in (ledger / "ch").glob("*.db"):
        (folder / "ch" / file.name).write_bytes(file.read_bytes())
    execute(folder / "ch" / "peer0.Org2.db", tamper)
    assert reason in [r for _, r in reasons(folder / "ch" / "peer0.Org2.db")]
    net = Network.create(ORGS, seed=9, path=folder)
    with pytest.raises(LedgerStateError, match="peer0.Org2.db"):
        net.create_channel("ch", ORGS, "OutOf(2, 'Org1.peer', 'Org2.peer', 'Org3.peer')",
                           collections=[CollectionConfig("org1", "OR('Org1.member')")])
    net.close()


def test_a_replayed_envelope_stays_a_duplicate_after_reopen(ledger: Path, tmp_path: Path) -> None:
    """Claimed tx ids are never stored: they come back from the replay, so no edit of the file
    makes a committed envelope VALID again."""
    folder = tmp_path / "run"
    (folder / "ch").mkdir(parents=True)
    for file in (ledger / "ch").glob("*.db"):
        (folder / "ch" / file.name).write_bytes(file.read_bytes())
    raw = envelope(folder / "ch" / "peer0.Org1.db", 2, 0)
    net = Network.create(ORGS, seed=9, path=folder)
    ch = net.create_channel("ch", ORGS, "OutOf(2, 'Org1.peer', 'Org2.peer', 'Org3.peer')",
                            collections=[CollectionConfig("org1", "OR('Org1.member')")])
    again = ch.broadcast(Envelope.from_bytes(canonical_json(raw))).status()
    assert again is not None and again.code is ValidationCode.DUPLICATE_TXID
    net.close()
