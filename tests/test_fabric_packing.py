"""Packed channel blocks: the stored bytes shrink, the hashed bytes do not change, and every
garbled body, dictionary or certificate reference is named by block, in verify and on reopen."""

from __future__ import annotations

import sqlite3
import zlib
from pathlib import Path

import pytest
from support_fabric_files import execute, repack, stored_block

from chains.errors import MalformedError
from chains.fabric import Gateway, LedgerStateError, Network, verify_channel_file
from chains.fabric.orderer_store import OrdererStore
from chains.fabric.packing import (
    BINARY,
    BLOCK_COLUMNS,
    STRIPPED,
    BlockPacking,
    deflate,
    hex_to_raw,
    join_envelopes,
    raw_to_hex,
    restore_data_hash,
    restore_derived,
    split_envelopes,
    strip_derived,
)
from chains.fabric.store import FORMAT as PEER_FORMAT
from chains.fabric.store import LedgerStore

ORGS = ("Org1", "Org2", "Org3")
POLICY = "OutOf(2, 'Org1.peer', 'Org2.peer', 'Org3.peer')"


def build(folder: Path) -> Network:
    """Blocks 0 config, 1 chaincode definition, 2-5 one `put` each (two endorsers)."""
    net = Network.create(ORGS, seed=5, path=folder)
    ch = net.create_channel("ch", ORGS, POLICY, nonce=b"packing-tests")
    ch.install_chaincode("kv", {"put": lambda stub, key, value: stub.put_state(key, value)})
    gw = Gateway(ch, net.client("Org1"))
    for i in range(4):
        assert gw.submit("kv", "put", f"k{i}", "v" * 40).valid
    return net


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("packed")
    build(folder).close()
    return folder


def copy_of(ledger: Path, tmp_path: Path, name: str = "peer0.Org1.db") -> Path:
    target = tmp_path / "ch" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    for file in (ledger / "ch").glob("*.db"):
        (tmp_path / "ch" / file.name).write_bytes(file.read_bytes())
    return target


def problems(path: Path) -> list[tuple[int | None, str, str]]:
    return [(p.block, p.reason, p.detail) for p in verify_channel_file(path).problems]


def test_a_packed_block_reads_back_byte_identical_and_costs_a_fraction(tmp_path: Path) -> None:
    net = build(tmp_path)
    orderer = net.channel("ch").orderer.store
    live = [orderer.block(n) for n in range(orderer.height)]
    net.close()
    conn = sqlite3.connect(tmp_path / "ch" / "peer0.Org2.db")
    packing = BlockPacking.of(conn)
    for block in live:
        row = conn.execute(f"SELECT {BLOCK_COLUMNS} FROM blocks WHERE number = ?",
                           (block.number,)).fetchone()
        again = packing.unpack(row)
        assert (again.header_bytes, again.envelopes, again.orderer, again.signature) == \
            (block.header_bytes, block.envelopes, block.orderer, block.signature)
        assert again.hash == block.hash and len(row) == 5  # the hash is not stored
        raw = len(join_envelopes((block.header_bytes, *block.envelopes)))
        if block.number >= 2:  # an envelope with three certificates (creator, 2 endorsers)
            assert len(row[4]) < raw / 3, (block.number, len(row[4]), raw)
    # each certificate is stored once: after the first `put`, the same creator and endorsers
    # add none, and every body of a `put` is packed with the same dictionary
    pems = [pem for _, pem in conn.execute("SELECT id, pem FROM certificates")]
    assert len(pems) == len(set(pems))
    sizes = {n: k for n, k in conn.execute("SELECT number, dictionary FROM blocks")}
    assert sizes[2] == sizes[5] == len(pems)
    conn.close()


def test_same_seed_same_stored_rows(tmp_path: Path) -> None:
    """Packing is deterministic: two runs of one seed store the same bytes."""
    rows = []
    for name in ("a", "b"):
        build(tmp_path / name).close()
        conn = sqlite3.connect(tmp_path / name / "ch" / "peer0.Org3.db")
        rows.append(conn.execute(f"SELECT {BLOCK_COLUMNS} FROM blocks ORDER BY number")
                    .fetchall() + conn.execute("SELECT * FROM certificates").fetchall())
        conn.close()
    assert rows[0] == rows[1]


@pytest.mark.parametrize("name", ["peer0.Org1.db", "orderer.db"])
def test_a_tampered_compressed_body_is_named_by_block(ledger: Path, tmp_path: Path,
                                                      name: str) -> None:
    path = copy_of(ledger, tmp_path, name)
    conn = sqlite3.connect(path)
    (body,) = conn.execute("SELECT body FROM blocks WHERE number = 3").fetchone()
    conn.close()
    flipped = bytearray(body)
    flipped[len(body) // 2] ^= 0x10
    execute(path, "UPDATE blocks SET body = ? WHERE number = 3", bytes(flipped))
    found = problems(path)
    assert found and found[0][0] == 3, found
    assert found[0][1] in {"malformed-row", "data-hash", "orderer-signature"}, found


def test_a_rewritten_envelope_packed_like_the_writer_fails_its_data_hash(ledger: Path,
                                                                        tmp_path: Path) -> None:
    path = copy_of(ledger, tmp_path)
    raw = stored_block(path, 4).envelopes[0]
    assert b'"v' in raw
    repack(path, 4, envelopes={0: raw.replace(b"vvvv", b"vvvw", 1)})
    assert (4, "data-hash") in [(b, r) for b, r, _ in problems(path)]


@pytest.mark.parametrize("tamper, detail", [
    ("UPDATE blocks SET orderer = 99 WHERE number = 3", "orderer certificate #99 is not in"),
    ("UPDATE blocks SET dictionary = 99 WHERE number = 3", "dictionary names 99 certificates"),
])
def test_a_reference_to_a_certificate_the_file_lacks_is_named(ledger: Path, tmp_path: Path,
                                                                                                      tamper: str, detail: str) -> None:
    path = copy_of(ledger, tmp_path)
    execute(path, tamper)
    found = problems(path)
    assert found[0][:2] == (3, "malformed-row") and detail in found[0][2], found
    net = Network.create(ORGS, seed=5, path=tmp_path)
    with pytest.raises(LedgerStateError, match="peer0.Org1.db.*block 3"):
        net.create_channel("ch", ORGS, POLICY, nonce=b"packing-tests")
    net.close()


def test_a_changed_certificate_breaks_every_block_that_uses_it(ledger: Path,
                                                               tmp_path: Path) -> None:
    path = copy_of(ledger, tmp_path)
    conn = sqlite3.connect(path)
    (pem,) = conn.execute("SELECT pem FROM certificates WHERE id = 1").fetchone()  # orderer's
    conn.close()
    execute(path, "UPDATE certificates SET pem = ? WHERE id = 1", pem.replace(b"A", b"B", 1))
    found = problems(path)
    assert found and found[0][0] == 0, found


def test_a_tampered_orderer_file_is_refused_at_reopen(ledger: Path, tmp_path: Path) -> None:
    path = copy_of(ledger, tmp_path, "orderer.db")
    execute(path, "UPDATE blocks SET body = x'00ff' WHERE number = 2")
    with pytest.raises(LedgerStateError, match="block 2"):
        OrdererStore(path, channel="ch")


FORMAT_2_SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE blocks(
    number INTEGER PRIMARY KEY, header BLOB NOT NULL, hash TEXT NOT NULL, orderer BLOB NOT NULL,
    signature BLOB NOT NULL);
CREATE TABLE transactions(
    block INTEGER NOT NULL, idx INTEGER NOT NULL, tx_id TEXT NOT NULL, code TEXT NOT NULL,
    envelope BLOB NOT NULL, PRIMARY KEY(block, idx));
INSERT INTO meta VALUES ('kind', 'fabric-channel'), ('format', '2'), ('channel', 'ch'),
    ('peer', 'peer0.Org1');
"""


def test_a_format_2_file_is_refused_naming_both_versions(tmp_path: Path) -> None:
    path = tmp_path / "ch" / "peer0.Org1.db"
    path.parent.mkdir()
    conn = sqlite3.connect(path)
    conn.executescript(FORMAT_2_SCHEMA)
    conn.close()
    before = path.read_bytes()
    with pytest.raises(LedgerStateError,
                       match=f"of format '2'; this version reads format '{PEER_FORMAT}'"):
        LedgerStore(path, channel="ch", peer="peer0.Org1")
    assert path.read_bytes() == before
    (found,) = problems(path)
    assert found[1] == "meta" and "format '2'" in found[2] and f"format '{PEER_FORMAT}'" in found[2]


def _framed_parts(path: Path, number: int) -> list[tuple[bytes, int]]:
    """Block `number`'s stored parts (header, then envelopes) and their flags."""
    conn = sqlite3.connect(path)
    packing = BlockPacking.of(conn)
    (size, body) = conn.execute("SELECT dictionary, body FROM blocks WHERE number = ?",
                                (number,)).fetchone()
    conn.close()
    return list(split_envelopes(zlib.decompressobj(-15, packing.dictionary(size, number))
                                .decompress(body)))


@pytest.mark.parametrize("name", ["peer0.Org1.db", "orderer.db"])
def test_an_envelope_is_stored_without_what_a_reader_derives(ledger: Path, name: str) -> None:
    """Format 4: an endorser transaction is stored without its tx_id and proposal hash (both
    SHA-256 of what it holds), and reads back byte-identical; the config envelope is whole.
    Format 5: a block header without its data hash, a write of an argument's value as a
    reference to the argument."""
    path = ledger / "ch" / name
    block = stored_block(path, 3)
    (header, header_flags), (stored, flags) = _framed_parts(path, 3)
    envelope = block.transactions[0]
    assert flags == STRIPPED | BINARY and header_flags == STRIPPED | BINARY
    assert b"data_hash" not in header and b"data_hash" in block.header_bytes
    assert restore_data_hash(raw_to_hex(header), block.envelopes) == block.header_bytes
    assert envelope.tx_id.encode() not in stored and b"proposal_hash" not in stored
    assert envelope.tx_id.encode() in block.envelopes[0]
    stored = raw_to_hex(stored)
    assert b'["k1",{"arg":1}]' in stored and ("v" * 40).encode().hex().encode() not in stored
    assert ("v" * 40).encode().hex().encode() in block.envelopes[0]
    assert restore_derived(stored) == block.envelopes[0] and strip_derived(stored) is None
    assert [flags & STRIPPED for _, flags in _framed_parts(path, 0)] == [STRIPPED, 0]  # config


def _store_stripped_envelope(path: Path, envelope: bytes) -> None:
    """Repack block 4 of `path` with `envelope` as its stored, stripped transaction (the
    header kept): what a writer that skipped the pack-time checks would store."""
    conn = sqlite3.connect(path)
    packing = BlockPacking.of(conn)
    size = conn.execute("SELECT dictionary FROM blocks WHERE number = 4").fetchone()[0]
    conn.close()
    (header, header_flags), _ = _framed_parts(path, 4)
    body = deflate(join_envelopes((header, envelope), (header_flags, STRIPPED)),
                   packing.dictionary(size, 4))
    execute(path, "UPDATE blocks SET body = ? WHERE number = 4", body)


def test_a_write_naming_no_argument_is_malformed(ledger: Path, tmp_path: Path) -> None:
    path = copy_of(ledger, tmp_path)
    _, (stored, _) = _framed_parts(path, 4)
    _store_stripped_envelope(path, raw_to_hex(stored).replace(b'{"arg":1}', b'{"arg":2}'))
    found = problems(path)
    assert found[0][:2] == (4, "malformed-row") and "names no argument" in found[0][2], found


def test_a_block_above_0_needs_the_genesis_chain_id(ledger: Path) -> None:
    """The dictionary of blocks 1, 2, ... holds the chain id the genesis block names: without
    a readable genesis block they do not unpack, and say why."""
    conn = sqlite3.connect(ledger / "ch" / "orderer.db")
    packing = BlockPacking.of(conn)
    row = conn.execute(f"SELECT {BLOCK_COLUMNS} FROM blocks WHERE number = 3").fetchone()
    conn.close()
    assert packing.chain == packing.unpack(row).header.chain
    blind = BlockPacking(packing.certificates)
    with pytest.raises(MalformedError, match="block 3: the file has no readable genesis"):
        blind.unpack(row)


def test_a_changed_nonce_in_a_stripped_envelope_fails_its_signature(ledger: Path,
                                                                    tmp_path: Path) -> None:
    """The tx_id a reader derives follows a changed nonce, which the creator signed: the block
    is named, whether the attacker repacks with or without recomputing the hashes."""
    path = copy_of(ledger, tmp_path)
    raw = stored_block(path, 4).envelopes[0]
    nonce = raw.split(b'"nonce":"')[1][:4]
    repack(path, 4, envelopes={0: raw.replace(b'"nonce":"' + nonce,
                                              b'"nonce":"' + nonce[::-1], 1)})
    assert [b for b, _, _ in problems(path)][:1] == [4]


def test_a_stripped_envelope_that_holds_a_derived_field_is_malformed(ledger: Path,
                                                                     tmp_path: Path) -> None:
    path = copy_of(ledger, tmp_path)
    _, (stored, _) = _framed_parts(path, 4)
    _store_stripped_envelope(path, restore_derived(raw_to_hex(stored)))  # whole, flagged stripped
    found = problems(path)
    assert found[0][:2] == (4, "malformed-row") and "derived field" in found[0][2], found


def test_an_orderer_file_of_format_5_is_refused_untouched(ledger: Path, tmp_path: Path) -> None:
    path = copy_of(ledger, tmp_path, "orderer.db")
    execute(path, "UPDATE meta SET value = '5' WHERE key = 'format'")
    before = path.read_bytes()
    with pytest.raises(LedgerStateError, match="of format '5'; this version reads format '6'"):
        OrdererStore(path, channel="ch")
    assert path.read_bytes() == before
    (found,) = problems(path)
    assert found[1] == "meta" and "format '5'" in found[2] and "format '6'" in found[2]


@pytest.mark.parametrize("text", [
    b'{"a":"' + b"0f" * 16 + b'","b":["' + b"ab" * 40 + b'"],"c":"' + b"1" * 31 + b'"}',
    b'["' + b"00" * 300 + b'"]',
    b'{"s":"x\\"' + b"ee" * 20 + b'"}',  # an escaped quote, then hex: still exact
])
def test_hex_strings_stored_raw_come_back_exactly(text: bytes) -> None:
    packed = hex_to_raw(text)
    assert packed is not None and len(packed) < len(text) and raw_to_hex(packed) == text
    assert hex_to_raw(b'{"a":"' + b"0F" * 20 + b'"}') is None  # upper case: not canonical hex
    assert hex_to_raw(text + b"\x01") is None  # a raw control byte: left whole
    with pytest.raises(MalformedError, match="cut short"):
        raw_to_hex(packed[:packed.index(b"\x01") + 6])
