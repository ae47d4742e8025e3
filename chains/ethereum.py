"""Anchoring digests on Ethereum through web3.py: the record goes in a transaction's data field.

No contract is involved: each anchor is a zero-value transaction from the anchoring account to
itself whose data is `b"fedenv/anchor/v2\\0"` followed by canonical JSON of
`{"kind", "payload", "sender", "signature"}`; `sender` and `signature` are the fedenv identity's
id and its Ed25519 signature of `b"fedenv/eth-anchor/v2\\0" + canonical_json({"account",
"account_nonce", "chain", "kind", "payload"})` (both "" without a sender): the Ethereum chain id,
the sending account and that account's transaction nonce are signed, so the record verifies only
in the one transaction it was made for. `read` takes those three from the transaction itself,
never from the data, so copying an anchor's data into a transaction from another account, on
another chain, or again from the same account, gives a record that does not verify.

Works in-process with `EthereumAnchor.in_process()` (eth-tester) and against a node with
`EthereumAnchor.connect(url)`, signing with an unlocked node account or a local key. With a local
key, `send` also returns the signed raw transaction, which is what `chains.ethereum_log` keeps
for offline verification. Requires the optional `eth` extra (web3, eth-tester[py-evm]).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chains.anchor import ANCHOR_KINDS
from chains.canonical import canonical_json, parse_canonical
from chains.errors import ChainsError, MalformedError, TransactionRejected
from chains.identity import Identity, verify_signature
from chains.transactions import check_payload

__all__ = ["DATA_PREFIX", "FUNDING_WEI", "AnchorRecord", "EthereumAnchor", "SentAnchor",
           "decode_anchor_data"]

DATA_PREFIX = b"fedenv/anchor/v2\x00"
SIGN_DOMAIN = b"fedenv/eth-anchor/v2\x00"
FUNDING_WEI = 10**20  # what `in_process(private_key=...)` gives the anchoring account: 100 ether
_MAX_DATA = 64 * 1024


def signed_message(chain: int, account: str, account_nonce: int, kind: str,
                   payload: Mapping[str, Any]) -> bytes:
    """What the fedenv sender signs for one anchoring transaction."""
    return SIGN_DOMAIN + canonical_json({"account": account, "account_nonce": account_nonce,
                                         "chain": chain, "kind": kind, "payload": dict(payload)})


def decode_anchor_data(data: bytes) -> tuple[str, dict[str, Any], str, bytes]:
    """(kind, payload, sender id, signature) of an anchoring transaction's data; MalformedError
    (ChainsError if the data is not a fedenv anchor at all) otherwise."""
    if not data.startswith(DATA_PREFIX):
        raise ChainsError("the transaction data is not a fedenv anchor")
    fields = parse_canonical(data[len(DATA_PREFIX):], max_bytes=_MAX_DATA, max_depth=8,
                             what="anchor record")
    if not isinstance(fields, dict) or set(fields) != {"kind", "payload", "sender", "signature"} \
            or not all(isinstance(fields[k], str) for k in ("kind", "sender", "signature")) \
            or not isinstance(fields["payload"], dict):
        raise MalformedError("anchor record must be {kind, payload, sender, signature}")
    try:
        signature = bytes.fromhex(fields["signature"])
    except ValueError:
        raise MalformedError("anchor record signature is not hex") from None
    return fields["kind"], fields["payload"], fields["sender"], signature


@dataclass(frozen=True)
class SentAnchor:
    """An anchoring transaction once mined: its hash (the receipt id), the signed raw bytes (b""
    when the node signed it), and what its receipt says."""

    receipt: str
    raw: bytes
    block: int
    block_hash: str
    status: int
    gas_used: int


def _web3() -> Any:
    try:
        import web3
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ChainsError("the Ethereum backend needs web3: pip install 'fedenv[eth]'") from exc
    return web3


@dataclass(frozen=True)
class AnchorRecord:
    """An anchored record read back from the chain."""

    receipt: str
    block: int
    chain: int           # of the transaction: the node's chain id
    account: str         # of the transaction: its sending address (checksummed)
    account_nonce: int   # of the transaction: the sender's nonce
    kind: str
    payload: dict[str, Any]
    sender: str
    signature: bytes

    def verify(self, sender_public_key: bytes) -> bool:
        """True when the record carries a valid signature of the given identity key for exactly
        this chain, account and nonce."""
        try:
            message = signed_message(self.chain, self.account, self.account_nonce, self.kind,
                                     self.payload)
        except MalformedError:
            return False
        return verify_signature(sender_public_key, message, self.signature)


class EthereumAnchor:
    """The Anchor protocol on an Ethereum chain (each anchor waits for its receipt)."""

    def __init__(self, w3: Any, *, account: str | None = None, private_key: bytes | str | None = None,
                 max_payload_bytes: int = 2048, timeout_s: float = 120.0) -> None:
        self.w3 = w3
        self.max_payload_bytes, self.timeout_s = max_payload_bytes, timeout_s
        self._key = None
        if private_key is not None:
            self._key = w3.eth.account.from_key(private_key)
            account = self._key.address
        elif account is None:
            accounts = w3.eth.accounts
            if not accounts:
                raise ChainsError("the node has no unlocked account: pass account= or private_key=")
            account = accounts[0]
        self.account = w3.to_checksum_address(account)
        self.chain_id = int(w3.eth.chain_id)

    @classmethod
    def in_process(cls, **kwargs: Any) -> EthereumAnchor:
        """An in-process chain (eth-tester with py-evm): nothing leaves this process. With
        `private_key=`, the key's account is first funded with `FUNDING_WEI` from the chain's
        first (pre-funded) account, in block 1."""
        web3 = _web3()
        chain = cls(web3.Web3(web3.EthereumTesterProvider()), **kwargs)
        if chain._key is not None:
            chain.fund(FUNDING_WEI)
        return chain

    @classmethod
    def connect(cls, url: str, **kwargs: Any) -> EthereumAnchor:
        """A node reached over JSON-RPC (e.g. http://127.0.0.1:8545)."""
        web3 = _web3()
        w3 = web3.Web3(web3.Web3.HTTPProvider(url))
        if not w3.is_connected():
            raise ChainsError(f"no Ethereum node answers at {url}")
        return cls(w3, **kwargs)

    @property
    def height(self) -> int:
        return int(self.w3.eth.block_number)

    @property
    def balance(self) -> int:
        return int(self.w3.eth.get_balance(self.account))

    def fund(self, wei: int, source: str | None = None) -> str:
        """Send `wei` to the anchoring account from `source` (an unlocked node account, default
        the node's first) and wait for it; returns the transaction's 0x hash."""
        accounts = self.w3.eth.accounts
        if source is None and not accounts:
            raise ChainsError(f"the node has no unlocked account to fund {self.account} from")
        tx_hash = self.w3.eth.send_transaction({"from": source or accounts[0],
                                                "to": self.account, "value": wei})
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=self.timeout_s)
        if receipt["status"] != 1:
            raise ChainsError(f"funding transaction {bytes(tx_hash).hex()} failed on chain")
        return "0x" + bytes(tx_hash).hex()

    def anchor(self, kind: str, payload: Mapping[str, Any], *, sender: Identity | None = None) -> str:
        """Send the record as a transaction and wait for it to be mined; returns its 0x hash."""
        return self.send(kind, payload, sender=sender).receipt

    def send(self, kind: str, payload: Mapping[str, Any], *,
             sender: Identity | None = None) -> SentAnchor:
        """`anchor`, returning the mined transaction: its hash, raw signed bytes and receipt."""
        if kind not in ANCHOR_KINDS:
            raise TransactionRejected("tx-kind", f"kind {kind!r} cannot be anchored; "
                                                 f"use one of {ANCHOR_KINDS}")
        try:
            check_payload(kind, payload, self.max_payload_bytes)
        except MalformedError as exc:
            raise TransactionRejected("tx-payload", str(exc)) from None
        nonce = int(self.w3.eth.get_transaction_count(self.account, "pending"))
        signature = sender.sign(signed_message(self.chain_id, self.account, nonce, kind,
                                               payload)) if sender else b""
        data = DATA_PREFIX + canonical_json({"kind": kind, "payload": dict(payload),
                                             "sender": sender.id if sender else "",
                                             "signature": signature.hex()})
        tx = {"from": self.account, "to": self.account, "value": 0, "data": data, "nonce": nonce}
        raw = b""
        if self._key is None:
            tx_hash = self.w3.eth.send_transaction(tx)
        else:
            tx["chainId"] = self.chain_id
            tx["gas"] = self.w3.eth.estimate_gas(tx)
            tx["gasPrice"] = self.w3.eth.gas_price
            raw = bytes(self._key.sign_transaction(tx).raw_transaction)
            tx_hash = self.w3.eth.send_raw_transaction(raw)
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=self.timeout_s)
        if receipt["status"] != 1:
            raise ChainsError(f"anchor transaction {tx_hash.hex()} failed on chain")
        return SentAnchor("0x" + bytes(tx_hash).hex(), raw, int(receipt["blockNumber"]),
                          "0x" + bytes(receipt["blockHash"]).hex(), int(receipt["status"]),
                          int(receipt["gasUsed"]))

    def flush(self) -> int:
        """Nothing is pending (anchor waits for its receipt); returns the height."""
        return self.height

    def confirmed(self, receipt: str) -> int | None:
        try:
            found = self.w3.eth.get_transaction_receipt(receipt)
        except Exception as exc:  # web3 raises TransactionNotFound (its own class) when unknown
            if type(exc).__name__ == "TransactionNotFound":
                return None
            raise
        return int(found["blockNumber"]) if found and found["status"] == 1 else None

    def read(self, receipt: str) -> AnchorRecord:
        """Decode the anchored record of transaction `receipt`; chain, account and nonce come
        from the transaction. MalformedError if its data is not a well-formed record."""
        tx = self.w3.eth.get_transaction(receipt)
        data = bytes(tx["input"])
        if not data.startswith(DATA_PREFIX):
            raise ChainsError(f"transaction {receipt} is not a fedenv anchor")
        kind, payload, sender, signature = decode_anchor_data(data)
        tx_chain = tx.get("chainId")
        if tx_chain is not None and int(tx_chain) != self.chain_id:
            raise ChainsError(f"transaction {receipt} is for chain {int(tx_chain)}, this node "
                              f"serves {self.chain_id}")
        return AnchorRecord(receipt, int(tx["blockNumber"]), self.chain_id,
                            self.w3.to_checksum_address(tx["from"]), int(tx["nonce"]),
                            kind, payload, sender, signature)

    def __repr__(self) -> str:
        return f"EthereumAnchor(chain_id={self.chain_id}, account={self.account}, height={self.height})"
