"""The Ethereum anchoring backend, in-process (eth-tester + py-evm); no network is needed."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from chains.anchor import Anchor
from chains.errors import ChainsError, MalformedError, TransactionRejected
from chains.ethereum import EthereumAnchor  # imports web3 lazily, when a chain is made
from chains.identity import OrgCA

pytestmark = pytest.mark.eth
pytest.importorskip("web3")
pytest.importorskip("eth_tester")


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture(scope="module")
def chain() -> EthereumAnchor:
    return EthereumAnchor.in_process()


@pytest.fixture(scope="module")
def client():
    return OrgCA.create("Org1MSP", seed=b"eth").issue("client1", "client")


def test_anchors_are_mined_and_read_back_with_their_signature(chain, client):
    assert isinstance(chain, Anchor)
    before = chain.height
    payload = {"round": 3, "digest": digest("global"), "score": 7.5}
    receipt = chain.anchor("global-model-hash", payload, sender=client)
    assert receipt.startswith("0x") and len(receipt) == 66
    assert chain.height == before + 1 == chain.flush()
    assert chain.confirmed(receipt) == chain.height
    record = chain.read(receipt)
    assert (record.kind, record.payload, record.sender) == ("global-model-hash", payload, client.id)
    assert record.chain == chain.chain_id and record.block == chain.height
    assert record.account == chain.account
    assert record.account_nonce == chain.w3.eth.get_transaction(receipt)["nonce"]
    assert record.verify(client.public_key_bytes)
    other = OrgCA.create("Org2MSP", seed=b"eth").issue("client2", "client")
    assert not record.verify(other.public_key_bytes)


def test_unsigned_anchor_and_unknown_receipts(chain):
    receipt = chain.anchor("anchor", {"digest": digest("x")})
    record = chain.read(receipt)
    assert record.sender == "" and record.signature == b""
    assert chain.confirmed("0x" + "ab" * 32) is None


def test_bad_records_are_rejected_before_anything_is_sent(chain, client):
    height = chain.height
    with pytest.raises(TransactionRejected, match="cannot be anchored"):
        chain.anchor("revoke", {"msp_id": "Org1MSP", "serial": 1}, sender=client)
    with pytest.raises(TransactionRejected, match="64 lowercase hex"):
        chain.anchor("update-hash", {"round": 0, "digest": "xyz"})
    with pytest.raises(TransactionRejected, match="JSON cannot hold"):
        chain.anchor("anchor", {"digest": digest("x"), "tensor": object()})
    assert chain.height == height


def test_locally_signed_transactions_from_a_funded_key(chain):
    w3 = chain.w3
    account = w3.eth.account.from_key(hashlib.sha256(b"fedenv-eth-test").digest())
    funding = w3.eth.send_transaction({"from": w3.eth.accounts[0], "to": account.address,
                                       "value": w3.to_wei(1, "ether")})
    w3.eth.wait_for_transaction_receipt(funding)
    signer = EthereumAnchor(w3, private_key=account.key)
    assert signer.account == account.address
    receipt = signer.anchor("round-summary", {"round": 1, "accepted": 2})
    assert signer.confirmed(receipt) == signer.height
    assert w3.eth.get_transaction(receipt)["from"] == account.address


def test_connect_names_a_missing_node():
    with pytest.raises(ChainsError, match="no Ethereum node answers"):
        EthereumAnchor.connect("http://127.0.0.1:9")


def _send(w3, sender: str, data: bytes) -> str:
    tx_hash = w3.eth.send_transaction({"from": sender, "to": sender, "value": 0, "data": data})
    w3.eth.wait_for_transaction_receipt(tx_hash)
    return "0x" + bytes(tx_hash).hex()


def test_a_copied_anchor_does_not_verify_elsewhere(chain, client):
    """The signature binds chain id, sending account and its nonce: the same data in another
    account's transaction, or again in the anchoring account's next one, does not verify."""
    w3 = chain.w3
    receipt = chain.anchor("global-model-hash", {"round": 9, "digest": digest("g9")},
                           sender=client)
    assert chain.read(receipt).verify(client.public_key_bytes)
    data = bytes(w3.eth.get_transaction(receipt)["input"])
    thief = w3.eth.accounts[1]
    assert thief != chain.account
    copied = chain.read(_send(w3, thief, data))
    assert copied.account == w3.to_checksum_address(thief)
    assert (copied.kind, copied.payload, copied.sender) == ("global-model-hash",
                                                            {"round": 9, "digest": digest("g9")},
                                                            client.id)
    assert not copied.verify(client.public_key_bytes)
    replayed = chain.read(_send(w3, chain.account, data))  # same account, a later nonce
    assert replayed.account_nonce != chain.read(receipt).account_nonce
    assert not replayed.verify(client.public_key_bytes)
    moved = dataclasses.replace(chain.read(receipt), chain=chain.chain_id + 1)
    assert not moved.verify(client.public_key_bytes)  # nor on another chain


@pytest.mark.parametrize("garbage", [b"{", b"[" * 10_000, b'{"kind":1}', b"\xff\xfe",
                                     b'{"kind":"anchor","payload":{},"sender":"","signature":"zz"}'])
def test_hostile_anchor_data_is_a_malformed_error(chain, garbage):
    from chains.ethereum import DATA_PREFIX

    receipt = _send(chain.w3, chain.account, DATA_PREFIX + garbage)
    with pytest.raises(MalformedError):
        chain.read(receipt)
