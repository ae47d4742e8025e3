from __future__ import annotations

import errno
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
from cryptography import x509

from chains import store
from chains.anchor import Anchor
from chains.blocks import TreeHead
from chains.canonical import canonical_json
from chains.clock import LogicalClock
from chains.errors import (
    ConfigError,
    LedgerCorruptError,
    LedgerError,
    LedgerStorageError,
    MalformedError,
    TransactionRejected,
)
from chains.identity import OrgCA
from chains.merkle import verify_consistency
from chains.proofs import InclusionProof
from chains.public_ledger import LedgerConfig, PublicLedger
from chains.transactions import Transaction, check_payload
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

    def revoke(self, ledger: PublicLedger, org: int, *victims) -> str:
        for victim in victims:
            self.cas[org].revoke(victim.cert)
        return ledger.revoke(self.admins[org], self.cas[org].crl())


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
        assert proof.verify(latest)
        assert not proof.verify(heads[2])
    early = ledger.inclusion_proof(ids[0], tree_size=4)
    assert early.verify(heads[1]) and not early.verify(latest)
    for a in heads:
        for b in heads:
            if a.size <= b.size:
                proof = ledger.consistency_proof(a.size, b.size)
                assert proof.verify(a, b)
                assert verify_consistency(a.size, b.size, a.root, b.root, proof.path)
    assert not ledger.consistency_proof(4, 13).verify(heads[2], latest)
    with pytest.raises(TypeError, match="TreeHead"):
        ledger.inclusion_proof(ids[0]).verify(latest.root)  # type: ignore[arg-type]
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
        with org.ledger(folder / "p.db", nonce=b"nonce:" + seed) as ledger:
            fill(ledger, org, 3)
            org.revoke(ledger, 1, org.clients[1])
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
        ledger.submit(tx(org.orderer, "msp-config", {"msp": {}, "max_payload_bytes": 1,
                                                     "nonce": "00" * 8}))
    with pytest.raises(TransactionRejected, match="cannot revoke in 'Org2MSP'"):
        ledger.submit(tx(org.admins[1], "revoke", {"msp_id": "Org2MSP",
                                                   "crl": org.cas[2].crl().hex()}))
    with pytest.raises(TransactionRejected, match="tx-payload.*not signed by the CA of Org1MSP"):
        ledger.submit(tx(org.admins[1], "revoke", {"msp_id": "Org1MSP",
                                                   "crl": org.cas[2].crl().hex()}))
    with pytest.raises(TransactionRejected, match="limit is 256"):
        ledger.transact(client, "anchor", {"digest": digest("a"), "note": "x" * 300})
    with pytest.raises(TransactionRejected, match="JSON cannot hold"):
        ledger.transact(client, "anchor", {"digest": digest("a"), "weights": object()})
    with pytest.raises(TransactionRejected, match="payload.score nan is not a finite number"):
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
    org.revoke(ledger, 2, org.clients[2])
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
        ca = OrgCA.create("Org0MSP", seed=b"ledger-tests")
        ca.revoke(org.orderer.cert)
        ledger.revoke(admin0, ca.crl())
        with pytest.raises(LedgerError, match="proposer 'orderer0' cannot sign blocks.*revoked"):
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
    with pytest.raises(ConfigError, match="LedgerConfig.max_block_txs"):
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
    for n, client in enumerate((*org.clients, org.clients[0])):  # leaves 4..7: node (3, 0)
        ledger.transact(client, "anchor", {"digest": digest(f"a{n}")})
    # Occupy the next stored Merkle node's key so the block's INSERT INTO nodes fails after
    # its transactions were inserted: the whole block must roll back.
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO nodes(last, level, hash) VALUES (7, 3, zeroblob(32))")
    conn.commit()
    with pytest.raises(sqlite3.IntegrityError):
        ledger.seal()
    assert conn.execute("SELECT COUNT(*) FROM txs").fetchone()[0] == 4
    assert conn.execute("SELECT MAX(height) FROM blocks").fetchone()[0] == 1
    assert (ledger.height, ledger.tree_size, ledger.pending) == (1, 4, 4)
    conn.execute("DELETE FROM nodes WHERE last = 7 AND level = 3")
    conn.commit()
    conn.close()
    assert ledger.seal().height == 2  # the same pending block commits once the fault is gone
    ledger.close()
    assert verify_ledger_file(path).ok


def test_a_full_disk_is_named_and_the_block_commits_once_space_is_back(tmp_path, org):
    """SQLite's own "database or disk is full" (its page limit; tests/test_run_folder.py fills
    a real filesystem): one LedgerStorageError (an OSError, ENOSPC, naming the file), not
    SQLite's failed ROLLBACK; nothing of the block is stored; the file reopens and verifies."""
    path = tmp_path / "p.db"
    ledger = org.ledger(path)
    fill(ledger, org, 1)
    conn = ledger._conn  # the writer's own connection: cap the file at its present size
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    conn.execute(f"PRAGMA max_page_count = {pages}")
    for i in range(40):  # pads of hex digests: packing cannot shrink them into the pages' room
        pad = "".join(digest(f"{i}/{j}") for j in range(24))
        ledger.transact(org.clients[i % 3], "anchor", {"digest": digest(str(i)), "pad": pad})
    with pytest.raises(LedgerStorageError) as failure:
        ledger.seal()
    assert failure.value.errno == errno.ENOSPC and failure.value.filename == str(path)
    assert "disk full" in str(failure.value) and isinstance(failure.value, OSError)
    assert (ledger.height, ledger.pending) == (1, 40)
    report = verify_ledger_file(path)  # read while the writer holds the file: whole blocks only
    assert report.ok and report.blocks == 2, report.summary()
    conn.execute("PRAGMA max_page_count = 1073741823")  # space is back
    assert ledger.seal().height == 2
    ledger.close()
    with PublicLedger.open(path) as reopened:
        assert (reopened.height, reopened.tree_size) == (2, 1 + 3 + 40)


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
    # Pinned ids (formats 2 and 3: format 3 changed only how bodies are stored): any change to
    # certificates, canonical JSON, signing or hashing shows up here, and must come with a new
    # store.FORMAT.
    cas = [OrgCA.create(f"Org{i}MSP", seed=b"golden") for i in range(2)]
    with PublicLedger.create(tmp_path / "p.db", orgs=cas, nonce=b"golden-nonce",
                             proposer=cas[0].issue("orderer0", "orderer")) as ledger:
        ledger.transact(cas[1].issue("client1", "client"), "update-hash",
                        {"round": 0, "digest": hashlib.sha256(b"x").hexdigest()})
        block = ledger.seal()
        assert ledger.chain_id == "c541cc40eaa728d570ff5b3130983084cee2ad7eb39a5681e52d8ddd2d59e4fd"
        assert block.hash.hex() == "2fc29fee435b62cd0d872f8667a45e1a5e93994b32603613a6922ce8e33a3e6e"
        assert ledger.tree_head().root.hex() == (
            "087db30ae731a916bb8d8bfba916b1427655ccebb26a6546a3445b7d62011db6")


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


# --- identities judged at the ledger's time, signer constraints, one id per ledger, proofs ----

KEYS = [bytes([i + 1]) * 32 for i in range(2)]


def keyed_ledger(path, clock=None, **kw):
    """A ledger of two organizations whose CA keys the test (the attacker) knows."""
    cas = [OrgCA(f"Org{i}MSP", key) for i, key in enumerate(KEYS)]
    orderer = cas[0].issue("orderer0", "orderer")
    return cas, PublicLedger.create(path, orgs=cas, proposer=orderer, clock=clock, **kw)


def test_certificates_are_judged_at_the_time_of_the_last_block_on_submit(tmp_path):
    times = iter(range(0, 10_000, 10))  # genesis at 0, then blocks at 10, 20, ...
    cas, ledger = keyed_ledger(tmp_path / "p.db", clock=lambda: next(times))
    early, late = cas[1].issue("temp", "client", valid_from=5, valid_until=15), \
        cas[1].issue("late", "client", valid_from=1000)
    for sender, problem in ((early, "not yet valid"), (late, "not yet valid")):
        with pytest.raises(TransactionRejected, match=problem) as err:
            ledger.transact(sender, "anchor", {"digest": digest("a")})
        assert err.value.reason == "identity-time"
    ledger.transact(cas[1].issue("c", "client"), "anchor", {"digest": digest("b")})
    ledger.seal()  # block 1 at time 10: `early` is valid from now on
    ledger.transact(early, "anchor", {"digest": digest("c")})
    ledger.seal()  # block 2 at time 20: it has expired
    with pytest.raises(TransactionRejected, match="identity-time.*expired"):
        ledger.transact(early, "anchor", {"digest": digest("d")})
    assert ledger.next_nonce(early) == 1
    ledger.close()
    assert verify_ledger_file(tmp_path / "p.db").ok
    with PublicLedger.open(tmp_path / "p.db") as again:  # and replaying at open agrees
        assert again.height == 2


def test_an_expired_proposer_cannot_seal(tmp_path):
    cas = [OrgCA(f"Org{i}MSP", key) for i, key in enumerate(KEYS)]
    orderer = cas[0].issue("short", "orderer", valid_until=15)
    times = iter([0, 10, 20])
    ledger = PublicLedger.create(tmp_path / "p.db", orgs=cas, proposer=orderer,
                                 clock=lambda: next(times))
    for _ in range(2):
        ledger.transact(cas[1].issue("c", "client"), "anchor", {"digest": digest("x")})
        if ledger.height == 0:
            ledger.seal()  # time 10: fine
    with pytest.raises(LedgerError, match="cannot sign blocks at time 20.*expired"):
        ledger.seal()
    assert ledger.pending == 1
    ledger.close()


@pytest.mark.parametrize("shape, reason", [
    ({"ca_flag": True}, "identity-usage"),
    ({"ca_flag": None}, "identity-usage"),
    ({"digital_signature": False}, "identity-usage"),
    ({"valid": (50, 60)}, "identity-time"),
    ({"valid": (0, 0)}, "identity-time"),  # the genesis is at 0, then blocks at 1, ...
    ({"extra": x509.TLSFeature([x509.TLSFeatureType.status_request])}, "identity-usage"),
])
def test_forged_certificates_from_the_right_ca_are_rejected_at_submit(tmp_path, shape, reason):
    from support_chains import forged_identity

    cas, ledger = keyed_ledger(tmp_path / "p.db")
    ledger.transact(cas[1].issue("c", "client"), "anchor", {"digest": digest("x")})
    ledger.seal()  # time 1
    attacker = forged_identity(cas[1], KEYS[1], **shape)
    with pytest.raises(TransactionRejected) as err:
        ledger.transact(attacker, "anchor", {"digest": digest("y")})
    assert err.value.reason == reason
    ledger.close()


def test_each_ledger_has_its_own_id_so_transactions_do_not_replay_across(tmp_path, org):
    a, b = org.ledger(tmp_path / "a.db"), org.ledger(tmp_path / "b.db")  # one consortium, seed
    assert a.chain_id != b.chain_id
    tx = a.prepare(org.clients[0], "anchor", {"digest": digest("x")})
    with pytest.raises(TransactionRejected) as err:
        b.submit(tx)
    assert err.value.reason == "tx-chain"
    a.submit(tx)
    assert a.seal().header.chain == a.chain_id and a.tree_head().log == a.chain_id
    same = [org.ledger(tmp_path / f"{n}.db", nonce=b"run-seed-7") for n in ("c", "d")]
    assert same[0].chain_id == same[1].chain_id  # a caller-given nonce: same bytes again
    for bad in (b"short", b"x" * 65, "text"):
        with pytest.raises(ConfigError, match="nonce must be 8 to 64 bytes"):
            org.ledger(tmp_path / "e.db", nonce=bad)
    for ledger in (a, b, *same):
        ledger.close()


def test_an_inclusion_proof_is_bound_to_the_size_of_the_tree_head(tmp_path, org):
    from chains.merkle import range_hash, verify_inclusion

    with org.ledger(tmp_path / "p.db") as ledger:
        for i in range(7):
            ledger.transact(org.clients[0], "anchor", {"digest": digest(str(i))})
        ledger.seal()
        head = ledger.tree_head()
        assert head.size == 8
        conn = sqlite3.connect(tmp_path / "p.db")
        node = lambda level, index: store.read_node(conn, level, index)
        interior, sibling = range_hash(0, 4, node), range_hash(4, 8, node)
        conn.close()
        assert verify_inclusion(0, 2, interior, [sibling], head.root)  # the bare math says yes
        forged = InclusionProof(interior.hex(), 0, 2, (sibling,))
        assert not forged.verify(head)  # bound to the head: a size-2 proof is not a size-8 one
        real = ledger.inclusion_proof(ledger.chain_id)
        assert real.verify(head)
        assert not InclusionProof(real.tx_id, real.leaf_index, 7, real.path).verify(head)
        assert not InclusionProof("zz", 0, 8, real.path).verify(head)
        lying = TreeHead(head.log, 2, head.root, head.timestamp, head.signature)
        assert not lying.verify(org.orderer.public_key_bytes)  # such a head is not signed
        old = ledger.tree_head(1)
        proof = ledger.consistency_proof(1)
        assert proof.verify(old, head) and not proof.verify(head, old)
        swapped = TreeHead(old.log, 2, old.root, old.timestamp)
        assert not proof.verify(swapped, head)


@pytest.mark.parametrize("body, problem", [
    (b"[" * 100_000 + b"]" * 100_000, "nests deeper|limit"),
    (b'{"chain":"","kind":"anchor","nonce":' + b"9" * 5000 + b',"payload":{},"sender":""}',
     "outside"),
    (b'{"payload":' + b'{"a":' * 50 + b"1" + b"}" * 50 + b"}", "nests deeper"),
    (b" " * (2 << 20), "limit"),
    (b'{"chain":"","kind":"anchor","nonce":0,"payload":{"x":NaN},"sender":""}', "NaN"),
    (b'{"chain":"","kind":"anchor","nonce":0,"payload":{"x":"\\ud800"},"sender":""}', "Unicode"),
    (b"\xff\xfe", "UTF-8"),
])
def test_hostile_bodies_are_malformed_errors_not_crashes(body, problem, org):
    from chains.errors import MalformedError

    with pytest.raises(MalformedError, match=problem):
        Transaction.decode(body, bytes(64), org.clients[0].cert_pem)


def test_every_kind_bounds_its_payload(tmp_path, org):
    with org.ledger(tmp_path / "p.db") as ledger:
        big_crl = {"crl": "00" * 250_000, "msp_id": "Org1MSP"}  # 500 kB: no CRL is this big
        with pytest.raises(TransactionRejected, match="revoke.*limit is 163840"):
            ledger.transact(org.admins[1], "revoke", big_crl)
        with pytest.raises(TransactionRejected, match="carries only"):
            ledger.transact(org.admins[1], "revoke", {"crl": "00", "msp_id": "Org1MSP",
                                                      "note": "x"})
        forged = Transaction.create(org.admins[1], "revoke", big_crl,
                                    nonce=0, chain=ledger.chain_id)
        with pytest.raises(TransactionRejected) as err:
            ledger.submit(forged)  # a signed oversized one is refused just the same
        assert err.value.reason == "tx-payload"
        with pytest.raises(TransactionRejected, match="nests deeper than 5"):
            ledger.transact(org.clients[0], "anchor", {"digest": digest("d"),
                                                        "x": [[[[[1]]]]]})
        with pytest.raises(TransactionRejected, match="outside"):
            ledger.transact(org.clients[0], "anchor", {"digest": digest("d"), "n": 2**60})


def test_bodies_are_stored_packed_and_a_format_4_file_is_refused_untouched(tmp_path, org):
    """Format 3 stores each transaction body, block header and tree head packed
    (`store.pack_body`, ...), format 4 a sender as its certificate's `ref` too, format 5 a
    header with the genesis proposer's id in its dictionary: what is signed is unchanged, a
    stored body or header is a fraction of it, and a file of format 4 neither opens nor
    verifies (both name the formats) and is left as it was."""
    path = tmp_path / "p.db"
    ledger = org.ledger(path)
    tx_id = ledger.transact(org.clients[1], "update-hash", {"round": 0, "digest": digest("x")})
    ledger.seal()
    signed = ledger.transaction(tx_id).body
    conn = sqlite3.connect(path)
    with conn:
        chain = conn.execute("SELECT value FROM meta WHERE key = 'chain'").fetchone()[0]
        stored, ref, sender = conn.execute("SELECT t.body, t.sender, c.id FROM txs t JOIN certs c "
                                           "ON c.ref = t.sender WHERE seq = 1").fetchone()
        assert type(ref) is int and sender == org.clients[1].id
        assert store.unpack_body(stored, chain, sender) == signed
        assert len(stored) < len(signed) / 2
        (prev,), (header, head) = conn.execute(
            "SELECT hash FROM blocks WHERE height = 0").fetchone(), conn.execute(
            "SELECT header, tree_head FROM blocks WHERE height = 1").fetchone()
        block, first = ledger.block(1), ledger.block(0).header.proposer
        assert block.header.proposer == first
        assert store.unpack_header(header, chain, prev.hex(), first) == block.header.encode()
        without = store.pack_header(block.header.encode(), chain, prev.hex(), "")
        assert len(header) + 24 < len(without)  # the proposer's 64 hex characters: a reference
        try:  # another dictionary: another header, or none at all
            wrong: bytes | None = store.unpack_header(header, chain, prev.hex(), "")
        except MalformedError:
            wrong = None
        assert wrong != block.header.encode()
        assert store.unpack_tree_head(head, chain) == block.tree_head.encode()
        assert len(header) < len(block.header.encode()) / 2
    ledger.close()
    with conn:
        conn.execute("UPDATE meta SET value = '4' WHERE key = 'format'")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(LedgerError, match="has format '4', expected 5"):
        PublicLedger.open(path)
    report = verify_ledger_file(path)
    assert [p.reason for p in report.problems] == ["meta"] and "'4'" in report.problems[0].detail
    assert path.read_bytes() == before


@pytest.mark.parametrize("column", ["header", "tree_head", "body"])
def test_a_flipped_byte_in_a_packed_column_is_named_by_its_block(tmp_path, org, column):
    path = tmp_path / "p.db"
    with org.ledger(path) as ledger:
        for n in range(3):
            ledger.transact(org.clients[1], "update-hash", {"round": n, "digest": digest(str(n))})
            ledger.seal()
    table, key = ("txs", "seq = 2") if column == "body" else ("blocks", "height = 2")
    conn = sqlite3.connect(path)
    with conn:
        (packed,) = conn.execute(f"SELECT {column} FROM {table} WHERE {key}").fetchone()
        flipped = bytearray(packed)
        flipped[len(packed) // 2] ^= 0x04
        conn.execute(f"UPDATE {table} SET {column} = ? WHERE {key}", (bytes(flipped),))
    conn.close()
    problem = verify_ledger_file(path).problems[0]
    assert problem.block == 2, problem


def test_low_merkle_levels_are_recomputed_and_a_stored_one_is_refused(tmp_path, org):
    """Format 4 stores Merkle nodes from `store.STORED_LEVEL` up: proofs of every leaf at every
    published size still verify (levels 1 and 2 recomputed from the leaves), and a level-1 node
    slipped into the table is a `merkle-node` problem of the block that completed it."""
    path = tmp_path / "p.db"
    ledger = org.ledger(path)
    ids = fill(ledger, org, 6)
    conn = sqlite3.connect(path)
    levels = {level for (level,) in conn.execute("SELECT DISTINCT level FROM nodes")}
    assert levels and min(levels) == store.STORED_LEVEL
    heads = list(ledger.tree_heads())
    for head in heads[1:]:
        for index, tx_id in enumerate(ids):
            if index + 1 < head.size:
                assert ledger.inclusion_proof(tx_id, tree_size=head.size).verify(head)
        for earlier in heads:
            if earlier.size <= head.size:
                assert ledger.consistency_proof(earlier.size, head.size).verify(earlier, head)
    ledger.close()
    with conn:  # leaves 0..1 are in blocks 0 and 1: node (1, 0) was completed by block 1
        conn.execute("INSERT INTO nodes(last, level, hash) VALUES (1, 1, ?)",
                     (hashlib.sha256(b"x").digest(),))
    conn.close()
    problem = verify_ledger_file(path).problems[0]
    assert (problem.block, problem.reason) == (1, "merkle-node"), problem
