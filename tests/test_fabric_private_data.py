"""Private data collections: access control, where values live, blockToLive, purge, hashes."""

from __future__ import annotations

from pathlib import Path

import pytest

from chains.fabric import (
    Channel,
    CollectionConfig,
    EndorsementError,
    Gateway,
    Network,
    PrivateDataAccessError,
    ValidationCode,
    find_private_write,
    verify_channel_file,
)
from chains.fabric.private_data import value_hash

V = ValidationCode
ORGS = ("Org1", "Org2", "Org3")
POLICY = "OutOf(2, 'Org1.peer', 'Org2.peer', 'Org3.peer')"
COLLECTIONS = (
    CollectionConfig("org1", "OR('Org1.member')", endorsement_policy="OR('Org1.peer')"),
    CollectionConfig("org12", "OR('Org1.member', 'Org2.member')", member_only_write=False),
    CollectionConfig("org2open", "OR('Org2.member')", member_only_read=False,
                     member_only_write=False),
    CollectionConfig("org1clients", "OR('Org1.client')"),
    CollectionConfig("short", "OR('Org1.member')", block_to_live=2),
    CollectionConfig("guarded", "OR('Org1.member')",
                     endorsement_policy="AND('Org1.peer', 'Org3.peer')"),
)


def _put(stub, collection, key):
    stub.put_private_data(collection, key, stub.get_transient()["value"])


def _incr(stub, collection, key):
    n = int(stub.get_private_data(collection, key) or b"0") + 1
    stub.put_private_data(collection, key, str(n))


PDC = {
    "put": _put,
    "incr": _incr,
    "get": lambda stub, collection, key: stub.get_private_data(collection, key),
    "hash": lambda stub, collection, key: (stub.get_private_data_hash(collection, key)
                                           or b"").hex(),
    "delete": lambda stub, collection, key: stub.del_private_data(collection, key),
    "purge": lambda stub, collection, key: stub.purge_private_data(collection, key),
    "tick": lambda stub: stub.put_state("tick", stub.tx_id),
}


def make(path: Path | None = None) -> tuple[Network, Channel]:
    net = Network.create(ORGS, seed=21, path=path)
    channel = net.create_channel("ch", ORGS, POLICY, collections=COLLECTIONS)
    channel.install_chaincode("pdc", PDC)
    return net, channel


def identities(net: Network) -> dict[str, object]:
    return {"Org1.client": net.client("Org1"), "Org1.admin": net.admin("Org1"),
            "Org2.client": net.client("Org2"), "Org3.client": net.client("Org3")}


# Expected outcomes, written out by hand from each collection's config.
CAN_WRITE = {
    "org1": {"Org1.client", "Org1.admin"},
    "org12": {"Org1.client", "Org1.admin", "Org2.client", "Org3.client"},  # memberOnlyWrite off
    "org2open": {"Org1.client", "Org1.admin", "Org2.client", "Org3.client"},
    "org1clients": {"Org1.client"},  # admins are not clients
}
CAN_READ_ON_OWN_PEER = {
    "org1": {"Org1.client", "Org1.admin"},
    "org12": {"Org1.client", "Org1.admin", "Org2.client"},
    "org2open": {"Org2.client"},  # Org1/Org3 may read, but their own peers do not hold it
    "org1clients": {"Org1.client"},
}


def test_every_identity_against_every_collection() -> None:
    net, ch = make()
    who = identities(net)
    seeded = {c: Gateway(ch, net.client("Org2" if c == "org2open" else "Org1")).submit(
        "pdc", "put", c, "seed", transient={"value": f"seed-{c}"}) for c in CAN_WRITE}
    assert all(r.valid for r in seeded.values())
    for collection, writers in CAN_WRITE.items():
        for name, identity in who.items():
            gw = Gateway(ch, identity)
            if name in writers:
                result = gw.submit("pdc", "put", collection, name,
                                   transient={"value": f"{collection}/{name}"})
                assert result.valid, (collection, name)
            else:
                with pytest.raises(PrivateDataAccessError, match="memberOnlyWrite"):
                    gw.submit("pdc", "put", collection, name, transient={"value": "x"})
            if name in CAN_READ_ON_OWN_PEER[collection]:
                expected = f"seed-{collection}".encode()
                assert gw.evaluate("pdc", "get", collection, "seed") == expected
            else:
                with pytest.raises(PrivateDataAccessError):
                    gw.evaluate("pdc", "get", collection, "seed")
            # the on-ledger hash is readable by every channel member
            assert len(gw.evaluate("pdc", "hash", collection, "seed")) == 64
    assert ch.orderer.pending == 0
    # memberOnlyRead off: non-members may read through a member's peer
    for name in ("Org1.client", "Org3.client"):
        assert Gateway(ch, who[name]).evaluate("pdc", "get", "org2open", "seed",
                                              peer="Org2") == b"seed-org2open"
    with pytest.raises(PrivateDataAccessError, match="memberOnlyRead"):
        Gateway(ch, who["Org3.client"]).evaluate("pdc", "get", "org1", "seed", peer="Org1")


def test_values_live_only_in_member_side_stores(tmp_path: Path) -> None:
    net, ch = make(tmp_path)
    secrets = {c: f"SECRET-{c}-7f3a".encode() for c in ("org1", "org12", "org2open")}
    for collection, secret in secrets.items():
        gw = Gateway(ch, net.client("Org2" if collection == "org2open" else "Org1"))
        tx = gw.endorse(gw.propose("pdc", "put", collection, "k", transient={"value": secret}))
        assert secret not in tx.envelope.raw  # only hashes travel in the transaction
        assert tx.submit().status().valid
    members = {"org1": {"Org1"}, "org12": {"Org1", "Org2"}, "org2open": {"Org2"}}
    for peer in ch.peers:
        for collection, secret in secrets.items():
            record = peer.private_record("pdc", collection, "k")
            if peer.msp_id in members[collection]:
                assert record is not None and record.value == secret
            else:
                assert record is None
    net.close()
    for org in ORGS:
        data = (tmp_path / "ch" / f"peer0.{org}.db").read_bytes()
        for collection, secret in secrets.items():
            assert (secret in data) is (org in members[collection]), (org, collection)


def test_on_ledger_hash_verifies_value_and_salt(tmp_path: Path) -> None:
    net, ch = make(tmp_path)
    gw = Gateway(ch, net.client("Org1"))
    result = gw.submit("pdc", "put", "org1", "k", transient={"value": b"v1"})
    record = ch.resolve_peer("Org1").private_record("pdc", "org1", "k")
    assert record is not None and record.value == b"v1" and len(record.salt) == 16
    on_ledger = bytes.fromhex(Gateway(ch, net.client("Org3")).evaluate("pdc", "hash", "org1", "k")
                              .decode())
    assert on_ledger.hex() == value_hash(record.salt, b"v1")
    assert on_ledger.hex() != value_hash(b"\0" * 16, b"v1")  # salted
    # the same value written twice gets two different salts, so two different hashes
    gw.submit("pdc", "put", "org1", "k2", transient={"value": b"v1"})
    assert ch.resolve_peer("Org1").private_record("pdc", "org1", "k2").salt != record.salt
    net.close()
    path = tmp_path / "ch" / "peer0.Org3.db"  # a non-member's file holds the hashes too
    proof = find_private_write(path, "pdc", "org1", "k", b"v1", record.salt)
    assert proof is not None and (proof.block, proof.tx_id) == (result.block_number,
                                                                result.tx_id)
    assert find_private_write(path, "pdc", "org1", "k", b"v2", record.salt) is None
    assert find_private_write(path, "pdc", "org1", "k", b"v1", bytes(16)) is None


def test_private_mvcc_conflict_in_one_block() -> None:
    net, ch = make()
    gw = Gateway(ch, net.client("Org1"))
    first, second = gw.submit_async("pdc", "incr", "org1", "n"), gw.submit_async(
        "pdc", "incr", "org1", "n")
    assert (first.status().code, second.status().code) == (V.VALID, V.MVCC_READ_CONFLICT)
    assert gw.evaluate("pdc", "get", "org1", "n") == b"1"


def test_private_reads_are_endorsed_only_by_peers_that_hold_the_collection() -> None:
    net, ch = make()
    gw = Gateway(ch, net.client("Org1"))
    gw.submit("pdc", "put", "short", "k", transient={"value": "1"})
    # 'short' has no collection policy: the chaincode's 2-of-3 governs its writes, but only
    # Org1's peers hold it, so no valid endorser set exists (as with Fabric's gateway)
    with pytest.raises(EndorsementError, match="hold the collections read"):
        gw.submit("pdc", "incr", "short", "k")
    assert ch.orderer.pending == 0


def test_collection_endorsement_policy() -> None:
    net, ch = make()
    gw = Gateway(ch, net.client("Org1"))
    planned = gw.submit("pdc", "put", "guarded", "k", transient={"value": "v"})
    assert planned.valid  # the gateway added Org3, which the collection requires
    refused = gw.submit("pdc", "put", "guarded", "k", transient={"value": "w"},
                        endorsers=["Org1", "Org2"])  # enough for the chaincode, not for it
    assert refused.code is V.ENDORSEMENT_POLICY_FAILURE
    assert gw.evaluate("pdc", "get", "guarded", "k") == b"v"


def test_block_to_live_expiry(tmp_path: Path) -> None:
    net, ch = make(tmp_path)
    gw = Gateway(ch, net.client("Org1"))
    written = gw.submit("pdc", "put", "short", "k", transient={"value": b"EPHEMERAL-91c"})
    salt = ch.resolve_peer("Org1").private_record("pdc", "short", "k").salt
    for _ in range(2):  # blocks written+1 and written+2: still alive
        gw.submit("pdc", "tick")
        assert gw.evaluate("pdc", "get", "short", "k") == b"EPHEMERAL-91c"
    tick = gw.submit("pdc", "tick")  # block written + blockToLive + 1: purged on commit
    assert tick.block_number == written.block_number + 3
    assert gw.evaluate("pdc", "get", "short", "k") == b""
    assert gw.evaluate("pdc", "hash", "short", "k") == b""
    for peer in ch.peers:
        assert peer.private_record("pdc", "short", "k") is None
    net.close()
    for org in ORGS:
        path = tmp_path / "ch" / f"peer0.{org}.db"
        assert b"EPHEMERAL-91c" not in path.read_bytes()
        assert verify_channel_file(path).ok
        proof = find_private_write(path, "pdc", "short", "k", b"EPHEMERAL-91c", salt)
        assert proof is not None and proof.block == written.block_number


def test_rewrite_restarts_block_to_live() -> None:
    net, ch = make()
    gw = Gateway(ch, net.client("Org1"))
    gw.submit("pdc", "put", "short", "k", transient={"value": "a"})
    gw.submit("pdc", "tick")
    gw.submit("pdc", "put", "short", "k", transient={"value": "b"})
    gw.submit("pdc", "tick")
    gw.submit("pdc", "tick")  # the first write would have expired here
    assert gw.evaluate("pdc", "get", "short", "k") == b"b"
    gw.submit("pdc", "tick")
    assert gw.evaluate("pdc", "get", "short", "k") == b""


def test_purge_erases_every_copy_but_the_hash_remains(tmp_path: Path) -> None:
    net, ch = make(tmp_path)
    gw = Gateway(ch, net.client("Org1"))
    secret = b"FORGET-ME-5d20"
    written = gw.submit("pdc", "put", "org12", "k", transient={"value": secret})
    salt = ch.resolve_peer("Org2").private_record("pdc", "org12", "k").salt
    assert Gateway(ch, net.client("Org2")).evaluate("pdc", "get", "org12", "k") == secret
    assert gw.submit("pdc", "purge", "org12", "k").valid
    for peer in ch.peers:
        assert peer.private_record("pdc", "org12", "k") is None
    assert gw.evaluate("pdc", "get", "org12", "k") == b""
    for org in ORGS:  # gone from disk while the network is still running
        folder = tmp_path / "ch"
        data = b"".join(p.read_bytes() for p in folder.glob(f"peer0.{org}.db*"))
        assert secret not in data
    net.close()
    for org in ORGS:
        path = tmp_path / "ch" / f"peer0.{org}.db"
        assert verify_channel_file(path).ok
        proof = find_private_write(path, "pdc", "org12", "k", secret, salt)
        assert proof is not None and proof.tx_id == written.tx_id


def test_delete_removes_value_and_hash() -> None:
    net, ch = make()
    gw = Gateway(ch, net.client("Org1"))
    gw.submit("pdc", "put", "org1", "k", transient={"value": "v"})
    assert gw.submit("pdc", "delete", "org1", "k").valid
    assert gw.evaluate("pdc", "get", "org1", "k") == b""
    assert ch.resolve_peer("Org1").private_record("pdc", "org1", "k") is None
