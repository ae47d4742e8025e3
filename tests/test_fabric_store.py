"""A peer's store: purged private values leave every file, even past a reader or a kill -9.

SQLite keeps old page images in the `-wal` file until a checkpoint resets it; a reader holding a
snapshot stops that checkpoint, and a crash can come between a commit and its checkpoint. The
store checks each checkpoint, retries it at every later commit and at close, and scrubs at open.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from chains.fabric import CollectionConfig, Gateway, Network, verify_channel_file

ORGS = ("Org1", "Org2")
SECRET = b"PLAINTEXT-7f3a9c-" * 40
COLLECTIONS = [CollectionConfig("c", "OR('Org1.member')", endorsement_policy="OR('Org1.peer')"),
               CollectionConfig("short", "OR('Org1.member')", block_to_live=1,
                                endorsement_policy="OR('Org1.peer')")]
CHAINCODE = {
    "put": lambda stub, coll, key: stub.put_private_data(coll, key, stub.get_transient()["v"]),
    "purge": lambda stub, coll, key: stub.purge_private_data(coll, key),
    "tick": lambda stub: stub.put_state("tick", stub.tx_id),
}


def open_channel(path: Path):
    net = Network.create(ORGS, seed=17, path=path)
    ch = net.create_channel("ch", ORGS, "OR('Org1.peer', 'Org2.peer')", COLLECTIONS,
                            nonce=b"store-tests")
    ch.install_chaincode("pdc", CHAINCODE)
    return net, ch, Gateway(ch, net.client("Org1"))


def files_holding(folder: Path, needle: bytes) -> list[str]:
    return sorted(p.name for p in folder.glob("*.db*") if needle in p.read_bytes())


@pytest.mark.parametrize("erase", ["purge", "expire"])
def test_erased_values_leave_the_wal_once_a_reader_lets_go(tmp_path: Path, erase: str) -> None:
    net, ch, gw = open_channel(tmp_path)
    coll = "c" if erase == "purge" else "short"
    assert gw.submit("pdc", "put", coll, "k", transient={"v": SECRET}).valid
    folder = tmp_path / "ch"
    assert "peer0.Org1.db" in files_holding(folder, SECRET[:17]) or \
        "peer0.Org1.db-wal" in files_holding(folder, SECRET[:17])
    reader = sqlite3.connect(folder / "peer0.Org1.db", isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM private_state").fetchone()  # pins the old snapshot
    if erase == "purge":
        assert gw.submit("pdc", "purge", coll, "k").valid
    else:
        assert gw.submit("pdc", "tick").valid and gw.submit("pdc", "tick").valid  # expires
    peer = ch.peers[0]
    assert peer.store.scrub_pending  # the checkpoint could not reset the WAL
    assert gw.submit("pdc", "tick").valid  # still pinned: retried, still pending
    assert peer.store.scrub_pending
    reader.execute("COMMIT")
    reader.close()
    assert gw.submit("pdc", "tick").valid  # the next commit scrubs
    assert not peer.store.scrub_pending
    assert files_holding(folder, SECRET[:17]) == []
    net.close()
    assert verify_channel_file(folder / "peer0.Org1.db").ok


def test_a_crash_between_commit_and_checkpoint_is_scrubbed_on_open(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import os, signal, sqlite3, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_fabric_store import SECRET, open_channel
        from pathlib import Path
        net, ch, gw = open_channel(Path({str(tmp_path)!r}))
        assert gw.submit("pdc", "put", "c", "k", transient={{"v": SECRET}}).valid
        reader = sqlite3.connect(Path({str(tmp_path)!r}) / "ch" / "peer0.Org1.db",
                                 isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM private_state").fetchone()
        assert gw.submit("pdc", "purge", "c", "k").valid  # committed; checkpoint blocked
        print("purged", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           timeout=120, check=False)
    assert child.returncode == -signal.SIGKILL and "purged" in child.stdout, child.stderr
    folder = tmp_path / "ch"
    assert files_holding(folder, SECRET[:17])  # the crash left the plaintext in the files
    report = verify_channel_file(folder / "peer0.Org1.db")  # verify reads a private copy
    assert report.ok, report.summary()
    assert files_holding(folder, SECRET[:17])  # ...and changed nothing
    net, ch, _ = open_channel(tmp_path)  # reopening scrubs before anything else
    assert all(not p.store.scrub_pending for p in ch.peers)
    assert files_holding(folder, SECRET[:17]) == []
    assert ch.peers[0].private_record("pdc", "c", "k") is None
    net.close()
    assert files_holding(folder, SECRET[:17]) == []


def test_kill_9_while_committing_leaves_whole_blocks(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_fabric_store import open_channel
        from pathlib import Path
        net, ch, gw = open_channel(Path({str(tmp_path)!r}))
        print("ready", flush=True)
        i = 0
        while True:
            commits = [gw.submit_async("pdc", "tick") for _ in range(5)]
            ch.flush()
            i += 1
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert child.stdout is not None and child.stdout.readline().strip() == b"ready"
    conn = sqlite3.connect(tmp_path / "ch" / "orderer.db", timeout=30)
    while (conn.execute("SELECT count(*) FROM blocks").fetchone()[0] or 0) < 6:
        time.sleep(0.05)
    conn.close()
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    net, ch, gw = open_channel(tmp_path)  # peers behind the orderer catch up from its store
    assert len({p.height for p in ch.peers}) == 1 and ch.peers[0].height == ch.height
    assert gw.submit("pdc", "tick").valid
    net.close()
    for name in ("orderer", "peer0.Org1", "peer0.Org2"):
        assert verify_channel_file(tmp_path / "ch" / f"{name}.db").ok


def test_a_file_whose_creation_fails_holds_no_half_schema(tmp_path):
    """Schema and meta are one transaction: a failure part-way (here a bad statement; a full
    disk alike) leaves an empty file that the next open creates properly."""
    from chains.fabric.errors import LedgerStateError
    from chains.fabric.store import KIND, SCHEMA, open_store

    path = tmp_path / "peer.db"
    meta = {"kind": KIND, "format": "2", "channel": "c", "peer": "p"}
    with pytest.raises(LedgerStateError, match="unreadable"):
        open_store(path, SCHEMA + "CREATE TABLE broken(;", meta)
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)
    conn.close()
    open_store(path, SCHEMA, meta).close()
    open_store(path, SCHEMA, meta).close()  # and reopens as the ledger it is


def test_a_full_disk_at_a_peer_leaves_the_block_with_the_orderer(tmp_path):
    """A peer that cannot commit (SQLite's "database or disk is full") raises one
    LedgerStorageError naming its file; the block waits with the orderer and reaches the peer
    once it has room again."""
    import errno

    from chains.errors import LedgerStorageError

    net = Network.create(["Org1", "Org2"], seed=3, path=tmp_path)
    ch = net.create_channel("c", ["Org1", "Org2"], "OR('Org1.peer', 'Org2.peer')", nonce=b"n" * 8)
    ch.install_chaincode("kv", {"put": lambda stub, k, v: stub.put_state(k, v)})
    gw = Gateway(ch, net.client("Org1"))
    full = ch.peers[1]
    (pages,) = full.store.conn.execute("PRAGMA page_count").fetchone()
    full.store.conn.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(LedgerStorageError) as failure:
        for i in range(20):
            gw.submit("kv", "put", f"k{i}", "v" * 3000)
    assert failure.value.errno == errno.ENOSPC and failure.value.filename == full.store.path
    assert full.height < ch.orderer.height
    full.store.conn.execute("PRAGMA max_page_count = 1073741823")
    ch.flush()  # delivered now
    assert full.height == ch.orderer.height == ch.peers[0].height
    net.close()
    assert all(verify_channel_file(p).ok for p in (tmp_path / "c").glob("*.db"))
