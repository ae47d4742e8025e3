from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from chains import store
from chains.anchor import Anchor
from chains.blocks import LogicalClock
from chains.errors import LedgerCorruptError, LedgerError, TransactionRejected
from chains.identity import OrgCA
from chains.merkle import verify_consistency
from chains.public_ledger import LedgerConfig, PublicLedger
from chains.transactions import Transaction, canonical_json, check_payload
from chains.verify import verify_ledger_file


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Consortium:
    """Three organizations, each with a client, a peer and an admin; Org0 runs the orderer."""

    def __init__(self, seed: bytes = b"ledger-tests") -> None:
        self.cas = [OrgCA.create(f"Org{i}MSP", seed=seed) for i in range(3)]
        self.orderer = self.cas[0].issue("orderer0", "orderer")
        self.clients = [ca.issue(f"client{i}", "client") for i, ca in enumerate(self.cas)]
        self.admins = [ca.issue(f"admin{i}", "admin") for i, ca in enumerate(self.cas)]
        self.peers = [ca.issue(f"peer{i}", "peer") for i, ca in enumerate(self.cas)]

    def ledger(self, path, **kw) -> PublicLedger:
        return PublicLedger.create(path, orgs=self.cas, proposer=self.orderer, **kw)


@pytest.fixture(scope="module")
def org() -> Consortium:
    return Consortium()


def fill(ledger: PublicLedger, org: Consortium, rounds: int) -> list[str]:
    ids = []
    for r in range(rounds):
        for i, client in enumerate(org.clients):
            ids.append(ledger.transact(client, "update-hash",
                                       {"round": r, "digest": digest(f"{r}/{i}"), "examples": 10}))
        ledger.seal()
    return ids


def test_genesis_holds_the_consortium_and_names_the_chain(tmp_path, org):
    with org.ledger(tmp_path / "p.db") as ledger:
        assert (ledger.height, ledger.tree_size, ledger.pending) == (0, 1, 0)
        genesis = ledger.block(0)
        assert genesis.header.prev == bytes(32) and genesis.tx_ids == (ledger.chain_id,)
        config = ledger.transaction(ledger.chain_id)
        assert config.kind == "msp-config" and config.chain == ""
        assert set(config.payload["msp"]["orgs"]) == {"Org0MSP", "Org1MSP", "Org2MSP"}
    with PublicLedger.open(tmp_path / "p.db") as reopened:
        assert reopened.msp.orgs == ("Org0MSP", "Org1MSP", "Org2MSP")
        assert reopened.chain_id == config.id


def test_blocks_tree_heads_and_proofs(tmp_path, org):
    times = iter(range(1000, 100000, 10))
    ledger = org.ledger(tmp_path / "p.db", clock=lambda: next(times))
    ids = fill(ledger, org, 4)
    assert (ledger.height, ledger.tree_size) == (4, 13)
    block = ledger.block(2)
    assert block.header.tx_count == 3 and block.header.timestamp == 1020
    assert block.header.prev == ledger.block(1).hash
    assert block.tree_head.size == 7 and block.tree_head.timestamp == 1020
    heads = list(ledger.tree_heads())
    assert [h.size for h in heads] == [1, 4, 7, 10, 13]
    assert all(h.verify(org.orderer.public_key_bytes) for h in heads)
    assert not heads[1].verify(org.clients[0].public_key_bytes)
    latest = ledger.tree_head()
    for tx_id in ids:
        proof = ledger.inclusion_proof(tx_id)
        assert proof.verify(latest.root)
        assert not proof.verify(heads[2].root)
    early = ledger.inclusion_proof(ids[0], tree_size=4)
    assert early.verify(heads[1].root)
    for a in heads:
        for b in heads:
            if a.size <= b.size:
                proof = ledger.consistency_proof(a.size, b.size)
                assert proof.verify(a.root, b.root)
                assert verify_consistency(a.size, b.size, a.root, b.root, proof.path)
    assert not ledger.consistency_proof(4, 13).verify(heads[2].root, latest.root)
    with pytest.raises(LedgerError, match="tree size 14 must be in"):
        ledger.inclusion_proof(ids[0], tree_size=14)
    with pytest.raises(LedgerError, match="not committed"):
        ledger.inclusion_proof(digest("nope"))
    with pytest.raises(LedgerError, match="no tree head was published at size 5"):
        ledger.tree_head(5)
    assert ledger.confirmed(ids[4]) == 2 and ledger.confirmed(digest("x")) is None
    kinds = [tx.kind for _, tx in ledger.transactions()]
    assert kinds == ["msp-config"] + ["update-hash"] * 12
    assert [h for h, _ in ledger.transactions("update-hash")][:4] == [1, 1, 1, 2]
    ledger.close()


def test_same_seed_and_calls_give_identical_ledgers_byte_for_byte(tmp_path):
    def build(folder, seed):
        folder.mkdir()
        org = Consortium(seed)
        with org.ledger(folder / "p.db") as ledger:
            fill(ledger, org, 3)
            ledger.revoke(org.admins[1], org.clients[1].serial)
            ledger.seal()
            heads = [(b.hash, b.signature) for b in map(ledger.block, range(ledger.height + 1))]
            return heads, ledger.tree_head()

    a, b, c = build(tmp_path / "a", b"s1"), build(tmp_path / "b", b"s1"), build(tmp_path / "c", b"s2")
    assert a == b
    assert a[0][-1] != c[0][-1] and a[1].root != c[1].root


def test_submit_rejects_bad_transactions_and_changes_nothing(tmp_path, org):
    ledger = org.ledger(tmp_path / "p.db", config=LedgerConfig(max_payload_bytes=256))
    fill(ledger, org, 1)
    client = org.clients[0]
    outsider = OrgCA.create("Org9MSP", seed=b"x").issue("eve", "client")
    impostor = OrgCA.create("Org1MSP", seed=b"evil").issue("client1", "client")
    other_chain = Consortium(b"other").ledger(tmp_path / "other.db")
    good = ledger.prepare(client, "update-hash", {"round": 1, "digest": digest("a")})
    forged = Transaction.decode(good.body, bytes(64), good.cert_pem)
    stolen = Transaction.decode(good.body, good.signature, org.clients[1].cert_pem)

    def tx(sender, kind, payload, **kw):
        kw.setdefault("nonce", ledger.next_nonce(sender))
        kw.setdefault("chain", ledger.chain_id)
        return Transaction.create(sender, kind, payload, **kw)

    cases = {
        "tx-chain": other_chain.prepare(client, "update-hash", {"round": 1, "digest": digest("a")}),
        "tx-identity": tx(outsider, "anchor", {"digest": digest("a")}),
        "tx-signature": forged,
        "tx-sender": stolen,
        "tx-role": tx(org.orderer, "update-hash", {"round": 1, "digest": digest("a")}),
        "tx-kind": tx(client, "transfer", {"amount": 1}),
        "tx-payload": tx(client, "update-hash", {"round": 1, "digest": "not-hex"}),
        "tx-nonce": tx(client, "anchor", {"digest": digest("a")}, nonce=0),
    }
    before = (ledger.pending, ledger.next_nonce(client), ledger.tree_size, ledger.msp.to_dict())
    for reason, bad in cases.items():
        with pytest.raises(TransactionRejected) as err:
            ledger.submit(bad)
        assert err.value.reason == reason, (reason, err.value)
    with pytest.raises(TransactionRejected, match=r"tx-identity.*bad chain"):
        ledger.submit(tx(impostor, "anchor", {"digest": digest("a")}))
    with pytest.raises(TransactionRejected, match="tx-kind"):
        ledger.submit(tx(org.orderer, "msp-config", {"msp": {}, "max_payload_bytes": 1}))
    with pytest.raises(TransactionRejected, match="cannot revoke in 'Org2MSP'"):
        ledger.submit(tx(org.admins[1], "revoke", {"msp_id": "Org2MSP", "serial": 5}))
    with pytest.raises(TransactionRejected, match="limit is 256"):
        ledger.transact(client, "anchor", {"digest": digest("a"), "note": "x" * 300})
    with pytest.raises(TransactionRejected, match="not objects or tensors"):
        ledger.transact(client, "anchor", {"digest": digest("a"), "weights": object()})
    with pytest.raises(TransactionRejected, match="not finite"):
        ledger.transact(client, "round-summary", {"round": 1, "score": float("nan")})
    with pytest.raises(TypeError, match="takes a Transaction"):
        ledger.submit({"kind": "anchor"})  # type: ignore[arg-type]
    assert before == (ledger.pending, ledger.next_nonce(client), ledger.tree_size,
                      ledger.msp.to_dict())
    ledger.submit(good)  # the untouched original still goes through
    with pytest.raises(TransactionRejected, match="tx-nonce"):
        ledger.submit(good)  # and cannot be replayed
    ledger.close()
    other_chain.close()


def test_revocation_is_a_config_transaction_that_survives_reopening(tmp_path, org):
    path = tmp_path / "p.db"
    ledger = org.ledger(path)
    ids = fill(ledger, org, 1)
    ledger.revoke(org.admins[2], org.clients[2].serial)
    with pytest.raises(TransactionRejected) as err:  # effective from its place in the log
        ledger.transact(org.clients[2], "anchor", {"digest": digest("late")})
    assert err.value.reason == "revoked-identity"
    ledger.transact(org.peers[2], "anchor", {"digest": digest("peer is fine")})
    ledger.seal()
    ledger.close()
    reopened = PublicLedger.open(path, proposer=org.orderer)
    with pytest.raises(TransactionRejected, match="revoked"):
        reopened.transact(org.clients[2], "anchor", {"digest": digest("late")})
    assert reopened.transaction(ids[2]).sender == org.clients[2].id  # history stays valid
    reopened.close()
    assert verify_ledger_file(path).ok


def test_a_revoked_proposer_cannot_seal_until_another_orderer_takes_over(tmp_path, org):
    path = tmp_path / "p.db"
    admin0 = org.cas[0].issue("admin0", "admin")
    with org.ledger(path) as ledger:
        ledger.revoke(admin0, org.orderer.serial)
        with pytest.raises(LedgerError, match="proposer 'orderer0' cannot sign blocks: revoked"):
            ledger.seal()
        ledger.proposer = org.cas[1].issue("orderer1", "orderer")
        assert ledger.seal().header.proposer == ledger.proposer.id
    assert verify_ledger_file(path).ok


def test_blocks_seal_automatically_at_max_block_txs(tmp_path, org):
    with org.ledger(tmp_path / "p.db", config=LedgerConfig(max_block_txs=4)) as ledger:
        for r in range(3):
            for c in org.clients:
                ledger.transact(c, "update-hash", {"round": r, "digest": digest(f"{r}")})
        assert (ledger.height, ledger.pending) == (2, 1)
        assert [ledger.block(h).header.tx_count for h in (1, 2)] == [4, 4]


def test_discard_pending_rolls_back_nonces_and_revocations(tmp_path, org):
    with org.ledger(tmp_path / "p.db") as ledger:
        ledger.transact(org.clients[0], "anchor", {"digest": digest("a")})
        ledger.revoke(org.admins[0], org.clients[0].serial)
        assert ledger.discard_pending() == 2
        assert ledger.pending == 0 and ledger.next_nonce(org.clients[0]) == 0
        ledger.transact(org.clients[0], "anchor", {"digest": digest("a")})
        assert ledger.seal().header.tx_count == 1


def test_read_only_open_and_file_errors(tmp_path, org):
    path = tmp_path / "p.db"
    org.ledger(path).close()
    with pytest.raises(LedgerError, match="already exists"):
        org.ledger(path)
    with pytest.raises(LedgerError, match="no ledger file"):
        PublicLedger.open(tmp_path / "missing.db")
    with PublicLedger.open(path) as ro:
        ro.transact(org.clients[0], "anchor", {"digest": digest("a")})
        with pytest.raises(LedgerError, match="read-only"):
            ro.seal()
    with pytest.raises(LedgerError, match="cannot sign blocks.*role mismatch"):
        PublicLedger.open(path, proposer=org.clients[0])
    other = tmp_path / "channel.db"
    conn = sqlite3.connect(other)
    conn.executescript("CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);"
                       "INSERT INTO meta VALUES ('kind', 'fabric-channel');")
    conn.close()
    with pytest.raises(LedgerError, match="not a public ledger"):
        PublicLedger.open(other)
    with pytest.raises(ValueError, match="LedgerConfig.max_block_txs"):
        LedgerConfig(max_block_txs=0)


def test_clock_is_injected_and_must_not_go_back(tmp_path, org):
    times = iter([5, 9, 7])
    with org.ledger(tmp_path / "p.db", clock=lambda: next(times)) as ledger:
        ledger.transact(org.clients[0], "anchor", {"digest": digest("a")})
        assert ledger.seal().header.timestamp == 9
        ledger.transact(org.clients[0], "anchor", {"digest": digest("b")})
        with pytest.raises(LedgerError, match="never go back"):
            ledger.seal()
        assert ledger.pending == 1
    with PublicLedger.open(tmp_path / "p.db", proposer=org.orderer) as again:
        again.transact(org.clients[0], "anchor", {"digest": digest("b")})
        assert again.seal().header.timestamp == 10  # the default clock resumes after the head
    clock = LogicalClock(100, step=5)
    assert [clock(), clock(), clock()] == [100, 105, 110]


def test_reopening_checks_the_head_block(tmp_path, org):
    path = tmp_path / "p.db"
    with org.ledger(path) as ledger:
        fill(ledger, org, 2)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE blocks SET signature = zeroblob(64) WHERE height = 2")
    conn.commit()
    conn.close()
    with pytest.raises(LedgerCorruptError, match="block 2: block-signature") as err:
        PublicLedger.open(path)
    assert (err.value.block, err.value.reason) == (2, "block-signature")
    with path.open("r+b") as f:
        f.truncate(3000)
    with pytest.raises(LedgerCorruptError, match="truncated"):
        PublicLedger.open(path)


def test_a_failed_commit_leaves_no_half_block(tmp_path, org):
    path = tmp_path / "p.db"
    ledger = org.ledger(path)
    fill(ledger, org, 1)
    ledger.transact(org.clients[0], "anchor", {"digest": digest("a")})
    ledger.transact(org.clients[1], "anchor", {"digest": digest("b")})  # leaves 4, 5: node (1, 2)
    # Occupy the next Merkle node key so the block's INSERT INTO nodes fails after its
    # transactions were inserted: the whole block must roll back.
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO nodes(last, level, hash) VALUES (5, 1, zeroblob(32))")
    conn.commit()
    with pytest.raises(sqlite3.IntegrityError):
        ledger.seal()
    assert conn.execute("SELECT COUNT(*) FROM txs").fetchone()[0] == 4
    assert conn.execute("SELECT MAX(height) FROM blocks").fetchone()[0] == 1
    assert (ledger.height, ledger.tree_size, ledger.pending) == (1, 4, 2)
    conn.execute("DELETE FROM nodes WHERE last = 5 AND level = 1")
    conn.commit()
    conn.close()
    assert ledger.seal().height == 2  # the same pending block commits once the fault is gone
    ledger.close()
    assert verify_ledger_file(path).ok


def test_a_killed_writer_never_leaves_a_half_block(tmp_path):
    path = tmp_path / "p.db"
    script = textwrap.dedent(f"""
        import hashlib, sys
        from chains.identity import OrgCA
        from chains.public_ledger import LedgerConfig, PublicLedger
        cas = [OrgCA.create(f"Org{{i}}MSP", seed=b"crash") for i in range(2)]
        client = cas[1].issue("c", "client")
        ledger = PublicLedger.create({str(path)!r}, orgs=cas, proposer=cas[0].issue("o", "orderer"),
                                     config=LedgerConfig(max_block_txs=50))
        print("ready", flush=True)
        i = 0
        while True:
            ledger.transact(client, "anchor", {{"digest": hashlib.sha256(str(i).encode()).hexdigest()}})
            i += 1
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert child.stdout.readline().strip() == b"ready"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # wait until a few blocks are in, then kill mid-stream
        conn = sqlite3.connect(path, timeout=10)
        height = conn.execute("SELECT MAX(height) FROM blocks").fetchone()[0]
        conn.close()
        if height >= 3:
            break
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    report = verify_ledger_file(path)
    assert report.ok, report.summary()
    assert report.transactions == 1 + 50 * (report.blocks - 1)
    with PublicLedger.open(path) as ledger:
        assert ledger.tree_size == report.transactions


def test_the_public_ledger_is_an_anchor(tmp_path, org):
    with org.ledger(tmp_path / "p.db") as ledger:
        assert isinstance(ledger, Anchor)
        receipt = ledger.anchor("global-model-hash", {"round": 0, "digest": digest("g")})
        mine = ledger.anchor("update-hash", {"round": 0, "digest": digest("u")},
                             sender=org.clients[1])
        assert ledger.confirmed(receipt) is None
        assert ledger.flush() == 1 == ledger.height
        assert ledger.confirmed(receipt) == 1
        assert ledger.transaction(mine).sender == org.clients[1].id
        assert ledger.transaction(receipt).sender == org.orderer.id


def test_formats_are_stable_across_versions(tmp_path):
    # Pinned ids: any change to certificates, canonical JSON, signing or hashing shows up here.
    cas = [OrgCA.create(f"Org{i}MSP", seed=b"golden") for i in range(2)]
    with PublicLedger.create(tmp_path / "p.db", orgs=cas,
                             proposer=cas[0].issue("orderer0", "orderer")) as ledger:
        ledger.transact(cas[1].issue("client1", "client"), "update-hash",
                        {"round": 0, "digest": hashlib.sha256(b"x").hexdigest()})
        block = ledger.seal()
        assert ledger.chain_id == "168d9c7378c22b0844a7b4b9628736ffea10b2e8db541839f3559417cf52d764"
        assert block.hash.hex() == "18224552a9b2a6a7ca3e674427f97b8dfc9b4ce29101b2cc58e961848274e42e"
        assert ledger.tree_head().root.hex() == (
            "615b623407e3288ae09411b50f13be01ff504f952a36c626a0fd56248078c8e6")


def test_transaction_bodies_must_be_canonical(org):
    tx = Transaction.create(org.clients[0], "anchor", {"digest": digest("a"), "n": 1.5},
                            nonce=0, chain="c")
    assert tx.body == canonical_json(json.loads(tx.body))
    assert tx.body.startswith(b'{"chain":"c","kind":"anchor","nonce":0,"payload":{"digest":')
    assert Transaction.decode(tx.body, tx.signature, tx.cert_pem) == tx
    spaced = json.dumps(json.loads(tx.body)).encode()
    for body, sig, problem in ((spaced, tx.signature, "canonical"),
                               (tx.body[:-1], tx.signature, "not JSON"),
                               (b'{"kind":"anchor"}', tx.signature, "exactly"),
                               (tx.body, tx.signature[:63], "64 bytes")):
        with pytest.raises(ValueError, match=problem):
            Transaction.decode(body, sig, tx.cert_pem)
    with pytest.raises(ValueError, match="nests deeper"):
        check_payload("anchor", {"digest": digest("a"), "x": [[[[[1]]]]]}, 1000)
    with pytest.raises(ValueError, match="lacks"):
        check_payload("update-hash", {"digest": digest("a")}, 1000)


def test_importing_chains_never_imports_torch_or_fedenv():
    code = ("import sys, chains, chains.ethereum, chains.verify, chains.__main__; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'fedenv')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_store_schema_names_its_kind(tmp_path, org):
    org.ledger(tmp_path / "p.db").close()
    conn = sqlite3.connect(tmp_path / "p.db")
    meta = dict(conn.execute("SELECT key, value FROM meta"))
    assert meta["kind"] == store.KIND == "public-ledger"
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
