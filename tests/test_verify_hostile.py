"""`chains verify` on hostile folders: a reason and exit 1 for everything, never a traceback,
never a write, never a link followed out of the folder, never a hang."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support_fabric_files import repack, stored_block

from chains.__main__ import main
from chains.fabric import Gateway, Network
from chains.identity import OrgCA
from chains.public_ledger import PublicLedger
from chains.report import VerifyLimits
from chains.verify import verify_ledger_file, verify_path

CAS = [OrgCA.create(f"Org{i}MSP", seed=b"hostile-folders") for i in range(2)]
ORDERER = CAS[0].issue("orderer0", "orderer")
CLIENT = CAS[1].issue("client1", "client")


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def snapshot(*folders: Path) -> dict[str, tuple[int, str]]:
    """Every entry under the folders: (mode, content hash or link target); no link followed."""
    found = {}
    for folder in folders:
        for root, dirs, files in os.walk(folder, followlinks=False):
            for name in dirs + files:
                path = Path(root) / name
                info = os.lstat(path)
                if path.is_symlink():
                    found[str(path)] = (info.st_mode, os.readlink(path))
                elif path.is_file():
                    found[str(path)] = (info.st_mode, digest(path.read_bytes()))
                else:
                    found[str(path)] = (info.st_mode, "")
    return found


def verify_quietly(path: Path, capsys, **kw) -> list:
    """verify_path and the CLI agree, the CLI prints, exits 1, and nothing is written."""
    before = snapshot(path.parent)
    reports = verify_path(path, **kw)
    code = main(["verify", str(path)]) if not kw else None
    out = capsys.readouterr().out
    assert snapshot(path.parent) == before
    if code is not None:
        assert code == (0 if all(r.ok for r in reports) else 1), out
    return reports


def ledger_with(folder: Path, payloads: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "public.db"
    with PublicLedger.create(path, orgs=CAS, proposer=ORDERER, nonce=b"hostile-folder") as ledger:
        for payload in payloads:
            ledger.transact(CLIENT, "anchor", payload)
        ledger.seal()
    return path


def test_hostile_artifact_names_are_problems_not_tracebacks(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "run"
    (folder / "adapters").mkdir(parents=True)
    (tmp_path / "outside.bin").write_bytes(b"secret")
    (folder / "adapters" / "self").symlink_to("self")  # a link to itself
    (folder / "adapters" / "out").symlink_to(tmp_path / "outside.bin")
    (folder / "linkdir").symlink_to(folder / "adapters")
    (folder / "adapters" / "real.bin").write_bytes(b"real")
    os.mkfifo(folder / "adapters" / "fifo")
    names = {
        "nul": "adapters/a\x00b", "long": "a" * 1500, "self": "adapters/self",
        "out": "adapters/out", "through-link": "linkdir/real.bin", "fifo": "adapters/fifo",
        "up": "../outside.bin", "absolute": str(tmp_path / "outside.bin"), "dot": "./x",
        "backslash": "adapters\\real.bin", "empty-part": "adapters//real.bin",
        "surrogate": "adapters/\udcff", "component": "x" * 300 + "/y", "missing": "nope.bin",
        "newline": "adapters/real.bin\n",
    }
    stored = [n for n in names.values() if n != "adapters/\udcff"]  # not valid Unicode:
    with pytest.raises(Exception, match="not valid Unicode"):       # no ledger takes it
        ledger_with(tmp_path / "refused", [{"digest": digest(b"x"), "artifact": names["surrogate"]}])
    ledger_with(folder, [{"digest": digest(b"secret"), "artifact": name} for name in stored]
                + [{"digest": digest(b"real"), "artifact": "adapters/real.bin"}])
    (report,) = verify_quietly(folder, capsys)
    reasons = [p.reason for p in report.problems]
    assert reasons.count("artifact-missing") == 1  # "nope.bin"
    assert reasons.count("artifact-path") == len(stored) - 1  # every other hostile name
    assert len(reasons) == len(stored)  # and the real artifact matches its digest
    summary = report.summary()
    assert summary.isprintable() or "\n" in summary
    summary.encode("utf-8")  # printable whatever the names were


def test_a_ledger_link_is_not_followed_and_nothing_appears_out_there(tmp_path: Path,
                                                                    capsys) -> None:
    outside = tmp_path / "elsewhere"
    real = ledger_with(outside, [{"digest": digest(b"x")}])
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "public.db").symlink_to(real)
    (folder / "loop.db").symlink_to("loop.db")
    before = snapshot(outside)
    reports = verify_quietly(folder, capsys)
    assert sorted((Path(r.path).name, r.problems[0].reason) for r in reports) == [
        ("loop.db", "link"), ("public.db", "link")]
    assert snapshot(outside) == before  # no -wal or -shm was created next to the target
    assert verify_path(folder / "public.db")[0].problems[0].reason == "link"


def test_views_triggers_and_recursive_queries_are_refused_without_running(tmp_path: Path,
                                                                         capsys) -> None:
    folder = tmp_path / "run"
    path = ledger_with(folder, [{"digest": digest(b"x")}])
    conn = sqlite3.connect(path)
    conn.execute("CREATE VIEW forever AS WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL "
                 "SELECT x + 1 FROM r) SELECT x FROM r")
    conn.commit()
    conn.close()
    other = folder / "meta-view.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE VIEW meta(key, value) AS WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL "
                 "SELECT x + 1 FROM r) SELECT 'kind', x FROM r")
    conn.commit()
    conn.close()
    reports = {Path(r.path).name: r for r in verify_quietly(folder, capsys)}
    assert reports["public.db"].problems[0].reason == "schema"
    assert reports["meta-view.db"].problems[0].reason == "unknown-kind"


def test_a_hot_rollback_journal_is_recovered_on_a_private_copy_only(tmp_path: Path,
                                                                   capsys) -> None:
    folder = tmp_path / "run"
    path = ledger_with(folder, [{"digest": digest(b"x")}])
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.close()
    script = textwrap.dedent(f"""
        import os, signal, sqlite3
        conn = sqlite3.connect({str(path)!r}, isolation_level=None)
        conn.execute("PRAGMA cache_size=1")  # spill changed pages into the file before commit
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE txs SET body = zeroblob(4000)")
        conn.execute("INSERT INTO certs(id, pem) VALUES ('x', zeroblob(100000))")
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    subprocess.run([sys.executable, "-c", script], check=False)
    journal = Path(f"{path}-journal")
    assert journal.exists() and journal.stat().st_size > 0
    before = snapshot(folder)
    (report,) = verify_quietly(path, capsys)
    assert report.ok, report.summary()  # the committed ledger, as SQLite would roll it back
    assert snapshot(folder) == before  # but the files were only read


def test_a_live_ledger_verifies_from_a_private_copy_of_its_wal(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    ledger = PublicLedger.create(folder / "public.db", orgs=CAS, proposer=ORDERER)
    for i in range(3):
        ledger.transact(CLIENT, "anchor", {"digest": digest(bytes([i]))})
        ledger.seal()
    assert Path(f"{folder / 'public.db'}-wal").stat().st_size > 0  # committed, not checkpointed
    (report,) = verify_quietly(folder, capsys)
    assert report.ok and report.blocks == 4, report.summary()
    ledger.transact(CLIENT, "anchor", {"digest": digest(b"later")})  # the writer goes on
    assert ledger.seal().height == 4
    ledger.close()


def _channel(folder: Path) -> Path:
    net = Network.create(["Org1", "Org2"], seed=3, path=folder)
    ch = net.create_channel("ch", ["Org1", "Org2"], "OR('Org1.peer', 'Org2.peer')",
                            nonce=b"hostile-channel")
    ch.install_chaincode("kv", {"put": lambda stub, k, v: stub.put_state(k, v)})
    Gateway(ch, net.client("Org1")).submit("kv", "put", "k", "v")
    net.close()
    return folder / "ch" / "peer0.Org1.db"


@pytest.mark.parametrize("tamper", [
    "UPDATE blocks SET signature = 'not a blob' WHERE number = 2",
    "UPDATE blocks SET orderer = CAST('-----BEGIN CERTIFICATE-----é' AS BLOB) WHERE number = 2",
    "UPDATE blocks SET body = CAST(body AS TEXT) WHERE number = 1",
    "UPDATE blocks SET body = x'ff00' WHERE number = 1",
    "UPDATE blocks SET body = zeroblob(5000000) WHERE number = 2",
    "UPDATE blocks SET body = substr(body, 1, length(body) - 3) WHERE number = 2",
    "UPDATE blocks SET body = body || x'00' WHERE number = 2",
    "ALTER TABLE blocks ADD COLUMN hash BLOB",  # format 5's column: not this schema
    "UPDATE blocks SET orderer = 99 WHERE number = 2",
    "UPDATE blocks SET dictionary = dictionary + 1 WHERE number = 2",
    "UPDATE certificates SET pem = x'00' WHERE id = 1",
    "DELETE FROM certificates WHERE id = (SELECT MAX(id) FROM certificates)",
    "UPDATE transactions SET block = 'one' WHERE block = 2",
    "UPDATE transactions SET code = x'00' WHERE block = 2",
    "UPDATE transactions SET idx = 7 WHERE block = 2",
    "UPDATE state SET value = 'text' WHERE key = 'k'",
    "UPDATE state SET block = 'x' WHERE key = 'k'",
    "UPDATE meta SET value = 'fabric-channel' || char(0) WHERE key = 'kind'",
    "UPDATE meta SET value = 2 WHERE key = 'format'",
    "DELETE FROM blocks WHERE number = 0",
    "UPDATE chaincodes SET definition = '[' || substr(hex(zeroblob(5000)), 1, 5000)",
])
def test_hostile_channel_files_get_a_reason(tmp_path: Path, capsys, tamper: str) -> None:
    path = _channel(tmp_path)
    conn = sqlite3.connect(path)
    conn.execute(tamper)
    conn.commit()
    conn.close()
    (report,) = verify_quietly(path, capsys)
    assert not report.ok and report.problems[0].reason, report.summary()


def test_a_policy_nested_600_deep_in_a_stored_chaincode_definition_gets_a_reason(
        tmp_path: Path, capsys) -> None:
    path = _channel(tmp_path)
    raw = stored_block(path, 1).envelopes[0]
    policy = b'"endorsement_policy":"OR(\'Org1.peer\', \'Org2.peer\')"'
    assert policy in raw
    repack(path, 1, envelopes={0: raw.replace(policy, b'"endorsement_policy":"'
                                              + b"OR(" * 600 + b'"')})
    (report,) = verify_quietly(path, capsys)
    assert not report.ok and report.problems[0].block == 1, report.summary()


def test_time_size_and_walk_bounds(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "run"
    path = ledger_with(folder, [{"digest": digest(str(i).encode())} for i in range(300)])
    slow = verify_ledger_file(path, limits=VerifyLimits(max_seconds=0.0))
    assert [p.reason for p in slow.problems] == ["timeout"]
    big = verify_ledger_file(path, limits=VerifyLimits(max_ledger_bytes=1000))
    assert [p.reason for p in big.problems] == ["too-large"]
    deep = folder
    for i in range(5):
        deep = deep / f"d{i}"
    deep.mkdir(parents=True)
    reports = verify_path(folder, limits=VerifyLimits(max_depth=2))
    assert {p.reason for r in reports for p in r.problems} == {"too-deep"}
    for i in range(30):
        (folder / f"f{i}.txt").write_bytes(b"")
    reports = verify_path(folder, limits=VerifyLimits(max_entries=10))
    assert "too-many-entries" in {p.reason for r in reports for p in r.problems}
    artifact = ledger_with(tmp_path / "art", [{"digest": digest(b"x" * 100),
                                               "artifact": "a.bin"}])
    (artifact.parent / "a.bin").write_bytes(b"x" * 100)
    (report,) = verify_path(artifact.parent, limits=VerifyLimits(max_artifact_bytes=10))
    assert [p.reason for p in report.problems] == ["artifact-size"]


def test_odd_paths_given_to_verify(tmp_path: Path) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to("loop")
    cases = {str(tmp_path / "a\x00b"): "unreadable", str(tmp_path / ("x" * 5000)): "unreadable",
             str(loop): "unreadable", str(tmp_path / "missing"): "missing"}
    for given, reason in cases.items():
        (report,) = verify_path(given)
        assert [p.reason for p in report.problems] == [reason]
    fifo = tmp_path / "pipe.db"
    os.mkfifo(fifo)
    assert verify_path(fifo)[0].problems[0].reason == "not-a-file"
    assert [p.reason for r in verify_path(tmp_path) for p in r.problems] == ["not-a-file"]


def test_the_cli_never_prints_a_traceback(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "garbage.db").write_bytes(os.urandom(5000))
    (folder / "empty.sqlite").write_bytes(b"")
    (folder / "truncated.db").write_bytes(b"SQLite format 3\x00" + bytes(84))
    result = subprocess.run([sys.executable, "-m", "chains", "verify", str(folder)],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr + result.stdout
    assert result.stdout.count("FAIL") == 3
