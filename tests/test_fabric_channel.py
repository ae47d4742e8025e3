"""Execute-order-validate on a channel: endorsement, ordering, MVCC, codes, determinism, resume."""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path

import pytest

from chains.fabric import (
    AccessDeniedError,
    ChaincodeError,
    Channel,
    ConfigError,
    EndorsementError,
    Gateway,
    MalformedError,
    Network,
    ValidationCode,
    verify_channel_file,
)
from chains.fabric.transaction import Endorsement, Envelope, SignedProposal, used_id

V = ValidationCode
ORGS = ("Org1", "Org2", "Org3")
POLICY = "OutOf(2, 'Org1.peer', 'Org2.peer', 'Org3.peer')"


def _put(stub, key, value):
    stub.put_state(key, value)
    return {"put": key}


def _incr(stub, key):
    n = int(stub.get_state(key) or b"0") + 1
    stub.put_state(key, str(n))
    return n


def _create(stub, key, value):
    if stub.get_state(key) is None:
        stub.put_state(key, value)


def _count(stub, start, end):
    return len(stub.get_state_by_range(start, end))


def _fail(stub):
    raise ValueError("no such account")


KV = {"put": _put, "get": lambda stub, key: stub.get_state(key), "incr": _incr,
      "delete": lambda stub, key: stub.del_state(key), "create": _create, "count": _count,
      "fail": _fail}


def make_channel(net: Network, **kwargs) -> Channel:
    channel = net.create_channel("ch", ORGS, POLICY, **kwargs)
    channel.install_chaincode("kv", KV)
    return channel


@pytest.fixture
def net() -> Network:
    return Network.create((*ORGS, "Org4"), seed=11)  # Org4 exists but is not in the channel


@pytest.fixture
def ch(net: Network) -> Channel:
    return make_channel(net)


def test_submit_commits_and_evaluate_queries(net: Network, ch: Channel) -> None:
    gw = Gateway(ch, net.client("Org1"))
    height = ch.height
    result = gw.submit("kv", "put", "k", "hello")
    assert result.code is V.VALID and result.valid
    assert result.block_number == height and ch.height == height + 1
    assert result.json() == {"put": "k"}
    assert len(result.tx_id) == 64
    assert Gateway(ch, net.client("Org3")).evaluate("kv", "get", "k") == b"hello"
    assert ch.height == height + 1  # evaluate orders nothing
    for peer in ch.peers:  # every peer committed the same state
        assert peer.state.get("kv", "k") == (b"hello", (height, 0))


def test_endorsers_follow_the_policy_with_own_org_first(net: Network, ch: Channel) -> None:
    tx = Gateway(ch, net.client("Org3")).endorse(
        Gateway(ch, net.client("Org3")).propose("kv", "put", "k", "v"))
    endorsers = [e.endorser for e in tx.envelope.endorsements]
    assert endorsers == [net.peer_identities("Org3")[0].cert_pem,
                         net.peer_identities("Org1")[0].cert_pem]


# --- MVCC ---------------------------------------------------------------------------------------
def test_two_txs_in_one_block_reading_the_same_key(net: Network, ch: Channel) -> None:
    gw = Gateway(ch, net.client("Org1"))
    gw.submit("kv", "put", "k", "0")
    first, second = gw.submit_async("kv", "incr", "k"), gw.submit_async("kv", "incr", "k")
    a, b = first.status(), second.status()
    assert a.block_number == b.block_number
    assert (a.code, b.code) == (V.VALID, V.MVCC_READ_CONFLICT)
    assert gw.evaluate("kv", "get", "k") == b"1"  # only the valid write set was applied


def test_read_of_a_key_changed_in_a_previous_block(net: Network, ch: Channel) -> None:
    gw = Gateway(ch, net.client("Org1"))
    gw.submit("kv", "put", "k", "0")
    stale = gw.endorse(gw.propose("kv", "incr", "k"))  # simulated against k = "0"
    assert gw.submit("kv", "put", "k", "5").valid
    assert stale.submit().status().code is V.MVCC_READ_CONFLICT
    assert gw.evaluate("kv", "get", "k") == b"5"


def test_read_only_and_blind_write_txs_do_not_conflict(net: Network, ch: Channel) -> None:
    gw = Gateway(ch, net.client("Org2"))
    gw.submit("kv", "put", "k", "0")
    commits = [gw.submit_async("kv", "get", "k"), gw.submit_async("kv", "get", "k"),
               gw.submit_async("kv", "put", "k", "a"), gw.submit_async("kv", "put", "k", "b")]
    assert [c.status().code for c in commits] == [V.VALID] * 4
    assert gw.evaluate("kv", "get", "k") == b"b"  # later blind write wins


def test_read_of_a_missing_key_created_earlier_in_the_block(net: Network, ch: Channel) -> None:
    gw = Gateway(ch, net.client("Org1"))
    first, second = gw.submit_async("kv", "create", "n", "x"), gw.submit_async("kv", "create",
                                                                                 "n", "y")
    assert (first.status().code, second.status().code) == (V.VALID, V.MVCC_READ_CONFLICT)
    assert gw.evaluate("kv", "get", "n") == b"x"


def test_read_of_a_key_deleted_earlier_in_the_block(net: Network, ch: Channel) -> None:
    gw = Gateway(ch, net.client("Org1"))
    gw.submit("kv", "put", "k", "1")
    first, second = gw.submit_async("kv", "delete", "k"), gw.submit_async("kv", "incr", "k")
    assert (first.status().code, second.status().code) == (V.VALID, V.MVCC_READ_CONFLICT)
    assert gw.evaluate("kv", "get", "k") == b""


def test_writes_of_invalid_txs_do_not_count_for_mvcc(net: Network, ch: Channel) -> None:
    gw = Gateway(ch, net.client("Org1"))
    gw.submit("kv", "put", "k", "1")
    invalid = gw.submit_async("kv", "put", "k", "99", endorsers=["Org1"])  # 1 of 2 needed
    reader = gw.submit_async("kv", "incr", "k")
    assert invalid.status().code is V.ENDORSEMENT_POLICY_FAILURE
    assert reader.status().code is V.VALID
    assert gw.evaluate("kv", "get", "k") == b"2"


def test_range_query_phantom(net: Network, ch: Channel) -> None:
    gw = Gateway(ch, net.client("Org1"))
    gw.submit("kv", "put", "r/1", "x")
    inside = gw.submit_async("kv", "put", "r/2", "x")
    outside = gw.submit_async("kv", "put", "s/1", "x")
    counted = gw.submit_async("kv", "count", "r/", "r0")
    assert counted.payload == b"1"
    assert [c.status().code for c in (inside, outside, counted)] == [
        V.VALID, V.VALID, V.PHANTOM_READ_CONFLICT]
    alone = gw.submit_async("kv", "put", "s/2", "x")
    recount = gw.submit_async("kv", "count", "r/", "r0")
    assert (alone.status().code, recount.status().code) == (V.VALID, V.VALID)
    assert recount.payload == b"2"


# --- endorsement and signatures -----------------------------------------------------------------
def test_too_few_endorsements(net: Network, ch: Channel) -> None:
    result = Gateway(ch, net.client("Org1")).submit("kv", "put", "k", "v", endorsers=["Org1"])
    assert result.code is V.ENDORSEMENT_POLICY_FAILURE
    assert Gateway(ch, net.client("Org1")).evaluate("kv", "get", "k") == b""


def _reendorse(net: Network, ch: Channel, extra: Endorsement | None, *, tamper: bool = False
               ) -> ValidationCode:
    client = net.client("Org1")
    gw = Gateway(ch, client)
    env = gw.endorse(gw.propose("kv", "put", "k", "v"),
                     endorsers=["Org1"] if extra is not None else ["Org1", "Org2"]).envelope
    endorsements = env.endorsements
    if extra is not None:
        endorsements += (extra,)
    if tamper:
        last = endorsements[-1]
        bad = bytes([last.signature[0] ^ 1]) + last.signature[1:]
        endorsements = endorsements[:-1] + (Endorsement(last.endorser, bad),)
    forged = Envelope.create(client, env.header, env.body, endorsements)
    commit = ch.broadcast(forged)
    return commit.status().code  # type: ignore[union-attr]


def test_endorsement_from_a_non_member_org_does_not_count(net: Network, ch: Channel) -> None:
    outsider = net.peer_identities("Org4")[0]  # a valid peer of the network, not of the channel
    insider = net.peer_identities("Org2")[0]
    client = net.client("Org1")
    gw = Gateway(ch, client)
    for signer, expected in ((outsider, V.ENDORSEMENT_POLICY_FAILURE), (insider, V.VALID)):
        env = gw.endorse(gw.propose("kv", "put", "k", "v"), endorsers=["Org1"]).envelope
        extra = Endorsement.sign(signer, env.body_bytes)
        forged = Envelope.create(client, env.header, env.body, (*env.endorsements, extra))
        assert ch.broadcast(forged).status().code is expected  # type: ignore[union-attr]


def test_endorsement_with_a_bad_signature_does_not_count(net: Network, ch: Channel) -> None:
    assert _reendorse(net, ch, None) is V.VALID
    assert _reendorse(net, ch, None, tamper=True) is V.ENDORSEMENT_POLICY_FAILURE


def test_same_identity_endorsing_twice_counts_once(net: Network, ch: Channel) -> None:
    client = net.client("Org1")
    env = Gateway(ch, client).endorse(Gateway(ch, client).propose("kv", "put", "k", "v"),
                                     endorsers=["Org1"]).envelope
    doubled = Envelope.create(client, env.header, env.body, env.endorsements * 2)
    assert ch.broadcast(doubled).status().code is V.ENDORSEMENT_POLICY_FAILURE  # type: ignore[union-attr]


def test_bad_creator_signature_and_forged_tx_id(net: Network, ch: Channel) -> None:
    client = net.client("Org1")
    env = Gateway(ch, client).endorse(Gateway(ch, client).propose("kv", "put", "k", "v")).envelope
    unsigned = Envelope(env.header, env.body, env.endorsements, bytes(64))
    assert ch.broadcast(unsigned).status().code is V.BAD_SIGNATURE  # type: ignore[union-attr]
    by_other = Envelope.create(net.client("Org2"), env.header, env.body, env.endorsements)
    assert ch.broadcast(by_other).status().code is V.BAD_SIGNATURE  # type: ignore[union-attr]
    header = dict(env.header, tx_id="ab" * 32)
    forged = Envelope.create(client, header, env.body, env.endorsements)
    assert ch.broadcast(forged).status().code is V.BAD_PROPOSAL_TXID  # type: ignore[union-attr]
    assert ch.broadcast(env).status().code is V.VALID  # type: ignore[union-attr]


def test_malformed_or_unsigned_input_is_refused_before_the_ledger(net: Network,
                                                                 ch: Channel) -> None:
    gw = Gateway(ch, net.client("Org1"))
    proposal = gw.propose("kv", "put", "k", "v")
    with pytest.raises(AccessDeniedError, match="bad signature"):
        ch.peers[0].endorse(SignedProposal(proposal.header, {}, b"", bytes(64)))
    with pytest.raises(EndorsementError, match="malformed proposal"):
        ch.peers[0].endorse(SignedProposal({**proposal.header, "nonce": "zz"}))
    env = gw.endorse(proposal).envelope
    with pytest.raises(MalformedError, match="proposal_hash"):
        ch.broadcast(Envelope(env.header, {"rwset": {}}, env.endorsements, env.signature))
    with pytest.raises(MalformedError, match="timestamp"):
        ch.broadcast(Envelope({**env.header, "timestamp": "now"}, env.body, (), env.signature))
    assert ch.orderer.pending == 0


def test_non_member_client_is_refused(net: Network, ch: Channel) -> None:
    with pytest.raises(AccessDeniedError, match="refused the proposal creator: unknown organiz"):
        Gateway(ch, net.client("Org4")).submit("kv", "put", "k", "v")
    assert ch.orderer.pending == 0


def test_duplicate_txid_in_the_same_block_and_later(net: Network, ch: Channel) -> None:
    gw = Gateway(ch, net.client("Org1"))
    tx = gw.endorse(gw.propose("kv", "put", "k", "v"))
    first, again = tx.submit(), tx.submit()
    assert (first.status().code, again.status().code) == (V.VALID, V.DUPLICATE_TXID)
    assert first.status().block_number == again.status().block_number
    assert tx.submit().status().code is V.DUPLICATE_TXID  # replayed in a later block
    replayed = SignedProposal(tx.envelope.header)  # the same header, signed again
    replayed = SignedProposal(tx.envelope.header, signature=gw.identity.sign(
        replayed.signed_bytes()))
    with pytest.raises(EndorsementError, match="already used"):  # peers refuse to re-endorse
        ch.peers[0].endorse(replayed)


def test_disagreeing_endorsements_are_rejected_at_the_client(net: Network, ch: Channel) -> None:
    counter = itertools.count()
    ch.install_chaincode("clock", {"tick": lambda stub: stub.put_state("t", str(next(counter)))})
    height = ch.height
    with pytest.raises(EndorsementError, match="disagree"):
        Gateway(ch, net.client("Org1")).submit("clock", "tick")
    assert ch.orderer.pending == 0 and ch.height == height


def test_chaincode_errors(net: Network, ch: Channel) -> None:
    gw = Gateway(ch, net.client("Org1"))
    with pytest.raises(ChaincodeError, match="kv.fail failed on peer peer0.Org1: ValueError: no "):
        gw.submit("kv", "fail")
    with pytest.raises(ChaincodeError, match="no function 'nope'"):
        gw.evaluate("kv", "nope")
    with pytest.raises(ChaincodeError, match="not defined"):
        gw.evaluate("other", "get", "k")
    with pytest.raises(TypeError, match="str or bytes"):
        gw.submit("kv", "put", "k", 3)  # type: ignore[arg-type]
    assert ch.orderer.pending == 0


def test_redefinition_invalidates_txs_endorsed_under_the_old_one(net: Network,
                                                                 ch: Channel) -> None:
    gw = Gateway(ch, net.client("Org1"))
    height = ch.height
    assert ch.install_chaincode("kv", KV).sequence == 1 and ch.height == height  # identical
    stale = gw.endorse(gw.propose("kv", "put", "k", "v"))
    definition = ch.install_chaincode("kv", KV, endorsement_policy="OR('Org1.peer')")
    assert definition.sequence == 2 and ch.height == height + 1
    assert stale.submit().status().code is V.INVALID_CHAINCODE
    result = gw.submit("kv", "put", "k", "v")
    assert result.valid and len(ch.block(result.block_number).transactions[0].endorsements) == 1


def test_orderer_cuts_blocks_by_count(net: Network) -> None:
    ch = make_channel(net, batch_size=3)
    gw = Gateway(ch, net.client("Org1"))
    commits = [gw.submit_async("kv", "put", f"k{i}", "v") for i in range(7)]
    assert [c.done for c in commits] == [True] * 6 + [False]
    assert len({c.status(wait=False).block_number for c in commits[:6]}) == 2
    assert commits[6].status(wait=False) is None
    assert ch.flush().codes == (V.VALID,)
    assert ch.flush() is None


# --- determinism and durability -----------------------------------------------------------------
def _scenario(seed: int, path: Path | None = None) -> list[str]:
    net = Network.create(ORGS, seed=seed, path=path)
    ch = make_channel(net, nonce=f"scenario-{seed}".encode())
    gw = Gateway(ch, net.client("Org2"))
    gw.submit("kv", "put", "a", "1")
    gw.submit_async("kv", "incr", "a"), gw.submit_async("kv", "incr", "a")
    ch.flush()
    hashes = [ch.block(n).hash for n in range(ch.height)]
    net.close()
    return hashes


def test_same_seed_same_block_hashes(tmp_path: Path) -> None:
    first = _scenario(5)
    assert first == _scenario(5) == _scenario(5, tmp_path)
    assert _scenario(6) != first


def test_reopen_resumes_from_the_files(tmp_path: Path) -> None:
    net = Network.create(ORGS, seed=3, path=tmp_path)
    ch = make_channel(net)
    gw = Gateway(ch, net.client("Org1"))
    old = gw.endorse(gw.propose("kv", "put", "a", "1"))
    first = old.submit().status()
    height = ch.height
    net.close()

    net = Network.create(ORGS, seed=3, path=tmp_path)
    with pytest.raises(ConfigError, match="different config"):
        net.create_channel("ch", ORGS, "OR('Org1.peer')")
    ch = make_channel(net)
    assert ch.height == height
    gw = Gateway(ch, net.client("Org1"))
    assert gw.evaluate("kv", "get", "a") == b"1"
    assert used_id(first.tx_id) in ch.peers[0].tx_ids
    assert ch.broadcast(old.envelope).status().code is V.DUPLICATE_TXID  # type: ignore[union-attr]
    assert gw.submit("kv", "incr", "a").valid
    net.close()
    for org in ORGS:
        assert verify_channel_file(tmp_path / "ch" / f"peer0.{org}.db").ok


def test_a_peer_that_missed_a_block_catches_up_on_reopen(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    net = Network.create(ORGS, seed=3, path=tmp_path)
    ch = make_channel(net)
    gw = Gateway(ch, net.client("Org1"))
    gw.submit("kv", "put", "a", "1")
    lagging = ch.peers[2]

    def crash(block):
        raise KeyboardInterrupt("killed while delivering")

    monkeypatch.setattr(lagging, "commit", crash)
    with pytest.raises(KeyboardInterrupt):
        gw.submit("kv", "put", "a", "2")
    assert lagging.height == ch.peers[0].height - 1
    net.close()

    net = Network.create(ORGS, seed=3, path=tmp_path)
    ch = make_channel(net)
    assert len({p.height for p in ch.peers}) == 1
    assert Gateway(ch, net.client("Org3")).evaluate("kv", "get", "a") == b"2"
    net.close()
    assert verify_channel_file(tmp_path / "ch" / "peer0.Org3.db").ok


@pytest.mark.parametrize("kwargs, message", [
    ({"orgs": ["org_1"]}, "org names must be MSP IDs"),
    ({"orgs": ["Org1", "Org1"]}, "distinct"),
    ({"orgs": ["OrdererOrg"]}, "distinct and not 'OrdererOrg'"),
    ({"orgs": []}, "at least one"),
    ({"orgs": ["Org1"], "seed": 1.5}, "seed must be an int or bytes"),
    ({"orgs": ["Org1"], "peers_per_org": 0}, "peers_per_org"),
])
def test_network_config_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Network.create(**{"seed": 1, **kwargs})


def test_channel_config_errors(net: Network) -> None:
    with pytest.raises(ConfigError, match=r"members \['Org9'\] are not organizations"):
        net.create_channel("ch", ["Org1", "Org9"], "OR('Org1.peer')")
    with pytest.raises(ConfigError, match="channel name"):
        net.create_channel("Bad_Name", ["Org1"], "OR('Org1.peer')")
    with pytest.raises(ConfigError, match="batch_size"):
        net.create_channel("ch", ["Org1"], "OR('Org1.peer')", batch_size=0)
    ch = make_channel(net)
    with pytest.raises(ConfigError, match="already open"):
        net.create_channel("ch", ORGS, POLICY)
    with pytest.raises(ConfigError, match="functions must be a non-empty mapping"):
        ch.install_chaincode("cc", {})


def test_two_peers_per_org_and_distinct_peer_principals() -> None:
    net = Network.create(["Org1", "Org2"], seed=2, peers_per_org=2)
    ch = net.create_channel("ch", ["Org1", "Org2"], "AND('Org1.peer', 'Org1.peer')")
    ch.install_chaincode("kv", KV)
    gw = Gateway(ch, net.client("Org2"))
    result = gw.submit("kv", "put", "k", "v")  # the plan needs both Org1 peers
    assert result.valid
    endorsers = {e.endorser for e in ch.block(result.block_number).transactions[0].endorsements}
    assert endorsers == {p.cert_pem for p in net.peer_identities("Org1")}
    assert gw.submit("kv", "put", "k", "w", endorsers=["peer0.Org1"]).code is \
        V.ENDORSEMENT_POLICY_FAILURE
    assert [p.state.get("kv", "k")[0] for p in ch.peers] == [b"v"] * 4


def test_block_and_state_updates_commit_atomically(tmp_path: Path) -> None:
    net = Network.create(ORGS, seed=3, path=tmp_path)
    ch = make_channel(net)
    gw = Gateway(ch, net.client("Org1"))
    gw.submit("kv", "put", "a", "1")
    peer = ch.peers[0]
    height = peer.height
    peer.store.conn.execute("CREATE TEMP TRIGGER full BEFORE INSERT ON main.state "
                            "BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    commit = gw.submit_async("kv", "put", "a", "2")
    with pytest.raises(sqlite3.DatabaseError, match="disk full"):
        ch.flush()
    assert peer.height == peer.store.height() == height  # no block without its state
    assert peer.state.get("kv", "a")[0] == b"1"
    assert not commit.done and ch.height == height + 1  # the orderer keeps the block
    net.close()
    net = Network.create(ORGS, seed=3, path=tmp_path)  # and delivers it on reopen
    ch = make_channel(net)
    assert ch.height == height + 1 and {p.height for p in ch.peers} == {height + 1}
    assert Gateway(ch, net.client("Org2")).submit("kv", "incr", "a").valid
    assert Gateway(ch, net.client("Org2")).evaluate("kv", "get", "a") == b"3"
    net.close()
    assert verify_channel_file(tmp_path / "ch" / "peer0.Org1.db").ok
