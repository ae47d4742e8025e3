"""The Ethereum anchor log (chains.ethereum_log) and its offline verification
(chains.ethereum_verify): an honest log verifies, with its artifacts, across sessions; every
tampering is named with a reason."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import sys

import pytest

from chains import OrgCA, verify_path
from chains.canonical import canonical_json
from chains.ethereum import DATA_PREFIX, EthereumAnchor, decode_anchor_data
from chains.ethereum_log import IN_PROCESS, AnchorLog, LoggedAnchor
from chains.msp import MSP

pytestmark = pytest.mark.eth
pytest.importorskip("web3")
pytest.importorskip("eth_tester")

KEYS = [hashlib.sha256(b"fedenv-eth-log-test/%d" % i).digest() for i in range(2)]


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def consortium():
    cas = [OrgCA.create(f"Org{i}", seed=b"eth-log") for i in range(2)]
    msp = MSP()
    for ca in cas:
        msp.add_org(ca.msp_id, ca.cert_pem)
    return cas, msp


def anchor_some(folder, consortium, *, session_count: int = 1) -> None:
    """Two sessions' worth of anchors (one in-process chain each), with artifacts."""
    cas, msp = consortium
    client, orderer = cas[0].issue("client", "client"), cas[1].issue("orderer", "orderer")
    path = folder / "public-eth.db"
    for session in range(session_count):
        log = (
            AnchorLog.open(path)
            if path.exists()
            else AnchorLog.create(path, msp, max_payload_bytes=4096)
        )
        chain = EthereumAnchor.in_process(private_key=KEYS[session])  # one account a session
        anchors = LoggedAnchor(
            chain, log, node=IN_PROCESS, funding=10**20, clock=lambda s=session: 10 + s
        )
        for i in range(2):
            data = f"adapter {session}/{i}".encode()
            (folder / f"a{session}{i}.bin").write_bytes(data)
            anchors.anchor(
                "update-hash",
                {"round": i, "digest": digest(data), "artifact": f"a{session}{i}.bin"},
                sender=client,
            )
        anchors.anchor("round-summary", {"round": 1, "accepted": 2}, sender=orderer)
        anchors.close()


@pytest.fixture(scope="module")
def honest(tmp_path_factory, consortium):
    folder = tmp_path_factory.mktemp("eth-log")
    anchor_some(folder, consortium, session_count=2)
    return folder


def test_an_honest_log_verifies_with_its_artifacts_across_sessions(honest):
    (report,) = verify_path(honest)
    assert report.ok, report.summary()
    assert (report.kind, report.transactions) == ("ethereum-anchors", 6)
    assert report.head == "anchors=6 sessions=2"
    log = AnchorLog.open(honest / "public-eth.db")
    assert [k for k, _ in log.records()] == ["update-hash", "update-hash", "round-summary"] * 2
    assert len(log) == 6 and log.last_time == 11
    log.close()


def test_the_same_key_and_calls_give_the_same_transactions(tmp_path, consortium, honest):
    anchor_some(tmp_path, consortium, session_count=2)
    rows = []
    for folder in (honest, tmp_path):
        conn = sqlite3.connect(folder / "public-eth.db")
        rows.append(conn.execute("SELECT receipt, block, raw FROM anchors ORDER BY seq").fetchall())
        conn.close()
    assert rows[0] == rows[1]


def _tampered(honest, tmp_path, sql: str, *args) -> list:
    folder = tmp_path / "copy"
    shutil.copytree(honest, folder)
    conn = sqlite3.connect(folder / "public-eth.db")
    conn.execute(sql, args)
    conn.commit()
    conn.close()
    return verify_path(folder)


def _forged_raw(honest, payload: dict) -> bytes:
    """What the holder of the anchoring key (not of the fedenv identity) can make: anchor 2's
    transaction (same nonce, sender and signature) with another payload."""
    import rlp
    from eth_account import Account

    conn = sqlite3.connect(honest / "public-eth.db")
    raw, chain_id = conn.execute(
        "SELECT a.raw, s.chain_id FROM anchors a JOIN sessions s USING (session) WHERE seq = 2"
    ).fetchone()
    conn.close()
    _, _, sender, signature = decode_anchor_data(bytes(rlp.decode(raw)[5]))
    data = DATA_PREFIX + canonical_json(
        {"kind": "update-hash", "payload": payload, "sender": sender, "signature": signature.hex()}
    )
    account = Account.from_key(KEYS[0])
    tx = {
        "to": account.address,
        "value": 0,
        "data": data,
        "nonce": 1,
        "chainId": chain_id,
        "gas": 100_000,
        "gasPrice": 10**9,
    }
    return bytes(account.sign_transaction(tx).raw_transaction)


TAMPER = [
    ("UPDATE anchors SET payload = CAST('{\"round\":7}' AS BLOB) WHERE seq = 2", (), "eth-index"),
    (
        "UPDATE anchors SET receipt = '0x' || substr(receipt, 3, 63) || '0' WHERE seq = 2",
        (),
        "eth-tx-hash",
    ),
    ("UPDATE anchors SET raw = substr(raw, 1, 40) WHERE seq = 2", (), "eth-tx"),
    ("UPDATE anchors SET status = 0 WHERE seq = 3", (), "eth-receipt"),
    ("UPDATE anchors SET gas_used = gas_used + 1 WHERE seq = 3", (), "eth-receipt"),
    ("UPDATE anchors SET block = block + 1 WHERE seq = 3", (), "eth-receipt"),
    ("DELETE FROM anchors WHERE seq = 2", (), "eth-nonce"),
    ("UPDATE anchors SET time = 0 WHERE seq = 3", (), "eth-order"),
    (
        "UPDATE sessions SET account = '0x' || substr(account, 3, 39) || '0' WHERE session = 1",
        (),
        "eth-account",
    ),
    ("UPDATE sessions SET chain_id = chain_id + 1 WHERE session = 1", (), "eth-chain"),
    ("DELETE FROM certs", (), "tx-sender"),
    ("UPDATE meta SET value = 'other' WHERE key = 'kind'", (), "unknown-kind"),
    ("UPDATE meta SET value = '2' WHERE key = 'format'", (), "meta"),
    ("CREATE TRIGGER t AFTER INSERT ON anchors BEGIN SELECT 1; END", (), "schema"),
    ("DELETE FROM sessions WHERE session = 2", (), "orphan-transactions"),
]


@pytest.mark.parametrize("sql, args, reason", TAMPER, ids=[t[2] + ":" + t[0][:30] for t in TAMPER])
def test_tampering_is_named(honest, tmp_path, sql, args, reason):
    (report,) = _tampered(honest, tmp_path, sql, *args)
    assert not report.ok
    assert report.problems[0].reason == reason, report.summary()


def test_a_forged_payload_under_the_anchoring_key_does_not_verify(honest, tmp_path):
    """Whoever holds the Ethereum key can send any data, but cannot sign as a fedenv identity."""
    from eth_utils import keccak

    payload = {"round": 1, "digest": digest(b"another adapter"), "artifact": "a01.bin"}
    forged = _forged_raw(honest, payload)
    (report,) = _tampered(
        honest,
        tmp_path,
        "UPDATE anchors SET raw = ?, receipt = ?, payload = ? WHERE seq = 2",
        forged,
        "0x" + keccak(forged).hex(),
        canonical_json(payload),
    )
    assert report.problems[0].reason == "tx-signature", report.summary()


def test_another_certificate_under_the_senders_id_is_named(honest, tmp_path):
    stranger = OrgCA.create("Org0", seed=b"mallory").issue("client", "client")
    (report,) = _tampered(honest, tmp_path, "UPDATE certs SET pem = ?", stranger.cert_pem)
    assert report.problems[0].reason == "tx-sender", report.summary()


def test_a_swapped_artifact_is_named(honest, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(honest, folder)
    (folder / "a01.bin").write_bytes(b"not what was anchored")
    (report,) = verify_path(folder)
    assert [p.reason for p in report.problems] == ["artifact-digest"]
    assert "a01.bin" in report.problems[0].detail


def test_without_the_eth_extra_the_log_fails_with_a_reason(honest, monkeypatch):
    monkeypatch.setitem(sys.modules, "rlp", None)
    (report,) = verify_path(honest)
    assert [p.reason for p in report.problems] == ["eth-extra-missing"]


def test_the_log_keeps_only_locally_signed_transactions(tmp_path, consortium):
    _, msp = consortium
    log = AnchorLog.create(tmp_path / "l.db", msp, max_payload_bytes=4096)
    chain = EthereumAnchor.in_process()  # the node's unlocked account signs: no raw bytes
    anchors = LoggedAnchor(chain, log, node=IN_PROCESS)
    with pytest.raises(Exception, match="locally signed"):
        anchors.anchor("anchor", {"digest": digest(b"x")})
    anchors.close()
