"""The env's ledgers: a round's transactions verify, stay private where they should, and are
reproducible from the seed; with several channels, each computation goes to its channel and
nobody outside a channel or collection can read it."""

from __future__ import annotations

import hashlib
import json
import sqlite3

import pytest

from chains.__main__ import main
from chains.canonical import canonical_json
from chains.fabric import AccessDeniedError, ChaincodeError, Gateway, PrivateDataAccessError
from chains.verify import verify_path
from fedenv.fedorg import OBS_FIELDS
from fedenv.ledgers import (
    BENCHMARK,
    CHAINCODE,
    CHANNEL,
    ETHEREUM_FILE,
    SCORES,
    Ledgers,
    collection_name,
    endorsement_policy,
    round_key,
)
from fedenv.ledgers.chaincode import FUNCTIONS
from fedenv.scenario import LedgerSettings, load_scenario

ORGS = ("northbank", "citycare", "skyway")


def play_round(
    ledgers: Ledgers,
    episode: int,
    index: int,
    *,
    wrong_digest_for: str = "",
    pool: float = 5.0,
    changes: dict | None = None,
    reputation_decay: float | None = None,
):
    """One round as the env plays it, with every org taking part; returns the raw updates.
    ``changes[org]`` updates that org's row of the scoring record."""
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
            "weight": 0.25,
            "reasons": [],
            **(changes or {}).get(org, {}),
        }
    ledgers.record_scoring(episode, index, rows, pool=pool, reputation_decay=reputation_decay)
    ledgers.anchor_global(episode, index, "ab" * 32, {"participants": sorted(ORGS)})
    ledgers.seal()
    return updates


def block_hashes(ledgers: Ledgers) -> list:
    public = [ledgers.public.ledger.block(h).hash for h in range(ledgers.public.height + 1)]
    channel = [ledgers.channel.block(n).hash for n in range(ledgers.channel.height)]
    return public + channel


def test_a_round_verifies_offline(tmp_path):
    ledgers = Ledgers(tmp_path, ORGS, seed=1)
    episode, _ = ledgers.start_episode("cd" * 32)
    play_round(ledgers, episode, 0)
    kinds = [tx.kind for _, tx in ledgers.public.ledger.transactions()]
    assert kinds == ["msp-config", "anchor"] + ["update-hash"] * 3 + ["round-summary"]
    ((_, summary),) = ledgers.public.ledger.transactions("round-summary")
    assert summary.payload["digest"] == "ab" * 32  # the global state's digest, in the summary
    senders = {
        tx.payload["org"]: tx.sender for _, tx in ledgers.public.ledger.transactions("update-hash")
    }
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
    row = {
        "accepted": True,
        "contribution": 0.25,
        "digest": None,
        "payout": 1.5,
        "weight": 0.25,
        "reasons": [],
    }
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


REJECTED = {"accepted": False, "payout": 0.0, "weight": 0.0, "reasons": ["krum: not kept"]}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"skyway": {**REJECTED, "reasons": []}}, "skyway: a rejection must name its reason"),
        ({"skyway": {**REJECTED, "weight": 0.25}}, "skyway: an accepted update has a share"),
        ({"skyway": {"weight": 0.0}}, "skyway: an accepted update has a share"),
        ({"skyway": {"weight": 1.5}}, r"skyway: share 1.5 is not in \[0, 1\]"),
        ({o: {"weight": 0.4} for o in ORGS}, "shares sum to more than 1"),
        ({"skyway": {"reasons": "krum"}}, "skyway: reasons must be a list of texts"),
    ],
)
def test_decisions_without_reasons_or_with_impossible_shares_are_refused(
    tmp_path, changes, message
):
    ledgers = Ledgers(tmp_path, ORGS, seed=1)
    with pytest.raises(ChaincodeError, match=message):
        play_round(ledgers, 0, 0, changes=changes)


def test_reputations_follow_the_decay_rule_from_what_the_channel_holds(tmp_path):
    ledgers = Ledgers(tmp_path, ORGS, seed=1)
    honest = {o: {"reputation": 1.0} for o in ORGS}
    rejected = {**honest, "skyway": {**REJECTED, "reputation": 0.5}}  # 0.5 * 1 + 0.5 * 0
    play_round(ledgers, 0, 0, changes=rejected, reputation_decay=0.5)
    again = {**honest, "skyway": {**REJECTED, "reputation": 0.25}}  # from the 0.5 held
    play_round(ledgers, 0, 1, changes=again, reputation_decay=0.5)
    forgiven = {**honest, "skyway": {"reputation": 0.25}}  # accepted: 0.5 * 0.25 + 0.5 = 0.625
    with pytest.raises(ChaincodeError, match=r"skyway: reputation 0.25 does not follow from 0.25"):
        play_round(ledgers, 0, 2, changes=forgiven, reputation_decay=0.5)
    with pytest.raises(ChaincodeError, match="reputation decay 0.7 is not the channel's 0.5"):
        play_round(ledgers, 0, 3, changes=honest, reputation_decay=0.7)
    play_round(ledgers, 1, 0, changes=honest, reputation_decay=0.5)  # a new episode starts at 1


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


def _page_sizes(folder) -> dict[str, int]:
    """Every SQLite file's page size, from its header (bytes 16-17; 1 means 65536)."""
    sizes = {}
    for file in sorted(folder.rglob("*.db")):
        raw = int.from_bytes(file.read_bytes()[16:18], "big")
        sizes[file.relative_to(folder).as_posix()] = 65536 if raw == 1 else raw
    return sizes


def test_new_ledger_files_get_large_pages_and_older_files_keep_theirs(tmp_path, monkeypatch):
    """Ledger files are created with `PAGE_SIZE` pages (whole channel blocks fill them: the
    growth figures depend on it); a file made with SQLite's default 4 KiB pages keeps them,
    reopens, continues and verifies."""
    import chains.sqlite_files

    fresh = tmp_path / "fresh"
    ledgers = Ledgers(fresh, ORGS, seed=2)
    ledgers.start_episode("cd" * 32)
    play_round(ledgers, 0, 0)
    ledgers.close()
    sizes = _page_sizes(fresh)
    assert {"public.db", "fabric/consortium/orderer.db"} <= set(sizes)
    assert len(sizes) == 2 + len(ORGS)  # the public ledger, the orderer, a peer per org
    assert set(sizes.values()) == {chains.sqlite_files.PAGE_SIZE} == {16384}

    older = tmp_path / "older"
    monkeypatch.setattr(chains.sqlite_files, "PAGE_SIZE", 4096)
    ledgers = Ledgers(older, ORGS, seed=2)
    ledgers.start_episode("cd" * 32)
    play_round(ledgers, 0, 0)
    ledgers.close()
    monkeypatch.undo()
    again = Ledgers(older, ORGS, seed=2)
    episode, _ = again.start_episode("cd" * 32)
    play_round(again, episode, 0)
    again.close()
    assert set(_page_sizes(older).values()) == {4096}
    assert all(r.ok for r in verify_path(older))
    # the page size is storage only: the same seed gives the same ledgers' hashes either way
    fresh_public = sqlite3.connect(fresh / "public.db")
    older_public = sqlite3.connect(older / "public.db")
    query = "SELECT hash FROM blocks ORDER BY height"
    try:
        first = fresh_public.execute(query).fetchall()
        assert first and older_public.execute(query).fetchall()[: len(first)] == first
    finally:
        fresh_public.close()
        older_public.close()


# --- several channels: the sub-consortia scenario ------------------------------------------------

SUB = load_scenario("subconsortia")
NORTH, CARE, SAFE, SKY = SUB.org_names  # northbank, citycare, safeguard, skyway
# Who may read each collection, written out from scenarios/subconsortia.toml (not computed by the
# code under test): the bank and the insurer share their raw updates, the clinic and the airline
# keep theirs to themselves, each channel's scores and benchmark are its members'.
READERS = {
    ("finance", "northbank-updates"): {NORTH, SAFE},
    ("finance", "safeguard-updates"): {NORTH, SAFE},
    ("finance", "scores"): {NORTH, SAFE},
    ("finance", "benchmark"): {NORTH, SAFE},
    ("care", "citycare-updates"): {CARE},
    ("care", "skyway-updates"): {SKY},
    ("care", "scores"): {CARE, SKY},
    ("care", "benchmark"): {CARE, SKY},
    ("federation", "scores"): {NORTH, CARE, SAFE, SKY},
}
# Each round's participants: all four (scored on "federation"), then each sub-consortium alone
# (scored on its own channel).
ROUNDS = ((NORTH, CARE, SAFE, SKY), (NORTH, SAFE), (CARE, SKY))


def play_sub_round(ledgers: Ledgers, index: int, participants) -> dict:
    """One round of ``participants`` as the env plays it; returns what went into each
    collection: {(channel, collection): (key, value)}."""
    ledgers.tick()
    key = round_key(0, index)
    written, rows = {}, {}
    for org in participants:
        data = f"raw update of {org} in round {index} ".encode() * 12  # < a page
        digest = hashlib.sha256(data).hexdigest()
        ledgers.post_update(org, 0, index, digest)
        ledgers.store_private_update(org, 0, index, data, participants=participants)
        rows[org] = {
            "digest": digest,
            "contribution": 0.1,
            "accepted": True,
            "payout": 1.0,
            "weight": round(1 / len(participants), 6),
            "reasons": [],
        }
        written[(ledgers.layout.updates_channel(org).name, collection_name(org))] = (key, data)
    ledgers.record_scoring(0, index, rows, pool=10.0)
    record = canonical_json({"participants": rows, "pool": 10.0})
    written[(ledgers.scoring_channel, SCORES)] = (key, record)
    own = {org: 1.5 + i for i, org in enumerate(SUB.org_names)}
    ledgers.record_benchmark(0, index, "ab" * 32, own, list(participants))
    for plan in ledgers.layout.benchmark_channels():
        scores = {m: own[m] for m in plan.members}
        written[(plan.name, BENCHMARK)] = (
            key,
            canonical_json({"model": "ab" * 32, "scores": scores}),
        )
    ledgers.anchor_global(0, index, "cd" * 32, {"participants": sorted(participants)})
    ledgers.seal()
    return written


def run_sub_rounds(folder) -> tuple[Ledgers, dict]:
    """The sub-consortia scenario's ledgers after ``ROUNDS``; (ledgers, written)."""
    ledgers = Ledgers.for_scenario(folder, SUB)
    ledgers.start_episode("cd" * 32)
    written = {}
    for index, participants in enumerate(ROUNDS):
        written.update(play_sub_round(ledgers, index, participants))
        assert ledgers.scoring_channel == ("federation", "finance", "care")[index]
    return ledgers, written


@pytest.fixture(scope="module")
def sub_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("subconsortia")
    ledgers, written = run_sub_rounds(folder)
    yield folder, ledgers, written
    ledgers.close()


def _read(stub, collection: str, key: str):
    return stub.get_private_data(collection, key)


def _attempt(gateway: Gateway, collection: str, key: str, peer: str):
    """The value read through ``peer``, or the error that refused the read."""
    try:
        return gateway.evaluate(CHAINCODE, "read", collection, key, peer=peer)
    except (AccessDeniedError, PrivateDataAccessError) as refused:
        return refused


def test_every_channel_and_collection_of_the_scenario_is_in_the_matrix(sub_run):
    _, ledgers, written = sub_run
    layout = {(p.name, c.name) for p in ledgers.layout.plans for c in p.collections}
    assert layout == set(READERS) == set(written)


def test_the_access_matrix_of_the_sub_consortia(sub_run):
    """Every organization x channel x collection x serving peer: a read it is entitled to (its
    organization is a member of the channel and of the collection, the serving peer holds the
    collection) returns what was written; every other read is refused."""
    _, ledgers, written = sub_run
    for plan in ledgers.layout.plans:  # a read function, added through the chaincode lifecycle
        ledgers.channels[plan.name].install_chaincode(
            CHAINCODE, {**{f: FUNCTIONS[f] for f in plan.functions}, "read": _read}
        )
    checked = {"granted": 0, "refused": 0}
    for org in SUB.org_names:
        client = ledgers.network.client(org)
        for (channel_name, collection), (key, value) in sorted(written.items()):
            channel = ledgers.channels[channel_name]
            readers = READERS[(channel_name, collection)]
            for peer in channel.peers:
                answer = _attempt(Gateway(channel, client), collection, key, peer.name)
                where = (org, channel_name, collection, peer.name)
                if org not in ledgers.layout[channel_name].members:
                    assert isinstance(answer, AccessDeniedError), where
                    assert "refused the proposal creator" in str(answer)
                elif org in readers and peer.msp_id in readers:
                    assert answer == value, where
                    checked["granted"] += 1
                    continue
                else:
                    assert isinstance(answer, PrivateDataAccessError), where
                checked["refused"] += 1
    # finance: 2 members x 4 collections x 2 peers granted, the 2 others refused there; care: the
    # owner through its own peer for each updates collection, 2 x 2 x 2 for scores and benchmark;
    # federation: 4 x 4
    assert checked == {"granted": 16 + (2 + 8) + 16, "refused": 16 + (2 * 7 + 8) + 0}


def test_organizations_outside_a_channel_hold_none_of_its_data(tmp_path):
    """On disk: an organization has a peer file only on its channels, and a collection's values
    are in the files of the peers that hold it and in no other file (no orderer's either)."""
    ledgers, written = run_sub_rounds(tmp_path)
    files = {p.relative_to(tmp_path).as_posix() for p in (tmp_path / "fabric").rglob("*.db")}
    expected = {f"fabric/{p.name}/peer0.{m}.db" for p in ledgers.layout.plans for m in p.members}
    expected |= {f"fabric/{p.name}/orderer.db" for p in ledgers.layout.plans}
    assert files == expected
    ledgers.close()
    for (channel_name, collection), (_, value) in written.items():
        if collection == SCORES:
            continue  # the scoring record is also world state of its channel (every member's)
        for db in (tmp_path / "fabric").rglob("*.db"):
            org = db.stem.removeprefix("peer0.")
            holder = db.parent.name == channel_name and org in READERS[(channel_name, collection)]
            assert (value in db.read_bytes()) == holder, (db, collection)


def test_attested_digests_and_fees_follow_the_routing(tmp_path):
    ledgers = Ledgers.for_scenario(tmp_path, SUB)
    ledgers.start_episode("cd" * 32)
    ledgers.tick()
    data = {org: org.encode() * 100 for org in SUB.org_names}
    tx_ids = {
        org: ledgers.store_private_update(org, 0, 0, data[org], participants=SUB.org_names)
        for org in SUB.org_names
    }
    assert all(len(ids) == 2 for ids in tx_ids.values())  # store at home + attest on federation
    rows = {
        o: {
            "digest": hashlib.sha256(d).hexdigest(),
            "contribution": 0.0,
            "accepted": True,
            "payout": 0.0,
            "weight": round(1 / len(data), 6),
            "reasons": [],
        }
        for o, d in data.items()
    }
    ledgers.record_scoring(0, 0, rows, pool=1.0)
    federation = ledgers.layout["federation"]
    scoring_block = ledgers.channels["federation"].block(ledgers.channels["federation"].height - 1)
    (record,) = scoring_block.transactions
    endorsements = len(record.endorsements)
    assert endorsements == 3  # OutOf(majority) of four peers
    # store on the home channel (costs.ledger_fee_per_tx, one endorsement at 0), attest on the
    # federation channel (its 0.02 + 0.005 per endorsement), a quarter of the scoring record's
    # endorsements
    share = federation.endorsement_fee * endorsements / 4
    for org in SUB.org_names:
        assert ledgers.round_fees[org] == pytest.approx(0.01 + 0.02 + 0.005 + share)
    ledgers.close()


def test_a_round_of_a_sub_consortium_never_reaches_the_others(tmp_path):
    """The clinic and the airline alone: their updates and scores stay on "care"; "finance" only
    records the new global model's score on its own members' domains (its private benchmark)."""
    ledgers = Ledgers.for_scenario(tmp_path, SUB)
    ledgers.start_episode("cd" * 32)
    before = {name: ch.height for name, ch in ledgers.channels.items()}
    play_sub_round(ledgers, 0, (CARE, SKY))
    grown = {name: ch.height - before[name] for name, ch in ledgers.channels.items()}
    assert grown == {"finance": 1, "care": 3, "federation": 0}  # care: updates, scores, benchmark
    (evaluation,) = ledgers.channels["finance"].block(before["finance"]).transactions
    assert (evaluation.header["fn"], evaluation.header["args"]) == ("benchmark", [round_key(0, 0)])
    ledgers.close()
    assert all(r.ok for r in verify_path(tmp_path)), [r.summary() for r in verify_path(tmp_path)]


# --- the public chain by configuration ----------------------------------------------------------


def public_records(ledgers: Ledgers) -> list:
    """(kind, payload, sender) of every record on the run's public chain, in order."""
    public = ledgers.public
    if public.kind == "sqlite":
        return [
            (tx.kind, tx.payload, tx.sender)
            for _, tx in public.ledger.transactions()
            if tx.kind != "msp-config"
        ]
    conn = sqlite3.connect(public.log.path)
    rows = conn.execute("SELECT kind, payload, sender FROM anchors ORDER BY seq").fetchall()
    conn.close()
    return [(kind, json.loads(payload), sender) for kind, payload, sender in rows]


@pytest.mark.eth
def test_the_same_anchors_on_either_public_chain(tmp_path):
    pytest.importorskip("eth_tester")
    records = {}
    for public in ("sqlite", "ethereum"):
        ledgers = Ledgers(tmp_path / public, ORGS, seed=1, ledger=LedgerSettings(public=public))
        ledgers.start_episode("cd" * 32, "adapters/base.safetensors")
        play_round(ledgers, 0, 0)
        records[public] = public_records(ledgers)
        ledgers.close()
    assert records["sqlite"] == records["ethereum"]
    assert [kind for kind, _, _ in records["ethereum"]] == ["anchor"] + ["update-hash"] * 3 + [
        "round-summary",
    ]
    assert (tmp_path / "ethereum" / ETHEREUM_FILE).is_file()
    assert not (tmp_path / "ethereum" / "public.db").exists()


@pytest.mark.eth
def test_an_ethereum_run_reopens_on_a_fresh_in_process_chain(tmp_path):
    pytest.importorskip("eth_tester")
    settings = LedgerSettings(public="ethereum")
    ledgers = Ledgers(tmp_path, ORGS, seed=2, ledger=settings)
    ledgers.start_episode("cd" * 32)
    play_round(ledgers, 0, 0)
    ledgers.close()
    again = Ledgers(tmp_path, ORGS, seed=2, ledger=settings)
    assert again.episodes == 1
    episode, _ = again.start_episode("cd" * 32)
    play_round(again, episode, 0)
    sessions = again.public.log.sessions()
    again.close()
    assert len(sessions) == 2 and sessions[0].account != sessions[1].account
    reports = verify_path(tmp_path)
    assert all(r.ok for r in reports), [r.summary() for r in reports]
    (eth,) = [r for r in reports if r.kind == "ethereum-anchors"]
    assert eth.transactions == 2 * 5 and eth.head.endswith("sessions=2")  # anchor, 3 updates, summary


# --- the bundled channel scenarios, played through the env --------------------------------------


def play_episode(name: str, folder) -> tuple[list, list]:
    """An episode of a bundled scenario: everyone, then each sub-consortium alone; the round
    log and each step's observations."""
    import fedenv

    env = fedenv.parallel_env(name, run_dir=folder, preset="test", max_rounds=3)
    env.reset(seed=3)
    plans = ({a: 1 for a in env.agents}, {NORTH: 2, SAFE: 1}, {CARE: 1, SKY: 2})
    observations = []
    for actions in plans:
        observations.append(env.step({a: k for a, k in actions.items() if a in env.agents})[0])
    log = list(env.round_log)
    env.close()
    return log, observations


@pytest.mark.parametrize("name", ["subconsortia", "ethereum"])
def test_a_bundled_channel_scenario_plays_an_episode_that_verifies(name, tmp_path, shared_cache):
    if name == "ethereum":
        pytest.importorskip("eth_tester")
    log, observations = play_episode(name, tmp_path)
    expected = ("federation", "finance", "care") if name == "subconsortia" else ("consortium",) * 3
    assert tuple(r.scoring_channel for r in log) == expected
    # after the bank and the insurer's round: their channel partners took part; not the others'
    partners = [obs[OBS_FIELDS.index("channel_participation")] for obs in observations[1].values()]
    others = [obs[OBS_FIELDS.index("others_participation")] for obs in observations[1].values()]
    if name == "subconsortia":
        assert dict(zip(observations[1], partners)) == {NORTH: 1, CARE: 0, SAFE: 1, SKY: 0}
    else:  # one channel: the partners are all the others
        assert partners == others
    reports = verify_path(tmp_path)
    assert all(r.ok for r in reports), [r.summary() for r in reports]
    kinds = {r.kind for r in reports}
    public = "ethereum-anchors" if name == "ethereum" else "public-ledger"
    assert kinds == {"fabric-channel", "fabric-orderer", public}
    # a tampered channel file fails, and the report names it
    victim = tmp_path / "fabric" / ("finance" if name == "subconsortia" else CHANNEL)
    victim = victim / f"peer0.{NORTH}.db"
    conn = sqlite3.connect(victim)
    conn.execute(
        "UPDATE transactions SET code = 'MVCC_READ_CONFLICT' WHERE block = "
        "(SELECT MAX(block) FROM transactions)"
    )
    conn.commit()
    conn.close()
    failed = [r for r in verify_path(tmp_path) if not r.ok]
    assert [r.path for r in failed] == [str(victim)]
    assert failed[0].problems[0].reason == "validation-code"
    assert main(["verify", str(tmp_path)]) == 1


@pytest.mark.eth
def test_a_tampered_ethereum_log_of_a_run_fails_naming_it(tmp_path, shared_cache):
    pytest.importorskip("eth_tester")
    play_episode("ethereum", tmp_path)  # the round log and observations are not needed
    log = tmp_path / ETHEREUM_FILE
    conn = sqlite3.connect(log)
    conn.execute("UPDATE anchors SET payload = CAST('{}' AS BLOB) WHERE kind = 'round-summary'")
    conn.commit()
    conn.close()
    failed = [r for r in verify_path(tmp_path) if not r.ok]
    assert [(r.path, r.problems[0].reason) for r in failed] == [(str(log), "eth-index")]


@pytest.mark.parametrize("size", [1, 2, 4])
def test_a_rounds_fees_never_pass_the_bound_the_hard_budgets_plan_with(tmp_path, size):
    """Whoever takes part, each participant pays at most :meth:`Ledgers.fee_bound` (its public
    record, store, attest and its share of the records), so a level the budget mask allows never
    takes an organization past its budget."""
    ledgers = Ledgers.for_scenario(tmp_path, SUB)
    ledgers.start_episode("cd" * 32)
    for round, start in enumerate(range(len(SUB.org_names))):
        ledgers.tick()
        names = list(SUB.org_names)
        participants = (names[start:] + names[:start])[:size]
        rows = {}
        for org in participants:
            data = f"{org}-{round}".encode() * 50
            digest = hashlib.sha256(data).hexdigest()
            ledgers.post_update(org, 0, round, digest)
            ledgers.store_private_update(org, 0, round, data, participants=participants)
            rows[org] = {"digest": digest, "contribution": 0.0, "accepted": True, "payout": 0.0,
                         "weight": int(1e6 / size) / 1e6, "reasons": []}
        ledgers.record_scoring(0, round, rows, pool=1.0)
        ledgers.record_benchmark(0, round, "ab" * 32, dict.fromkeys(SUB.org_names, 1.0),
                                 participants)
        for org in participants:
            assert 0 < ledgers.round_fees[org] <= ledgers.fee_bound(org) + 1e-12, (org, round)
        assert set(ledgers.round_fees) == set(participants)
        ledgers.seal()


def _stored_rounds(ledgers: Ledgers, org: str) -> set[str]:
    peer = next(p for p in ledgers.channel.peers if p.msp_id == org)
    return {
        key
        for key in (round_key(e, r) for e in range(4) for r in range(2))
        if peer.private_record(CHAINCODE, collection_name(org), key) is not None
    }


def test_raw_updates_live_for_the_rest_of_their_episode(tmp_path):
    """blockToLive defaults to 3 x max_rounds blocks: a raw update is there for its whole
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
    ledgers = Ledgers(tmp_path, ORGS, seed=1, max_rounds=1, ledger=LedgerSettings(block_to_live=0))
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
    (_, tx), = ledgers.public.ledger.transactions("anchor")
    assert tx.payload["event"] == "artifacts-pruned"
    assert tx.payload["prefixes"] == ["adapters/e00000/", "adapters/e00001/"]
    assert tx.sender == ledgers.network.orderer.id
    ledgers.close()


def _episode_keys(ledgers: Ledgers) -> set[str]:
    """The episodes whose round keys a peer's world state holds (``e00001`` ...)."""
    peer = ledgers.channel.peers[0]
    return {key.split("/")[1][:6] for ns, key in peer.state.public if "/e" in key}


def _peer_blocks(ledgers: Ledgers) -> list[int]:
    conn = sqlite3.connect(ledgers.channel.peers[0].store.path)
    try:
        return [n for (n,) in conn.execute("SELECT number FROM blocks ORDER BY number")]
    finally:
        conn.close()


def test_peers_keep_one_episode_of_blocks_and_world_state_stays_bounded(tmp_path):
    """At each episode start the peers take a snapshot (their blocks below it go; the orderer
    keeps every block) and ``forget`` deletes the earlier episodes' round keys with the first
    round: per episode, the same number of world-state keys and of retained blocks."""
    ledgers = Ledgers(tmp_path, ORGS, seed=1, max_rounds=2)
    sizes = []
    for episode in range(4):
        ledgers.start_episode("cd" * 32)
        start = ledgers.channel.height
        for index in range(2):
            play_round(ledgers, episode, index)
        assert _episode_keys(ledgers) == {f"e{episode:05d}"}
        assert _peer_blocks(ledgers) == [0, *range(start, ledgers.channel.height)]
        sizes.append((len(ledgers.channel.peers[0].state.public), len(_peer_blocks(ledgers))))
    assert len(set(sizes[1:])) == 1  # the same each episode after the first
    orderer_height = ledgers.channel.height
    ledgers.close()
    assert all(r.ok for r in verify_path(tmp_path)), [r.problems for r in verify_path(tmp_path)]
    reopened = Ledgers(tmp_path, ORGS, seed=1, max_rounds=2)  # peers start from their snapshot
    assert reopened.channel.height == orderer_height
    assert reopened.channel.block(1) is not None  # the history is the orderer's
    reopened.start_episode("cd" * 32)
    play_round(reopened, 4, 0)
    assert _episode_keys(reopened) == {"e00004"}
    reopened.close()
    assert all(r.ok for r in verify_path(tmp_path))


def test_without_peer_snapshots_peers_keep_every_block(tmp_path):
    ledgers = Ledgers(tmp_path, ORGS, seed=1, max_rounds=1,
                      ledger=LedgerSettings(peer_snapshots=False))
    for episode in range(2):
        ledgers.start_episode("cd" * 32)
        play_round(ledgers, episode, 0)
    assert _peer_blocks(ledgers) == list(range(ledgers.channel.height))
    assert _episode_keys(ledgers) == {"e00001"}  # forget runs all the same
    ledgers.close()


def test_forget_deletes_only_earlier_episodes_and_checks_its_argument(tmp_path):
    ledgers = Ledgers(tmp_path, ORGS, seed=1, max_rounds=1, ledger=LedgerSettings(
        peer_snapshots=False))
    ledgers.start_episode("cd" * 32)
    play_round(ledgers, 0, 0)
    gateway = Gateway(ledgers.channel, ledgers.clients["citycare"])
    assert gateway.submit(CHAINCODE, "forget", "0").json() == 0  # nothing before episode 0
    assert _episode_keys(ledgers) == {"e00000"}
    with pytest.raises(ChaincodeError, match="episode index"):
        gateway.submit(CHAINCODE, "forget", "e1")
    assert gateway.submit(CHAINCODE, "forget", "1").json() == 3 + 1  # the digests, the scores
    assert _episode_keys(ledgers) == set()
    ledgers.close()
