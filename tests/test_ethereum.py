"""The Ethereum anchoring backend, in-process (eth-tester + py-evm); no network is needed."""

from __future__ import annotations

import hashlib

import pytest

from chains.anchor import Anchor
from chains.errors import ChainsError, TransactionRejected
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
    with pytest.raises(TransactionRejected, match="not objects or tensors"):
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
