"""The env's ledgers: a round's transactions verify, stay private where they should, and are
reproducible from the seed."""

from __future__ import annotations

import hashlib

import pytest

from chains.canonical import canonical_json
from chains.fabric import ChaincodeError
from chains.verify import verify_path
from fedenv.ledgers import (
    CHAINCODE,
    CHANNEL,
    Ledgers,
    collection_name,
    endorsement_policy,
    round_key,
)

ORGS = ("northbank", "citycare", "skyway")


def play_round(
    ledgers: Ledgers, episode: int, index: int, *, wrong_digest_for: str = "", pool: float = 5.0
):
    """One round as the env plays it, with every org taking part; returns the raw updates."""
    ledgers.tick()
    updates = {org: f"{org}/{episode}/{index}".encode() * 50 for org in ORGS}
    rows = {}
    for org, data in updates.items():
        digest = hashlib.sha256(data).hexdigest()
        ledgers.post_update(org, episode, index, digest)
        ledgers.store_private_update(org, episode, index, data)
        rows[org] = {
            "digest": "0" * 64 if org == wrong_digest_for else digest,
            "contribution": 0.25,
            "accepted": True,
            "payout": 1.5,
        }
    ledgers.record_scoring(episode, index, rows, pool=pool)
    ledgers.anchor_global(episode, index, "ab" * 32, {"participants": sorted(ORGS)})
    ledgers.seal()
    return updates


def block_hashes(ledgers: Ledgers) -> list:
    public = [ledgers.public.block(h).hash for h in range(ledgers.public.height + 1)]
    channel = [ledgers.channel.block(n).hash for n in range(ledgers.channel.height)]
    return public + channel


def test_a_round_verifies_offline(tmp_path):
    ledgers = Ledgers(tmp_path, ORGS, seed=1)
    episode, _ = ledgers.start_episode("cd" * 32)
    play_round(ledgers, episode, 0)
    kinds = [tx.kind for _, tx in ledgers.public.transactions()]
    assert kinds == ["msp-config", "anchor"] + ["update-hash"] * 3 + [
        "global-model-hash",
        "round-summary",
    ]
    senders = {tx.payload["org"]: tx.sender for _, tx in ledgers.public.transactions("update-hash")}
    assert senders == {org: ledgers.clients[org].id for org in ORGS}  # each org signs its own
    ledgers.close()
    reports = verify_path(tmp_path)
    assert [r.kind for r in reports].count("fabric-channel") == len(ORGS)
    assert all(r.ok for r in reports), [r.summary() for r in reports]


def test_raw_updates_stay_on_their_owners_peer(tmp_path):
    ledgers = Ledgers(tmp_path, ORGS, seed=1)
    updates = play_round(ledgers, 0, 0)
    key = round_key(0, 0)
    for peer in ledgers.channel.peers:
        for org in ORGS:
            record = peer.private_record(CHAINCODE, collection_name(org), key)
            if peer.msp_id == org:
                assert record is not None and record.value == updates[org]
            else:
                assert record is None
    ledgers.close()
    for org, data in updates.items():  # neither the blocks nor other peers' files hold the bytes
        for db in (tmp_path / "fabric" / CHANNEL).glob("*.db"):
            if db.stem != f"peer0.{org}":
                content = db.read_bytes()
                assert data not in content and data.hex().encode() not in content, db.name


def test_scoring_is_endorsed_by_a_majority(tmp_path):
    ledgers = Ledgers(tmp_path, ORGS, seed=1)
    play_round(ledgers, 0, 0)
    block = ledgers.channel.block(ledgers.channel.height - 1)
    (scoring,) = block.transactions
    assert scoring.header["fn"] == "record"
    assert len(scoring.endorsements) >= 2
    assert (
        endorsement_policy(ORGS, "majority")
        == "OutOf(2, 'northbank.peer', 'citycare.peer', 'skyway.peer')"
    )
    assert endorsement_policy(ORGS, "all").startswith("OutOf(3, ")


def test_the_scoring_record_is_stored_as_canonical_json(tmp_path):
    ledgers = Ledgers(tmp_path, ORGS, seed=1)
    play_round(ledgers, 0, 0)
    stored, _version = ledgers.channel.peers[0].state.get(CHAINCODE, f"scores/{round_key(0, 0)}")
    row = {"accepted": True, "contribution": 0.25, "digest": None, "payout": 1.5}
    participants = {
        org: {**row, "digest": hashlib.sha256(f"{org}/0/0".encode() * 50).hexdigest()}
        for org in ORGS
    }
    assert stored == canonical_json({"pool": 5.0, "participants": participants})
    assert stored.startswith(b'{"participants":{"citycare":{"accepted":true,"contribution":0.25,')


def test_scoring_a_digest_the_owner_did_not_store_is_refused(tmp_path):
    ledgers = Ledgers(tmp_path, ORGS, seed=1)
    height = ledgers.public.height
    with pytest.raises(ChaincodeError, match="citycare: scored digest 000000000000 is not"):
        play_round(ledgers, 0, 0, wrong_digest_for="citycare")
    assert ledgers.public.height == height  # nothing anchored, nothing scored
    assert all(
        peer.state.get(CHAINCODE, f"scores/{round_key(0, 0)}") is None
        for peer in ledgers.channel.peers
    )


def test_payouts_beyond_the_pool_are_refused(tmp_path):
    ledgers = Ledgers(tmp_path, ORGS, seed=1)
    with pytest.raises(ChaincodeError, match="payouts 4.5 exceed the round's pool 4"):
        play_round(ledgers, 0, 0, pool=4.0)


def test_same_seed_same_bytes(tmp_path):
    runs = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        ledgers = Ledgers(tmp_path / name, ORGS, seed=seed)
        ledgers.start_episode("cd" * 32)
        play_round(ledgers, 0, 0)
        runs.append(block_hashes(ledgers))
        ledgers.close()
    assert runs[0] == runs[1]
    assert runs[0][1:] != runs[2][1:]


def test_reopening_a_folder_continues_its_ledgers(tmp_path):
    ledgers = Ledgers(tmp_path, ORGS, seed=2)
    ledgers.start_episode("cd" * 32)
    play_round(ledgers, 0, 0)
    height, channel_height = ledgers.public.height, ledgers.channel.height
    ledgers.close()
    again = Ledgers(tmp_path, ORGS, seed=2)
    assert (again.episodes, again.public.height, again.channel.height) == (
        1,
        height,
        channel_height,
    )
    episode, _ = again.start_episode("cd" * 32)
    play_round(again, episode, 0)
    again.close()
    assert episode == 1
    assert all(r.ok for r in verify_path(tmp_path))
    assert CHANNEL == "consortium"


def _stored_rounds(ledgers: Ledgers, org: str) -> set[str]:
    peer = next(p for p in ledgers.channel.peers if p.msp_id == org)
    return {
        key
        for key in (round_key(e, r) for e in range(4) for r in range(2))
        if peer.private_record(CHAINCODE, collection_name(org), key) is not None
    }


def test_raw_updates_live_for_the_rest_of_their_episode(tmp_path):
    """blockToLive defaults to 2 x max_rounds blocks: a raw update is there for its whole
    episode (what unlearning purges), and gone from every file during the next one."""
    ledgers = Ledgers(tmp_path, ORGS, seed=1, max_rounds=2)
    updates = {}
    for episode in range(3):
        ledgers.start_episode("cd" * 32)
        for index in range(2):
            updates[(episode, index)] = play_round(ledgers, episode, index)
            if index == 0:
                assert round_key(episode, 0) in _stored_rounds(ledgers, "skyway")
        assert _stored_rounds(ledgers, "skyway") <= {round_key(e, r) for e in (episode - 1, episode)
                                                     for r in range(2)}
        assert {round_key(episode, 0), round_key(episode, 1)} <= _stored_rounds(ledgers, "skyway")
    ledgers.close()
    content = (tmp_path / "fabric" / CHANNEL / "peer0.skyway.db").read_bytes()
    assert updates[(0, 0)]["skyway"] not in content  # expired: scrubbed from the file
    assert updates[(2, 1)]["skyway"] in content
    assert all(r.ok for r in verify_path(tmp_path))


def test_block_to_live_zero_keeps_updates(tmp_path):
    ledgers = Ledgers(tmp_path, ORGS, seed=1, max_rounds=1, block_to_live=0)
    for episode in range(3):
        ledgers.start_episode("cd" * 32)
        play_round(ledgers, episode, 0)
    assert _stored_rounds(ledgers, "northbank") == {round_key(e, 0) for e in range(3)}
    ledgers.close()


def test_pruning_is_a_sealed_signed_record(tmp_path):
    ledgers = Ledgers(tmp_path, ORGS, seed=1)
    height = ledgers.public.height
    ledgers.record_pruning(["adapters/e00001/", "adapters/e00000/"])
    assert ledgers.public.height == height + 1
    (_, tx), = ledgers.public.transactions("anchor")
    assert tx.payload["event"] == "artifacts-pruned"
    assert tx.payload["prefixes"] == ["adapters/e00000/", "adapters/e00001/"]
    assert tx.sender == ledgers.network.orderer.id
    ledgers.close()
