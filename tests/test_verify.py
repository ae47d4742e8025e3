"""`python -m chains verify` on real ledger files, tampered with raw sqlite3 the way an attacker would."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from chains import store
from chains.__main__ import main
from chains.blocks import BlockHeader, TreeHead
from chains.errors import LedgerError
from chains.identity import Identity, OrgCA
from chains.merkle import Frontier
from chains.public_ledger import PublicLedger
from chains.transactions import Transaction
from chains.verify import verify_ledger_file, verify_path


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


CA_KEYS = [bytes([i + 1]) * 32 for i in range(3)]  # known to the tests, who play attacker
CAS = [OrgCA(f"Org{i}MSP", key) for i, key in enumerate(CA_KEYS)]
ORDERER = CAS[0].issue("orderer0", "orderer")
CLIENTS = [ca.issue(f"client{i}", "client") for i, ca in enumerate(CAS)]
ADMIN2, PEER2 = CAS[2].issue("admin2", "admin"), CAS[2].issue("peer2", "peer")


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """Blocks 1-4: a round of update hashes each; 5: Org2 revokes client2; 6: three more txs."""
    path = tmp_path_factory.mktemp("base") / "public.db"
    with PublicLedger.create(path, orgs=CAS, proposer=ORDERER) as ledger:
        for r in range(4):
            for i, client in enumerate(CLIENTS):
                ledger.transact(client, "update-hash", {"round": r, "digest": digest(f"{r}/{i}")})
            ledger.seal()
        revoker = OrgCA("Org2MSP", CA_KEYS[2])
        revoker.revoke(CLIENTS[2].cert)
        ledger.revoke(ADMIN2, revoker.crl())
        ledger.transact(CLIENTS[0], "round-summary", {"round": 3, "accepted": 3, "score": 6.25})
        ledger.seal()
        for sender in (CLIENTS[0], CLIENTS[1], PEER2):
            ledger.anchor("anchor", {"digest": digest(sender.name)}, sender=sender)
        ledger.seal()
    assert not Path(f"{path}-wal").exists()  # checkpointed: the .db file alone is the ledger
    return path


@pytest.fixture
def ledger_copy(base, tmp_path) -> Path:
    path = tmp_path / "public.db"
    shutil.copy(base, path)
    return path


def _dictionary_inputs(path: Path, height: int) -> tuple[str, str, str]:
    """(chain id, previous block hash, the genesis block's proposer id) a block's stored header
    is packed with (its tree head with the chain id)."""
    if height == 0:
        return "", "", ""
    chain = row(path, "SELECT value FROM meta WHERE key = 'chain'")[0]
    return (chain, row(path, "SELECT hash FROM blocks WHERE height = ?", height - 1)[0].hex(),
            stored_header(path, 0).proposer)


def stored_header(path: Path, height: int) -> BlockHeader:
    (packed,) = row(path, "SELECT header FROM blocks WHERE height = ?", height)
    return BlockHeader.decode(store.unpack_header(packed, *_dictionary_inputs(path, height)))


def stored_tree_head(path: Path, height: int) -> TreeHead:
    chain = _dictionary_inputs(path, height)[0]
    (packed,) = row(path, "SELECT tree_head FROM blocks WHERE height = ?", height)
    return TreeHead.decode(store.unpack_tree_head(packed, chain))


def forge_block(path: Path, txs: list[Transaction], proposer: Identity) -> None:
    """Append a block the way a dishonest orderer (or anyone with the library) would."""
    conn = sqlite3.connect(path, isolation_level=None)
    height, size = conn.execute(
        "SELECT height, tree_size FROM blocks ORDER BY height DESC").fetchone()
    prev, prev_head = stored_header(path, height), stored_tree_head(path, height)
    frontier = Frontier()
    for (leaf,) in conn.execute("SELECT id FROM txs ORDER BY seq"):
        frontier.append(leaf)
    block_tree, nodes = Frontier(), []
    for tx in txs:
        block_tree.append(tx.leaf_hash)
        nodes += frontier.append(tx.leaf_hash)
    new = BlockHeader(prev.chain, height + 1, prev.hash, block_tree.root(), len(txs),
                      prev.timestamp + 1, proposer.id)
    sth = TreeHead(prev_head.log, frontier.size, frontier.root(), new.timestamp).signed_by(proposer)
    rows = [(size + i, height + 1, tx.leaf_hash, tx.sender, tx.nonce, tx.kind,
             store.pack_body(tx.body, prev.chain, tx.sender), tx.signature)
            for i, tx in enumerate(txs)]
    certs = [(tx.sender, tx.cert_pem) for tx in txs] + [(proposer.id, proposer.cert_pem)]
    first = stored_header(path, 0).proposer
    store.write_block(conn, (height + 1, new.hash, store.pack_header(new.encode(), prev.chain,
                                                                     prev.hash.hex(), first),
                             new.sign(proposer), sth.size, store.pack_tree_head(sth.encode(),
                                                                                 prev.chain),
                             sth.signature), rows, nodes, certs)
    conn.close()


def sql(path: Path, *statements: tuple) -> None:
    conn = sqlite3.connect(path)
    for statement in statements:
        conn.execute(*statement) if isinstance(statement, tuple) else conn.execute(statement)
    conn.commit()
    conn.close()


def row(path: Path, query: str, *args) -> tuple:
    conn = sqlite3.connect(path)
    found = conn.execute(query, args).fetchone()
    conn.close()
    return found


def change_payload_byte(path):
    """A digest's byte changed in the signed body, stored packed again as the writer packs."""
    chain = row(path, "SELECT value FROM meta WHERE key = 'chain'")[0]
    seq, packed, sender = row(path, "SELECT t.seq, t.body, c.id FROM txs t JOIN certs c "
                                    "ON c.ref = t.sender WHERE t.height = 2 "
                                    "ORDER BY t.seq LIMIT 1 OFFSET 1")
    body = store.unpack_body(packed, chain, sender)
    at = body.index(b'"digest":"') + 10
    body = body[:at] + (b"0" if body[at:at + 1] != b"0" else b"1") + body[at + 1:]
    sql(path, ("UPDATE txs SET body = ? WHERE seq = ?", (store.pack_body(body, chain, sender),
                                                         seq)))


def change_signature(path):
    seq, sig = row(path, "SELECT seq, signature FROM txs WHERE height = 3 LIMIT 1")
    sql(path, ("UPDATE txs SET signature = ? WHERE seq = ?", (bytes([sig[0] ^ 1]) + sig[1:], seq)))


def change_block_signature(path):
    (sig,) = row(path, "SELECT signature FROM blocks WHERE height = 3")
    sql(path, ("UPDATE blocks SET signature = ? WHERE height = 3", (sig[:-1] + bytes([sig[-1] ^ 4]),)))


def swap_transactions(path):
    cols = "seq, height, id, sender, nonce, kind, body, signature"
    a, b = (row(path, f"SELECT {cols} FROM txs WHERE height = 2 ORDER BY seq LIMIT 1 OFFSET {i}")
            for i in (0, 1))
    insert = f"INSERT INTO txs({cols}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    sql(path, ("DELETE FROM txs WHERE seq IN (?, ?)", (a[0], b[0])),
        (insert, (a[0], *b[1:])), (insert, (b[0], *a[1:])))


def remove_transaction(path):
    sql(path, "DELETE FROM txs WHERE seq = (SELECT MAX(seq) FROM txs WHERE height = 4)")


def remove_block(path):
    sql(path, "DELETE FROM blocks WHERE height = 3")


def reorder_blocks(path):
    """Blocks 2 and 3 swapped, their headers and tree heads packed for their new places."""
    cols = "hash, signature, tree_size, tree_head_signature"
    moved = {}
    for old, new in ((2, 3), (3, 2)):
        chain, prev, first = _dictionary_inputs(path, new)
        hash_, signature, size, head_sig = row(path, f"SELECT {cols} FROM blocks WHERE height = ?",
                                               old)
        header = store.pack_header(stored_header(path, old).encode(), chain, prev, first)
        head = store.pack_tree_head(stored_tree_head(path, old).encode(), chain)
        moved[new] = (hash_, header, signature, size, head, head_sig)
    update = ("UPDATE blocks SET hash = ?, header = ?, signature = ?, tree_size = ?, tree_head = ?, "
              "tree_head_signature = ? WHERE height = ?")
    sql(path, (update, (*moved[2], 2)), (update, (*moved[3], 3)))


def change_previous_hash(path):
    """Block 4's header names block 2 as its previous block, stored packed as the writer packs."""
    fields = json.loads(stored_header(path, 4).encode())
    fields["prev"] = row(path, "SELECT hash FROM blocks WHERE height = 2")[0].hex()
    header = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    sql(path, ("UPDATE blocks SET header = ? WHERE height = 4",
               (store.pack_header(header, *_dictionary_inputs(path, 4)),)))


def forge_proposer_key(path):
    impostor = OrgCA.create("Org0MSP", seed=b"attacker").issue("orderer0", "orderer")
    chain = row(path, "SELECT value FROM meta WHERE key = 'chain'")[0]
    tx = Transaction.create(CLIENTS[0], "anchor", {"digest": digest("forged")}, nonce=7, chain=chain)
    forge_block(path, [tx], impostor)


def rewind_tree_head(path):
    old = row(path, "SELECT tree_size, tree_head, tree_head_signature FROM blocks WHERE height = 4")
    update = "UPDATE blocks SET tree_size = ?, tree_head = ?, tree_head_signature = ? WHERE height = 6"
    sql(path, (update, old))


def truncate_file(path):
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size // 2)


def revoked_sender(path):
    chain = row(path, "SELECT value FROM meta WHERE key = 'chain'")[0]
    tx = Transaction.create(CLIENTS[2], "anchor", {"digest": digest("after revocation")},
                            nonce=4, chain=chain)  # the revoked client's next nonce
    forge_block(path, [tx], ORDERER)  # signed by the real orderer, even so


def replay_transaction(path):
    chain = row(path, "SELECT value FROM meta WHERE key = 'chain'")[0]
    packed, sig, pem, sender = row(path, "SELECT t.body, t.signature, c.pem, c.id FROM txs t "
                                         "JOIN certs c ON c.ref = t.sender WHERE t.height = 1 "
                                         "LIMIT 1")
    body = store.unpack_body(packed, chain, sender)
    sql(path, "DROP INDEX txs_by_id")  # the file's own uniqueness guard goes first: a schema change
    forge_block(path, [Transaction.decode(body, sig, pem)], ORDERER)


def skip_a_nonce(path):
    chain = row(path, "SELECT value FROM meta WHERE key = 'chain'")[0]
    forge_block(path, [Transaction.create(CLIENTS[0], "anchor", {"digest": digest("n")},
                                          nonce=9, chain=chain)], ORDERER)


def expired_sender(path):
    chain = row(path, "SELECT value FROM meta WHERE key = 'chain'")[0]
    short = CAS[1].issue("short-lived", "client", valid_until=3)  # blocks are at times 0..6
    forge_block(path, [Transaction.create(short, "anchor", {"digest": digest("late")},
                                          nonce=0, chain=chain)], ORDERER)


def ca_certificate_as_signer(path):
    from support_chains import forged_identity

    chain = row(path, "SELECT value FROM meta WHERE key = 'chain'")[0]
    rogue = forged_identity(CAS[1], CA_KEYS[1], ca_flag=True)
    forge_block(path, [Transaction.create(rogue, "anchor", {"digest": digest("r")}, nonce=0,
                                          chain=chain)], ORDERER)


def expired_proposer(path):
    chain = row(path, "SELECT value FROM meta WHERE key = 'chain'")[0]
    old = CAS[0].issue("old-orderer", "orderer", valid_until=5)
    forge_block(path, [Transaction.create(CLIENTS[0], "anchor", {"digest": digest("p")},
                                          nonce=7, chain=chain)], old)


def lower_a_transaction_height(path):
    (seq,) = row(path, "SELECT seq FROM txs WHERE height = 2 ORDER BY seq LIMIT 1 OFFSET 1")
    sql(path, ("UPDATE txs SET height = 1 WHERE seq = ?", (seq,)))


def change_stored_nonce(path):
    sql(path, "UPDATE txs SET nonce = nonce + 1 WHERE seq = 7")


def change_stored_kind(path):
    sql(path, "UPDATE txs SET kind = 'revoke' WHERE seq = 8")


def point_a_sender_at_another_certificate(path):
    """The sender stored as a `certs.ref` (format 4) names another member's certificate."""
    update = ("UPDATE txs SET sender = (SELECT ref FROM certs WHERE id = ?) WHERE seq = 7 AND "
              "sender != (SELECT ref FROM certs WHERE id = ?)")
    sql(path, (update, (CLIENTS[1].id, CLIENTS[1].id)))


def add_an_unused_certificate(path):
    sql(path, ("INSERT INTO certs(id, pem) VALUES (?, ?)", (PEER2.id + "0", PEER2.cert_pem)))


def text_where_a_blob_is_expected(path):
    sql(path, "UPDATE txs SET body = CAST(body AS TEXT) WHERE seq = 2")


def add_a_view(path):
    sql(path, "CREATE VIEW everything AS SELECT * FROM txs")


def add_a_trigger(path):
    sql(path, "CREATE TRIGGER t AFTER INSERT ON txs BEGIN DELETE FROM certs; END")


def deep_json_header(path):
    deep = store.pack_header(b"[" * 100_000, *_dictionary_inputs(path, 2))
    sql(path, ("UPDATE blocks SET header = ? WHERE height = 2", (deep,)))


def change_chain_in_meta(path):
    sql(path, ("UPDATE meta SET value = ? WHERE key = 'chain'", (digest("other"),)))


def delete_certificate(path):
    sql(path, ("DELETE FROM certs WHERE id = ?", (CLIENTS[0].id,)))


def change_merkle_node(path):
    sql(path, "UPDATE nodes SET hash = zeroblob(32) WHERE last = 7 AND level = 3")


def change_stored_tx_id(path):
    sql(path, "UPDATE txs SET id = zeroblob(32) WHERE seq = 5")


def text_in_an_integer_column(path):
    sql(path, "UPDATE txs SET nonce = 'one' WHERE seq = 3")


def change_block_hash(path):
    sql(path, "UPDATE blocks SET hash = zeroblob(32) WHERE height = 5")


TAMPERING = [  # (tampering, first bad block, reason)
    (change_payload_byte, 2, "tx-signature"),
    (change_signature, 3, "tx-signature"),
    (change_block_signature, 3, "block-signature"),
    (swap_transactions, 2, "tx-root"),
    (remove_transaction, 4, "tx-count"),
    (remove_block, 3, "block-missing"),
    (reorder_blocks, 2, "block-height"),
    (change_previous_hash, 4, "prev-hash"),
    (forge_proposer_key, 7, "proposer-identity"),
    (rewind_tree_head, 6, "tree-head-rewound"),
    (truncate_file, None, "truncated"),
    (revoked_sender, 7, "revoked-identity"),
    (replay_transaction, None, "schema"),
    (skip_a_nonce, 7, "tx-nonce"),
    (expired_sender, 7, "identity-time"),
    (ca_certificate_as_signer, 7, "identity-usage"),
    (expired_proposer, 7, "proposer-identity"),
    (lower_a_transaction_height, 2, "tx-height"),
    (change_stored_nonce, 3, "tx-index"),
    (change_stored_kind, 3, "tx-index"),
    (point_a_sender_at_another_certificate, 3, "tx-signature"),
    (add_an_unused_certificate, None, "orphan-certificate"),
    (text_where_a_blob_is_expected, 1, "malformed-row"),
    (add_a_view, None, "schema"),
    (add_a_trigger, None, "schema"),
    (deep_json_header, 2, "malformed-block"),
    (change_chain_in_meta, None, "meta"),
    (delete_certificate, 1, "tx-sender"),
    (change_merkle_node, 3, "merkle-node"),
    (change_stored_tx_id, 2, "tx-index"),
    (change_block_hash, 5, "block-hash"),
    (text_in_an_integer_column, 1, "malformed-row"),
]


def test_the_untouched_ledger_verifies(base, capsys):
    report = verify_ledger_file(base)
    assert report.ok and report.problems == []
    assert (report.blocks, report.transactions) == (7, 18)
    assert main(["verify", str(base)]) == 0
    assert "OK" in capsys.readouterr().out


@pytest.mark.parametrize(("tamper", "block", "reason"), TAMPERING,
                         ids=[t[0].__name__ for t in TAMPERING])
def test_tampering_is_named_with_its_first_bad_block(ledger_copy, tamper, block, reason, capsys):
    tamper(ledger_copy)
    report = verify_ledger_file(ledger_copy)
    assert not report.ok
    assert (report.problems[0].block, report.problems[0].reason) == (block, reason), report.summary()
    assert main(["verify", str(ledger_copy)]) == 1
    where = f"block {block}" if block is not None else "file"
    assert f"{where}: {reason}" in capsys.readouterr().out
    if tamper is not change_block_signature:  # open skips signatures between genesis and head
        with pytest.raises(LedgerError):  # reopening recomputes everything derived, and refuses
            PublicLedger.open(ledger_copy)


def test_verify_in_one_process_a_ledger_written_by_another(tmp_path):
    path = tmp_path / "public.db"
    writer = textwrap.dedent(f"""
        import hashlib
        from chains.identity import OrgCA
        from chains.public_ledger import PublicLedger
        cas = [OrgCA.create(f"Org{{i}}MSP", seed=b"xproc") for i in range(2)]
        clients = [ca.issue("c", "client") for ca in cas]
        with PublicLedger.create({str(path)!r}, orgs=cas, proposer=cas[0].issue("o", "orderer")) as l:
            for r in range(5):
                for c in clients:
                    l.transact(c, "update-hash", {{"round": r, "digest": hashlib.sha256(bytes([r])).hexdigest()}})
                l.seal()
    """)
    subprocess.run([sys.executable, "-c", writer], check=True)
    ok = subprocess.run([sys.executable, "-m", "chains", "verify", str(path)],
                        check=False, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "OK" in ok.stdout and "blocks=6 txs=11" in ok.stdout
    sql(path, "UPDATE blocks SET signature = zeroblob(64) WHERE height = 4")
    bad = subprocess.run([sys.executable, "-m", "chains", "verify", str(path)],
                         check=False, capture_output=True, text=True)
    assert bad.returncode == 1 and "block 4: block-signature" in bad.stdout


def test_an_unfinished_last_block_is_a_note_not_corruption(tmp_path, capsys):
    """A writer stopped (killed, a full disk) while its block was going into the write-ahead log:
    the frames it wrote after the last commit are no damage, and verify says so apart."""
    path = tmp_path / "live" / "public.db"
    path.parent.mkdir()
    ledger = PublicLedger.create(path, orgs=CAS, proposer=ORDERER)
    for r in range(3):
        ledger.transact(CLIENTS[r], "update-hash", {"round": r, "digest": digest(str(r))})
        ledger.seal()
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA cache_size=1")  # the open transaction spills into the log
    writer.execute("BEGIN IMMEDIATE")
    for i in range(30):
        writer.execute("INSERT INTO certs(id, pem) VALUES (?, ?)", (f"x{i}", bytes(3000)))
    stopped = tmp_path / "stopped"
    stopped.mkdir()
    for suffix in ("", "-wal"):
        shutil.copy(f"{path}{suffix}", stopped / f"public.db{suffix}")
    writer.execute("ROLLBACK")
    writer.close()
    ledger.close()
    (report,) = verify_path(stopped)
    assert report.ok and report.blocks == 4 and not report.problems, report.summary()
    assert len(report.notes) == 1 and report.notes[0].startswith("incomplete last block")
    assert main(["verify", str(stopped)]) == 0
    assert "note: incomplete last block" in capsys.readouterr().out
    (clean,) = verify_path(path)
    assert clean.ok and not clean.notes


def run_folder(tmp_path: Path) -> tuple[Path, Path]:
    folder = tmp_path / "run"
    (folder / "adapters").mkdir(parents=True)
    adapter = folder / "adapters" / "round0-org1.safetensors"
    adapter.write_bytes(b"\x00adapter bytes\x01" * 100)
    with PublicLedger.create(folder / "public.db", orgs=CAS, proposer=ORDERER) as ledger:
        ledger.transact(CLIENTS[1], "update-hash", {
            "round": 0, "digest": hashlib.sha256(adapter.read_bytes()).hexdigest(),
            "artifact": "adapters/round0-org1.safetensors"})
        ledger.seal()
    return folder, adapter


def test_a_run_folder_recomputes_artifact_digests(tmp_path, capsys):
    folder, adapter = run_folder(tmp_path)
    assert [r.ok for r in verify_path(folder)] == [True]
    assert main(["verify", str(folder)]) == 0
    adapter.write_bytes(adapter.read_bytes()[:-1] + b"\x02")
    problems = verify_path(folder)[0].problems
    assert [(p.block, p.reason) for p in problems] == [(1, "artifact-digest")]
    assert "adapters/round0-org1.safetensors" in problems[0].detail
    assert main(["verify", str(folder)]) == 1
    assert "block 1: artifact-digest" in capsys.readouterr().out
    adapter.unlink()
    assert verify_path(folder)[0].problems[0].reason == "artifact-missing"


def test_pruned_artifacts_are_a_note_only_when_a_later_record_names_them(tmp_path, capsys):
    folder = tmp_path / "run"
    files = {f"adapters/e{e}/u.bin": f"update {e}".encode() for e in range(4)}
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    with PublicLedger.create(folder / "public.db", orgs=CAS, proposer=ORDERER) as ledger:
        def prune(prefixes):
            ledger.anchor("anchor", {"event": "artifacts-pruned", "prefixes": prefixes,
                                     "digest": digest(str(prefixes))})
            ledger.seal()

        prune(["adapters/e3/"])  # before e3's artifact was named: excuses nothing
        for name, data in files.items():
            ledger.transact(CLIENTS[0], "update-hash", {"round": 0, "artifact": name,
                                                        "digest": hashlib.sha256(data).hexdigest()})
        ledger.seal()
        prune(["adapters/e0/", "adapters/e1/", "../", "/abs/", "", 7])
    for e in (0, 1, 3):
        shutil.rmtree(folder / f"adapters/e{e}")
    (folder / "adapters/e2/u.bin").write_bytes(b"tampered")
    (report,) = verify_path(folder)
    assert sorted((p.block, p.reason, p.detail[:14]) for p in report.problems) == [
        (2, "artifact-digest", "adapters/e2/u."), (2, "artifact-missing", "adapters/e3/u.")]
    assert report.notes == [("2 artifact(s) pruned on purpose (records in block(s) 3): their "
                            "hashes stay on the ledger, their files are gone")]
    assert main(["verify", str(folder)]) == 1
    assert "note: 2 artifact(s) pruned on purpose" in capsys.readouterr().out


def test_artifacts_outside_the_folder_are_refused(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (tmp_path / "secret").write_bytes(b"x")
    with PublicLedger.create(folder / "public.db", orgs=CAS, proposer=ORDERER) as ledger:
        ledger.transact(CLIENTS[0], "anchor", {"digest": hashlib.sha256(b"x").hexdigest(),
                                               "artifact": "../secret"})
        ledger.seal()
    assert verify_path(folder)[0].problems[0].reason == "artifact-path"


def test_folder_dispatch_and_odd_inputs(tmp_path, base):
    folder = tmp_path / "run"
    folder.mkdir()
    shutil.copy(base, folder / "public.db")
    sqlite3.connect(folder / "stray.sqlite").execute("CREATE TABLE t(x)").connection.close()
    (folder / "notes.txt").write_text("not a ledger")
    reports = {Path(r.path).name: r for r in verify_path(folder)}
    assert set(reports) == {"public.db", "stray.sqlite"}
    assert reports["public.db"].ok
    assert reports["stray.sqlite"].problems[0].reason == "unknown-kind"
    (tmp_path / "empty").mkdir()
    assert verify_path(tmp_path / "empty")[0].problems[0].reason == "no-ledgers"
    assert verify_path(tmp_path / "nothing-here")[0].problems[0].reason == "missing"
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite" * 300)
    assert verify_path(garbage)[0].problems[0].reason == "unreadable"
    assert main(["verify", str(garbage)]) == 1


def test_a_run_folder_with_channels_dispatches_each_file_by_kind(tmp_path, base):
    fabric = pytest.importorskip("chains.fabric")
    folder = tmp_path / "run"
    folder.mkdir()
    shutil.copy(base, folder / "public.db")
    net = fabric.Network.create(("Org1", "Org2"), seed=0, path=folder)
    net.create_channel("consortium", ("Org1", "Org2"), "OutOf(1, 'Org1.peer', 'Org2.peer')")
    net.close()
    reports = verify_path(folder)
    kinds = sorted(r.kind for r in reports)
    assert kinds == ["fabric-channel", "fabric-channel", "fabric-orderer", "public-ledger"]
    assert all(r.ok for r in reports), [r.summary() for r in reports]
    assert main(["verify", str(folder)]) == 0


def test_known_tree_heads_catch_a_cut_off_tail_and_a_fork(ledger_copy, capsys):
    with PublicLedger.open(ledger_copy) as ledger:
        latest, earlier = ledger.tree_head(), ledger.tree_head(10)
    heads = [f"{h.size}:{h.root.hex()}" for h in (earlier, latest)]
    assert main(["verify", str(ledger_copy), "--tree-head", heads[0], "--tree-head", heads[1]]) == 0
    # A careful attacker removes the whole last block: the file alone still verifies...
    sql(ledger_copy, "DELETE FROM nodes WHERE last >= 15", "DELETE FROM txs WHERE height = 6",
        "DELETE FROM blocks WHERE height = 6", ("DELETE FROM certs WHERE id = ?", (PEER2.id,)))
    assert verify_ledger_file(ledger_copy).ok
    # ...but not against the tree head it had published.
    report = verify_ledger_file(ledger_copy, known_heads=[(latest.size, latest.root)])
    assert [(p.block, p.reason) for p in report.problems] == [(None, "rolled-back")]
    forged = verify_ledger_file(ledger_copy, known_heads=[(10, latest.root)])
    assert [(p.block, p.reason) for p in forged.problems] == [(3, "fork")]
    assert main(["verify", str(ledger_copy), "--tree-head", heads[1]]) == 1
    assert "file: rolled-back" in capsys.readouterr().out
    for bad in ("10:abc", "x:" + "00" * 32, "-1:" + "00" * 32, "１:" + "00" * 32, ":", "",
                "99999999999999999999:" + "00" * 32):
        assert main(["verify", str(ledger_copy), f"--tree-head={bad}"]) == 1
        assert "bad-tree-head" in capsys.readouterr().out
