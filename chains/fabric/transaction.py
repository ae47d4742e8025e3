"""Proposals, endorsements and transaction envelopes, with the exact bytes that get signed.

An envelope is canonical JSON {"endorsements": [...], "payload": {"body", "header"}, "signature"}:
- header: type, channel, chain (the channel's unique id), tx_id, nonce, creator (PEM),
  timestamp; for an endorser transaction also chaincode, fn, args. tx_id = SHA-256(nonce ||
  creator), as in Fabric. Every signature below covers the header, so the chain id too.
- body: for an endorser transaction, the proposal response every endorser signed (proposal hash,
  chaincode sequence, read-write set, status, payload); for a config transaction, the config.
- endorsements: {"endorser": PEM, "signature": hex} over body bytes || endorser PEM.
- signature: the creator's over the payload bytes.
Transient data and the private-salt seed ride beside a proposal (`SignedProposal`), signed by the
client but never part of the envelope, so they never reach the ledger. `Envelope.from_bytes` is
the one way bytes become an envelope: strict (`chains.fabric.wire`) and canonical.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from chains.canonical import canonical_json, encode_parsed, parse_json
from chains.fabric.codec import decode_arg, encode_arg, sha256, sha256_hex
from chains.fabric.errors import MalformedError
from chains.fabric.rwset import RWSet
from chains.fabric.wire import (
    CHAINCODE_DEFINITION,
    CONFIG,
    ENDORSER_TX,
    MAX_ENDORSEMENTS,
    MAX_ENVELOPE_BYTES,
    MAX_ENVELOPE_DEPTH,
    check_body,
    check_endorsement,
    check_header,
    hex_bytes,
)
from chains.identity import Identity

__all__ = ["CHAINCODE_DEFINITION", "CONFIG", "ENDORSER_TX", "USED_ID_CHARS", "Endorsement", "Envelope",
           "SignedProposal", "make_header", "tx_id_of", "used_id"]

USED_ID_CHARS = 32  # hex characters of a tx id peers keep to refuse its reuse (16 bytes)


def tx_id_of(nonce: bytes, creator_pem: bytes) -> str:
    return sha256_hex(nonce, creator_pem)


def used_id(tx_id: str) -> str:
    """What a peer keeps of a used tx id to refuse its reuse (DUPLICATE_TXID): its first 16
    bytes, hex. A true duplicate always matches. A new tx id matches an unrelated used one only
    if its 128-bit prefix collides: a tx id is SHA-256(nonce || creator) and the creator's
    signature covers it, so another organization would need a 128-bit second preimage of an
    id it has seen; only an organization's own tx ids can collide by chance (2^-64 at 2^32 of
    its ids), which refuses its own transaction, never someone else's (docs/fabric.md)."""
    return tx_id[:USED_ID_CHARS]


def make_header(tx_type: str, channel: str, chain: str, creator: Identity, nonce: bytes,
                timestamp: int, **extra: Any) -> dict[str, Any]:
    """A transaction header; `extra` adds chaincode, fn and args for endorser transactions."""
    header = {"type": tx_type, "channel": channel, "chain": chain,
              "creator": creator.cert_pem.decode("ascii"), "nonce": nonce.hex(),
              "tx_id": tx_id_of(nonce, creator.cert_pem), "timestamp": int(timestamp)}
    header.update(extra)
    return header


@dataclass(frozen=True)
class Endorsement:
    """A signature by `endorser` (PEM) over the body bytes followed by the endorser PEM."""

    endorser: bytes
    signature: bytes

    @staticmethod
    def signed_bytes(body_bytes: bytes, endorser: bytes) -> bytes:
        return body_bytes + endorser

    @classmethod
    def sign(cls, identity: Identity, body_bytes: bytes) -> Endorsement:
        signature = identity.sign(cls.signed_bytes(body_bytes, identity.cert_pem))
        return cls(identity.cert_pem, signature)

    def to_dict(self) -> dict[str, str]:
        return {"endorser": self.endorser.decode("ascii"), "signature": self.signature.hex()}


@dataclass(frozen=True)
class SignedProposal:
    """What a client sends to endorsing peers: header, transient data, salt seed, signature."""

    header: dict[str, Any]
    transient: Mapping[str, bytes] = field(default_factory=dict)
    salt_seed: bytes = b""
    signature: bytes = b""

    @cached_property
    def header_bytes(self) -> bytes:
        return canonical_json(self.header)

    @cached_property
    def proposal_hash(self) -> str:
        return sha256_hex(self.header_bytes)

    def check_shape(self) -> None:
        """MalformedError unless this is a well-formed endorser proposal (strict header, bytes
        transient values and salt seed, a 64-byte signature). Checked once per proposal."""
        if self.__dict__.get("_shape_ok"):
            return
        check_header(self.header)
        if self.header["type"] != ENDORSER_TX:
            raise MalformedError("a proposal is an endorser transaction")
        if not isinstance(self.transient, Mapping) or not all(
                isinstance(k, str) and isinstance(v, bytes) for k, v in self.transient.items()):
            raise MalformedError("transient data maps str to bytes")
        if not isinstance(self.salt_seed, bytes) or not isinstance(self.signature, bytes) \
                or len(self.signature) != 64:
            raise MalformedError("salt seed and signature must be bytes (signature: 64)")
        self.__dict__["_shape_ok"] = True

    @property
    def tx_id(self) -> str:
        return self.header["tx_id"]

    @property
    def creator(self) -> bytes:
        return self.header["creator"].encode("ascii")

    @property
    def args(self) -> tuple[str | bytes, ...]:
        return tuple(decode_arg(a) for a in self.header["args"])

    def signed_bytes(self) -> bytes:
        """Header bytes || SHA-256 of the transient data (per-value digests) and salt seed."""
        cached = self.__dict__.get("_signed_bytes")
        if cached is None:
            private = {"transient": {k: sha256(v).hex() for k, v in self.transient.items()},
                       "salt_seed": self.salt_seed.hex()}
            cached = self.__dict__["_signed_bytes"] = self.header_bytes + sha256(
                canonical_json(private))
        return cached

    @classmethod
    def create(cls, identity: Identity, *, channel: str, chain: str, chaincode: str, fn: str,
               args: tuple[Any, ...], nonce: bytes, timestamp: int,
               transient: Mapping[str, bytes], salt_seed: bytes) -> SignedProposal:
        header = make_header(ENDORSER_TX, channel, chain, identity, nonce, timestamp,
                             chaincode=chaincode, fn=fn, args=[encode_arg(a) for a in args])
        unsigned = cls(header, dict(transient), salt_seed)
        signed = cls(header, unsigned.transient, salt_seed, identity.sign(unsigned.signed_bytes()))
        signed.__dict__.update(header_bytes=unsigned.header_bytes,
                               _signed_bytes=unsigned.signed_bytes())
        return signed


@dataclass(frozen=True)
class Envelope:
    """A transaction as ordered into blocks. Build with `create`, parse with `from_bytes`."""

    header: dict[str, Any]
    body: dict[str, Any]
    endorsements: tuple[Endorsement, ...]
    signature: bytes

    @classmethod
    def create(cls, creator: Identity, header: dict[str, Any], body: dict[str, Any],
               endorsements: tuple[Endorsement, ...] = (), *, header_bytes: bytes | None = None,
               body_bytes: bytes | None = None) -> Envelope:
        """Sign a new envelope; pass the canonical bytes of header/body if already computed."""
        envelope = cls(header, body, endorsements, b"")
        if header_bytes is not None:
            envelope.__dict__["header_bytes"] = header_bytes
        if body_bytes is not None:
            envelope.__dict__["body_bytes"] = body_bytes
        signed = cls(header, body, endorsements, creator.sign(envelope.payload_bytes))
        signed.__dict__.update({k: envelope.__dict__[k] for k in
                                ("header_bytes", "body_bytes", "payload_bytes")})
        return signed

    @cached_property
    def header_bytes(self) -> bytes:
        return canonical_json(self.header)

    @cached_property
    def body_bytes(self) -> bytes:
        return canonical_json(self.body)

    @cached_property
    def payload_bytes(self) -> bytes:
        return b'{"body":' + self.body_bytes + b',"header":' + self.header_bytes + b"}"

    @cached_property
    def raw(self) -> bytes:
        """The canonical envelope bytes, as stored in a block (MalformedError if this envelope
        cannot be encoded: wrong types in it)."""
        try:
            endorsements = canonical_json([e.to_dict() for e in self.endorsements])
            return (b'{"endorsements":' + endorsements + b',"payload":' + self.payload_bytes
                    + b',"signature":"' + self.signature.hex().encode("ascii") + b'"}')
        except (AttributeError, TypeError, UnicodeError) as exc:
            raise MalformedError(f"malformed envelope: {exc}") from None

    @cached_property
    def proposal_hash(self) -> str:
        return sha256_hex(self.header_bytes)

    @cached_property
    def rwset(self) -> RWSet:
        return RWSet.from_dict(self.body["rwset"])

    @property
    def type(self) -> str:
        return self.header["type"]

    @property
    def tx_id(self) -> str:
        return self.header["tx_id"]

    @cached_property
    def creator(self) -> bytes:
        return self.header["creator"].encode("ascii")

    @classmethod
    def from_bytes(cls, raw: bytes) -> Envelope:
        """Parse stored or received envelope bytes, strictly (`chains.fabric.wire`): the
        exact fields and types, a parsable read-write set, canonical bytes. MalformedError says
        what is malformed."""
        data = parse_json(raw, max_bytes=MAX_ENVELOPE_BYTES, max_depth=MAX_ENVELOPE_DEPTH,
                          what="envelope")
        if not isinstance(data, dict) or set(data) != {"endorsements", "payload", "signature"} \
                or not isinstance(data["payload"], dict) \
                or set(data["payload"]) != {"body", "header"}:
            raise MalformedError("malformed envelope: expected {endorsements, payload: {body, "
                                 "header}, signature}")
        header, body = data["payload"]["header"], data["payload"]["body"]
        check_header(header)
        check_body(header["type"], body)
        if not isinstance(data["endorsements"], list) \
                or len(data["endorsements"]) > MAX_ENDORSEMENTS:
            raise MalformedError(f"malformed envelope: at most {MAX_ENDORSEMENTS} endorsements")
        endorsements = tuple(Endorsement(*check_endorsement(e)) for e in data["endorsements"])
        envelope = cls(header, body, endorsements,
                       hex_bytes(data["signature"], "signature", size=64))
        if header["type"] == ENDORSER_TX:
            envelope.__dict__["rwset"] = RWSet.from_dict(body["rwset"])
        try:  # the canonical bytes, from the encodings of the parts that signatures need
            envelope.__dict__.update(header_bytes=encode_parsed(header),
                                     body_bytes=encode_parsed(body))
            canonical = (b'{"endorsements":' + encode_parsed(data["endorsements"])
                         + b',"payload":' + envelope.payload_bytes + b',"signature":'
                         + encode_parsed(data["signature"]) + b"}")
        except UnicodeEncodeError:
            raise MalformedError("malformed envelope: text that is not valid Unicode") from None
        if canonical != bytes(raw):
            raise MalformedError("malformed envelope: not in canonical JSON form")
        envelope.__dict__["raw"] = canonical
        return envelope
