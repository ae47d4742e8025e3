"""Public-ledger transactions: a kind, a small canonical-JSON payload, a sender and its signature.

A transaction body is canonical JSON (sorted keys, no spaces, UTF-8, no NaN) of
`{"chain", "kind", "nonce", "payload", "sender"}`: `chain` is the ledger's id (the genesis
transaction's id; "" in the genesis transaction itself) so a transaction cannot be replayed on
another ledger, `sender` is the identity id (hex SHA-256 of its certificate), `nonce` counts the
sender's transactions from 0 so none can be replayed on this one. The sender signs
`b"fedenv/tx/v1\\0" + body` with Ed25519. The Merkle leaf is `body || signature` and the
transaction id is the hex RFC 9162 leaf hash of it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chains.identity import Identity
from chains.merkle import leaf_hash

__all__ = ["KINDS", "TX_DOMAIN", "Transaction", "TxKind", "canonical_json", "check_payload"]

TX_DOMAIN = b"fedenv/tx/v1\x00"
SIGNATURE_SIZE = 64
_HEX64 = re.compile(r"[0-9a-f]{64}")
_ANY_ROLE = frozenset({"peer", "client", "admin", "orderer"})
_MEMBER_ROLES = frozenset({"peer", "client", "admin"})
_MAX_DEPTH = 4


@dataclass(frozen=True)
class TxKind:
    """A transaction kind: who may send it and which payload fields it must carry."""

    name: str
    roles: frozenset[str]
    required: tuple[str, ...] = ()
    config: bool = False  # changes the ledger's membership configuration


KINDS: dict[str, TxKind] = {k.name: k for k in (
    TxKind("update-hash", _MEMBER_ROLES, ("round", "digest")),
    TxKind("global-model-hash", _ANY_ROLE, ("round", "digest")),
    TxKind("round-summary", _ANY_ROLE, ("round",)),
    TxKind("anchor", _ANY_ROLE, ("digest",)),
    TxKind("msp-config", frozenset({"orderer"}), ("msp", "max_payload_bytes"), config=True),
    TxKind("revoke", frozenset({"admin"}), ("msp_id", "serial"), config=True),
)}


def canonical_json(value: Any) -> bytes:
    """Canonical JSON bytes: sorted keys, compact separators, UTF-8, finite numbers only."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def _check_value(value: Any, where: str, depth: int) -> None:
    if value is None or isinstance(value, (bool, str, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where} is not finite ({value})")
        return
    if depth >= _MAX_DEPTH:
        raise ValueError(f"{where} nests deeper than {_MAX_DEPTH} levels")
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_value(item, f"{where}[{i}]", depth + 1)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where} has a non-string key {key!r}")
            _check_value(item, f"{where}.{key}", depth + 1)
        return
    raise TypeError(f"{where} has type {type(value).__name__}; payloads hold digests and numbers, "
                     "not objects or tensors")


def check_payload(kind: str, payload: Any, max_bytes: int) -> bytes:
    """Validate `payload` for `kind`; returns its canonical JSON.

    Raises ValueError (or TypeError, for a value of the wrong type) naming the field.
    """
    spec = KINDS.get(kind)
    if spec is None:
        raise ValueError(f"unknown kind {kind!r}; known: {sorted(KINDS)}")
    if not isinstance(payload, Mapping):
        raise TypeError(f"payload must be a mapping, got {type(payload).__name__}")
    _check_value(payload, "payload", 0)
    missing = [name for name in spec.required if name not in payload]
    if missing:
        raise ValueError(f"payload of {kind!r} lacks {missing}")
    for key in ("digest", "parent"):
        if key in payload and not (isinstance(payload[key], str) and _HEX64.fullmatch(payload[key])):
            raise ValueError(f"payload.{key} must be 64 lowercase hex characters (a SHA-256 digest)")
    if "round" in payload and (isinstance(payload["round"], bool)
                               or not isinstance(payload["round"], int) or payload["round"] < 0):
        raise ValueError(f"payload.round must be a non-negative int, got {payload['round']!r}")
    encoded = canonical_json(dict(payload))
    if len(encoded) > max_bytes:
        raise ValueError(f"payload is {len(encoded)} bytes of canonical JSON; the limit is {max_bytes}")
    return encoded


@dataclass(frozen=True)
class Transaction:
    """A signed transaction. `cert_pem` travels with it (the ledger stores each certificate once)."""

    body: bytes
    signature: bytes
    cert_pem: bytes
    chain: str
    kind: str
    nonce: int
    payload: dict[str, Any]
    sender: str

    @classmethod
    def create(cls, identity: Identity, kind: str, payload: Mapping[str, Any], *, nonce: int,
               chain: str) -> Transaction:
        """Build and sign a transaction from `identity` (payload validated by the ledger on submit)."""
        body = canonical_json({"chain": chain, "kind": kind, "nonce": nonce,
                               "payload": dict(payload), "sender": identity.id})
        return cls.decode(body, identity.sign(TX_DOMAIN + body), identity.cert_pem)

    @classmethod
    def decode(cls, body: bytes, signature: bytes, cert_pem: bytes) -> Transaction:
        """Parse a stored body; raises ValueError if it is not a well-formed canonical body."""
        try:
            fields = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"body is not JSON ({exc})") from None
        if not isinstance(fields, dict) or set(fields) != {"chain", "kind", "nonce", "payload",
                                                           "sender"}:
            raise ValueError("body must have exactly chain, kind, nonce, payload, sender")
        nonce = fields["nonce"]
        if isinstance(nonce, bool) or not isinstance(nonce, int) or nonce < 0:
            raise ValueError(f"nonce must be a non-negative int, got {nonce!r}")
        if not (all(isinstance(fields[k], str) for k in ("chain", "kind", "sender"))
                and isinstance(fields["payload"], dict)):
            raise ValueError("chain, kind and sender must be strings and payload an object")
        if canonical_json(fields) != bytes(body):
            raise ValueError("body is not in canonical JSON form")
        if len(signature) != SIGNATURE_SIZE:
            raise ValueError(f"signature must be {SIGNATURE_SIZE} bytes, got {len(signature)}")
        return cls(bytes(body), bytes(signature), bytes(cert_pem), fields["chain"], fields["kind"],
                   nonce, fields["payload"], fields["sender"])

    def __hash__(self) -> int:
        return hash((self.body, self.signature))

    @property
    def leaf(self) -> bytes:
        """The Merkle leaf data: body followed by the 64-byte signature."""
        return self.body + self.signature

    @property
    def leaf_hash(self) -> bytes:
        return leaf_hash(self.leaf)

    @property
    def id(self) -> str:
        """Hex RFC 9162 leaf hash: the transaction's identifier and its key for inclusion proofs."""
        return self.leaf_hash.hex()

    @property
    def signed_bytes(self) -> bytes:
        return TX_DOMAIN + self.body
