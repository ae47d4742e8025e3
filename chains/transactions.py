"""Public-ledger transactions: a kind, a small canonical-JSON payload, a sender and its signature.

A transaction body is canonical JSON (`chains.canonical`) of `{"chain", "kind", "nonce",
"payload", "sender"}`: `chain` is the ledger's id (the genesis transaction's id, unique per
ledger through the genesis nonce; "" in the genesis transaction itself) so a transaction cannot
be replayed on another ledger, `sender` is the identity id (hex SHA-256 of its certificate),
`nonce` counts the sender's transactions from 0 so none can be replayed on this one. The sender
signs `b"fedenv/tx/v2\\0" + body` with Ed25519. The Merkle leaf is `body || signature` and the
transaction id is the hex RFC 9162 leaf hash of it.

Every kind bounds its payload: its fields, its canonical size (the ledger's limit for records,
fixed ones for the config kinds) and its depth, checked before anything else reads it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from chains.canonical import canonical_json, parse_canonical
from chains.errors import MalformedError
from chains.identity import Identity
from chains.merkle import leaf_hash
from chains.msp import MAX_CERT_BYTES

__all__ = ["KINDS", "MAX_BODY_BYTES", "TX_DOMAIN", "Transaction", "TxKind", "check_payload"]

TX_DOMAIN = b"fedenv/tx/v2\x00"
SIGNATURE_SIZE = 64
MAX_CONFIG_BYTES = 1 << 20         # the genesis msp-config: CA certificates of the consortium
MAX_REVOKE_BYTES = 160 * 1024      # a CRL of up to 64 KiB, hex-encoded
MAX_BODY_BYTES = MAX_CONFIG_BYTES + 4096
MAX_PAYLOAD_DEPTH = 5              # payload -> msp -> crls -> org -> [hex]
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
_ANY_ROLE = frozenset({"peer", "client", "admin", "orderer"})
_MEMBER_ROLES = frozenset({"peer", "client", "admin"})
_BODY_KEYS = frozenset({"chain", "kind", "nonce", "payload", "sender"})


@dataclass(frozen=True)
class TxKind:
    """A transaction kind: who may send it, which payload fields it carries, how big it may be.

    `max_bytes` None means the ledger's `max_payload_bytes`; `exact` kinds carry exactly their
    `required` fields; `config` kinds change the ledger's membership configuration.
    """

    name: str
    roles: frozenset[str]
    required: tuple[str, ...] = ()
    max_bytes: int | None = None
    exact: bool = False
    config: bool = False


KINDS: dict[str, TxKind] = {k.name: k for k in (
    TxKind("update-hash", _MEMBER_ROLES, ("round", "digest")),
    TxKind("global-model-hash", _ANY_ROLE, ("round", "digest")),
    TxKind("round-summary", _ANY_ROLE, ("round",)),
    TxKind("anchor", _ANY_ROLE, ("digest",)),
    TxKind("msp-config", frozenset({"orderer"}), ("max_payload_bytes", "msp", "nonce"),
           MAX_CONFIG_BYTES, exact=True, config=True),
    TxKind("revoke", frozenset({"admin"}), ("crl", "msp_id"), MAX_REVOKE_BYTES, exact=True,
           config=True),
)}


def check_payload(kind: str, payload: Any, max_bytes: int) -> bytes:
    """Validate `payload` for `kind` (a known kind) under the ledger's `max_bytes` for records;
    returns its canonical JSON. MalformedError names the field that is wrong."""
    spec = KINDS.get(kind)
    if spec is None:
        raise MalformedError(f"unknown kind {kind!r}; known: {sorted(KINDS)}")
    if not isinstance(payload, Mapping):
        raise MalformedError(f"payload must be a mapping, got {type(payload).__name__}")
    payload = dict(payload)
    encoded = canonical_json(payload, max_depth=MAX_PAYLOAD_DEPTH, what="payload")
    limit = spec.max_bytes if spec.max_bytes is not None else max_bytes
    if len(encoded) > limit:
        raise MalformedError(f"payload of {kind!r} is {len(encoded)} bytes of canonical JSON; "
                             f"the limit is {limit}")
    missing = [name for name in spec.required if name not in payload]
    if missing:
        raise MalformedError(f"payload of {kind!r} lacks {missing}")
    if spec.exact and len(payload) != len(spec.required):
        extra = sorted(set(payload) - set(spec.required))
        raise MalformedError(f"payload of {kind!r} carries only {list(spec.required)}, "
                             f"not {extra}")
    for key in ("digest", "parent"):
        if key in payload and not (isinstance(payload[key], str) and _HEX64.match(payload[key])):
            raise MalformedError(f"payload.{key} must be 64 lowercase hex characters "
                                 "(a SHA-256 digest)")
    for key in ("round", "max_payload_bytes"):
        value = payload.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise MalformedError(f"payload.{key} must be a non-negative int, got {value!r}")
    for key in ("msp_id", "crl", "nonce"):
        if key in payload and (not isinstance(payload[key], str) or not payload[key]):
            raise MalformedError(f"payload.{key} must be a non-empty string")
    return encoded


@dataclass(frozen=True)
class Transaction:
    """A signed transaction. Its fields are parsed from `body` when it is made, so they always
    say what was signed. `cert_pem` travels with it (the ledger stores each certificate once).
    """

    body: bytes
    signature: bytes
    cert_pem: bytes
    chain: str = field(init=False)
    kind: str = field(init=False)
    nonce: int = field(init=False)
    payload: dict[str, Any] = field(init=False, compare=False)
    sender: str = field(init=False)

    def __post_init__(self) -> None:
        for name in ("body", "signature", "cert_pem"):
            if type(getattr(self, name)) is not bytes:
                raise MalformedError(f"transaction {name} must be bytes, got "
                                     f"{type(getattr(self, name)).__name__}")
        if len(self.signature) != SIGNATURE_SIZE:
            raise MalformedError(f"signature must be {SIGNATURE_SIZE} bytes, "
                                 f"got {len(self.signature)}")
        if len(self.cert_pem) > MAX_CERT_BYTES:
            raise MalformedError(f"certificate is {len(self.cert_pem)} bytes; the limit is "
                                 f"{MAX_CERT_BYTES}")
        fields = parse_canonical(self.body, max_bytes=MAX_BODY_BYTES,
                                 max_depth=MAX_PAYLOAD_DEPTH + 1, what="transaction body")
        if not isinstance(fields, dict) or set(fields) != _BODY_KEYS:
            raise MalformedError("transaction body must have exactly chain, kind, nonce, "
                                 "payload, sender")
        nonce = fields["nonce"]
        if isinstance(nonce, bool) or not isinstance(nonce, int) or nonce < 0:
            raise MalformedError(f"nonce must be a non-negative int, got {nonce!r}")
        if not (all(isinstance(fields[k], str) for k in ("chain", "kind", "sender"))
                and isinstance(fields["payload"], dict)):
            raise MalformedError("chain, kind and sender must be strings and payload an object")
        for name in ("chain", "kind", "nonce", "payload", "sender"):
            object.__setattr__(self, name, fields[name])

    @classmethod
    def create(cls, identity: Identity, kind: str, payload: Mapping[str, Any], *, nonce: int,
               chain: str) -> Transaction:
        """Build and sign a transaction from `identity` (payload validated by the ledger on submit)."""
        body = canonical_json({"chain": chain, "kind": kind, "nonce": nonce,
                               "payload": dict(payload), "sender": identity.id})
        return cls(body, identity.sign(TX_DOMAIN + body), identity.cert_pem)

    @classmethod
    def decode(cls, body: bytes, signature: bytes, cert_pem: bytes) -> Transaction:
        """Parse stored bytes; MalformedError if they are not a well-formed canonical body."""
        return cls(body, signature, cert_pem)

    def __hash__(self) -> int:
        return hash((self.body, self.signature))

    @property
    def leaf(self) -> bytes:
        """The Merkle leaf data: body followed by the 64-byte signature."""
        return self.body + self.signature

    @cached_property
    def leaf_hash(self) -> bytes:
        return leaf_hash(self.leaf)

    @property
    def id(self) -> str:
        """Hex RFC 9162 leaf hash: the transaction's identifier and its key for inclusion proofs."""
        return self.leaf_hash.hex()

    @property
    def signed_bytes(self) -> bytes:
        return TX_DOMAIN + self.body
