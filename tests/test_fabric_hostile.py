"""Hostile bytes on a channel: refused at the orderer, or coded in a block, never a crash.

Whatever a client broadcasts, and whatever a compromised orderer puts in a block it signs, every
peer answers with a validation code (or the orderer with MalformedError), every other client's
transaction in the same block commits as it would have, and the channel keeps working. Channel
ids: the same consortium and seed make two channels of one name, yet a transaction of one is
refused by the other.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chains.fabric import (
    AccessDeniedError,
    Channel,
    FabricError,
    Gateway,
    MalformedError,
    Network,
    ValidationCode,
    verify_channel_file,
)
from chains.fabric.block import Block
from chains.fabric.transaction import Envelope, SignedProposal

V = ValidationCode
ORGS = ("Org1", "Org2")
POLICY = "OR('Org1.peer', 'Org2.peer')"


def _put(stub, key, value):
    stub.put_state(key, value)


def open_channel(path: Path | None, seed: int = 4, nonce: bytes = b"hostile-tests") -> tuple[
        Network, Channel]:
    net = Network.create(ORGS, seed=seed, path=path)
    ch = net.create_channel("ch", ORGS, POLICY, nonce=nonce)
    ch.install_chaincode("kv", {"put": _put})
    return net, ch


def endorsed(ch: Channel, net: Network, org: str, key: str) -> Envelope:
    gw = Gateway(ch, net.client(org))
    return gw.endorse(gw.propose("kv", "put", key, "v")).envelope


def mutate(raw: bytes, change) -> bytes:
    data = json.loads(raw)
    change(data)
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _header(**fields):
    return lambda d: d["payload"]["header"].update(fields)


def _rwset(**fields):
    return lambda d: d["payload"]["body"]["rwset"].update(fields)


HOSTILE = {  # name -> raw envelope bytes, from a valid envelope's bytes
    "non-ascii-creator": lambda raw: mutate(raw, lambda d: d["payload"]["header"].update(
        creator="é" + d["payload"]["header"]["creator"])),
    "non-utf8": lambda raw: raw.replace(b'"kv"', b'"k\xffv"', 1),
    "header-is-a-list": lambda raw: mutate(raw, lambda d: d["payload"].update(header=[1, 2])),
    "timestamp-float": lambda raw: mutate(raw, _header(timestamp=1.5)),
    "timestamp-text": lambda raw: mutate(raw, _header(timestamp="now")),
    "huge-timestamp": lambda raw: raw.replace(b'"timestamp":', b'"timestamp":' + b"9" * 5000
                                              + b",\"x\":", 1),
    "args-dict": lambda raw: mutate(raw, _header(args={"a": 1})),
    "args-int": lambda raw: mutate(raw, _header(args=[1])),
    "bad-hex-arg": lambda raw: mutate(raw, _header(args=[{"hex": "zz"}])),
    "lone-surrogate": lambda raw: raw.replace(b'"fn":"put"', b'"fn":"\\ud800"', 1),
    "nan": lambda raw: raw.replace(b'"status":200', b'"status":NaN', 1),
    "deep-rwset": lambda raw: raw.replace(b'"reads":[', b'"reads":' + b"[" * 100_000, 1),
    "oversized": lambda raw: mutate(raw, _header(args=["x" * (5 << 20)])),
    "spaces": lambda raw: raw.replace(b'","', b'", "', 1),
    "duplicate-key": lambda raw: raw.replace(b'{"endorsements":', b'{"signature":"00",'
                                             b'"endorsements":', 1),
    "rwset-entry-size": lambda raw: mutate(raw, _rwset(writes=[["k"]])),
    "negative-version": lambda raw: mutate(raw, _rwset(reads=[["k", [-1, 0]]])),
    "private-op": lambda raw: mutate(raw, _rwset(collections={"c": {
        "reads": [], "writes": [["ab" * 32, "steal", None]]}})),
    "endorser-int": lambda raw: mutate(raw, lambda d: d["endorsements"][0].update(endorser=5)),
    "endorser-non-ascii": lambda raw: mutate(raw, lambda d: d["endorsements"][0].update(
        endorser="-----BEGIN CERTIFICATE-----é")),
    "signature-odd": lambda raw: mutate(raw, lambda d: d.update(signature="abc")),
    "signature-upper": lambda raw: mutate(raw, lambda d: d.update(signature=d["signature"]
                                                                  .upper())),
    "unknown-type": lambda raw: mutate(raw, _header(type="admin_tx")),
    "extra-field": lambda raw: mutate(raw, _header(extra=1)),
    "empty": lambda raw: b"",
    "null": lambda raw: b"null",
    "chain-of-another-channel": lambda raw: mutate(raw, _header(chain="ab" * 32)),
    "channel-name-non-ascii": lambda raw: mutate(raw, _header(channel="çh")),
}


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    """One channel on disk, fed every hostile envelope in a block of its own between two
    honest ones, as a compromised orderer would sign it."""
    folder = tmp_path_factory.mktemp("hostile")
    net, ch = open_channel(folder)
    outcomes = {}
    for index, (name, make) in enumerate(HOSTILE.items()):
        honest_a = endorsed(ch, net, "Org1", f"a{index}")
        honest_b = endorsed(ch, net, "Org2", f"b{index}")
        bad = make(honest_a.raw if name != "chain-of-another-channel" else
                   endorsed(ch, net, "Org1", f"c{index}").raw)
        block = Block.cut(ch.height, ch.orderer.store.last_hash, ch.orderer.store.last_time,
                          ch.config.chain_id, (honest_a.raw, bad, honest_b.raw), net.orderer)
        ch.orderer.store.append(block)  # the orderer signed and stored it...
        ch.flush()                      # ...and the channel delivers it to every peer
        outcomes[name] = [code for code in ch.peers[0].store.conn.execute(
            "SELECT code FROM transactions WHERE block = ? ORDER BY idx", (block.number,))]
        for peer in ch.peers[1:]:
            assert [c for (c,) in peer.store.conn.execute(
                "SELECT code FROM transactions WHERE block = ? ORDER BY idx",
                (block.number,))] == [c for (c,) in outcomes[name]]
    after = Gateway(ch, net.client("Org2")).submit("kv", "put", "after", "ok")
    net.close()
    return folder, outcomes, after


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_envelope_in_a_block_is_coded_and_stalls_no_one(hostile_run, name):
    _, outcomes, _ = hostile_run
    assert [c for (c,) in outcomes[name]] == ["VALID", "BAD_PAYLOAD", "VALID"]


def test_the_channel_keeps_working_and_its_files_verify(hostile_run):
    folder, _, after = hostile_run
    assert after.valid
    for peer in ("peer0.Org1", "peer0.Org2", "orderer"):
        report = verify_channel_file(folder / "ch" / f"{peer}.db")
        assert report.ok, report.summary()
    net, ch = open_channel(folder)  # and reopens from its files
    assert Gateway(ch, net.client("Org1")).submit("kv", "put", "again", "ok").valid
    net.close()


@pytest.mark.parametrize("name", [n for n in HOSTILE if n not in ("non-utf8", "empty", "null",
                                                                   "nan", "deep-rwset",
                                                                   "huge-timestamp",
                                                                   "lone-surrogate",
                                                                   "duplicate-key", "spaces",
                                                                   "oversized")])
def test_the_orderer_refuses_hostile_envelopes_and_queues_nothing(name):
    net, ch = open_channel(None)
    honest = Gateway(ch, net.client("Org2")).submit_async("kv", "put", "x", "1")
    env = endorsed(ch, net, "Org1", "k")
    data = json.loads(HOSTILE[name](env.raw))
    payload = data.get("payload") if isinstance(data, dict) else None
    header = payload.get("header") if isinstance(payload, dict) else data
    body = payload.get("body") if isinstance(payload, dict) else {}
    hostile = Envelope(header, body, env.endorsements, env.signature)
    if name.startswith(("endorser", "signature")):
        hostile = Envelope(env.header, env.body, (type(env.endorsements[0])(
            data["endorsements"][0]["endorser"], b"x"),), b"sig")
    pending = ch.orderer.pending
    with pytest.raises((MalformedError, FabricError)):
        ch.broadcast(hostile)
    assert ch.orderer.pending == pending
    assert honest.status().code is V.VALID  # another client's transaction goes through
    assert Gateway(ch, net.client("Org1")).submit("kv", "put", "k", "2").valid


def test_hostile_proposals_are_refused_by_endorsers():
    net, ch = open_channel(None)
    proposal = Gateway(ch, net.client("Org1")).propose("kv", "put", "k", "v")
    bad_headers = [{**proposal.header, "creator": "é" + proposal.header["creator"]},
                   {**proposal.header, "timestamp": 10**30}, {**proposal.header, "args": {}},
                   [], {**proposal.header, "chain": "ab" * 32}]
    for header in bad_headers:
        with pytest.raises((AccessDeniedError, FabricError)):
            ch.peers[0].endorse(SignedProposal(header, {}, b"", bytes(64)))  # type: ignore[arg-type]
    with pytest.raises(FabricError):
        ch.peers[0].endorse(SignedProposal(proposal.header, {"t": "text"}, b"", bytes(64)))
    with pytest.raises(TypeError):
        ch.peers[0].endorse("proposal")  # type: ignore[arg-type]
    assert Gateway(ch, net.client("Org1")).submit("kv", "put", "k", "v").valid


def test_one_seed_two_channels_of_one_name_do_not_share_transactions():
    net_a, ch_a = open_channel(None, seed=4, nonce=b"channel-a")
    net_b, ch_b = open_channel(None, seed=4, nonce=b"channel-b")
    assert ch_a.config.chain_id != ch_b.config.chain_id
    assert net_a.client("Org1").cert_pem == net_b.client("Org1").cert_pem  # same identities
    env = endorsed(ch_a, net_a, "Org1", "k")
    with pytest.raises(FabricError, match="this orderer serves"):
        ch_b.broadcast(env)
    block = Block.cut(ch_b.height, ch_b.orderer.store.last_hash, ch_b.orderer.store.last_time,
                      ch_b.config.chain_id, (env.raw,), net_b.orderer)
    ch_b.orderer.store.append(block)
    ch_b.flush()
    assert ch_b.peers[0].store.conn.execute("SELECT code FROM transactions WHERE block = ?",
                                            (block.number,)).fetchone()[0] == "BAD_PAYLOAD"
    proposal = Gateway(ch_a, net_a.client("Org1")).propose("kv", "put", "k", "v")
    with pytest.raises(AccessDeniedError, match="chain"):
        ch_b.peers[0].endorse(proposal)
    foreign = Block.cut(ch_b.height, ch_b.orderer.store.last_hash,
                        ch_b.orderer.store.last_time, ch_a.config.chain_id, (), net_b.orderer)  # a block of the other chain is not delivered
    with pytest.raises(FabricError):
        ch_b.peers[0].commit(foreign)
    same = [open_channel(None, seed=4, nonce=b"given-nonce") for _ in range(2)]
    assert same[0][1].config.chain_id == same[1][1].config.chain_id  # caller's nonce: same


def test_a_block_that_goes_back_in_time_or_is_unsigned_is_not_committed():
    net, ch = open_channel(None)
    Gateway(ch, net.client("Org1")).submit("kv", "put", "k", "v")
    peer = ch.peers[0]
    store, height = ch.orderer.store, peer.height
    past = Block.cut(peer.height, peer.last_hash, store.last_time - 1 if store.last_time else 0,
                     ch.config.chain_id, (), net.orderer)
    if store.last_time:
        with pytest.raises(FabricError, match="back in time"):
            peer.commit(past)
    unsigned = Block(past.header, (), net.orderer.cert_pem, bytes(64))
    with pytest.raises(FabricError, match="orderer signature"):
        peer.commit(Block.cut(peer.height, peer.last_hash, store.last_time, ch.config.chain_id,
                              (), net.client("Org1")))
    with pytest.raises(FabricError):
        peer.commit(unsigned)
    assert peer.height == height  # the peer is where it was
    assert Gateway(ch, net.client("Org1")).submit("kv", "put", "k", "w").valid


def test_certificates_are_judged_at_the_block_time():
    """Endorsed while valid, expired when the orderer cuts the block: BAD_SIGNATURE on every
    peer (and at endorsement, a proposal whose own time is outside the window is refused)."""
    now = [10]
    net = Network.create(ORGS, seed=4, clock=lambda: now[0])
    ch = net.create_channel("ch", ORGS, POLICY, nonce=b"time-tests")
    ch.install_chaincode("kv", {"put": _put})
    temp = net.ca("Org1").issue("temp", "client", valid_from=10, valid_until=20)
    gw = Gateway(ch, temp)
    commit = gw.submit_async("kv", "put", "k", "v")  # proposal at time 10: endorsed
    now[0] = 21
    result = commit.status()
    assert result is not None and result.code is V.BAD_SIGNATURE
    with pytest.raises(AccessDeniedError, match="expired"):
        gw.submit("kv", "put", "k", "w")  # proposal at time 21
    now[0] = 5
    early = Gateway(ch, net.ca("Org2").issue("early", "client", valid_from=30))
    with pytest.raises(AccessDeniedError, match="not yet valid"):
        early.submit("kv", "put", "k", "x")
    now[0] = 30
    assert early.submit("kv", "put", "k", "x").valid
