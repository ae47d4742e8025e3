"""Proposals, endorsements and transaction envelopes, with the exact bytes that get signed.

An envelope is canonical JSON {"endorsements": [...], "payload": {"body", "header"}, "signature"}:
- header: type, channel, tx_id, nonce, creator (PEM), timestamp; for an endorser transaction
  also chaincode, fn, args. tx_id = SHA-256(nonce || creator), as in Fabric.
- body: for an endorser transaction, the proposal response every endorser signed (proposal hash,
  chaincode sequence, read-write set, status, payload); for a config transaction, the config.
- endorsements: {"endorser": PEM, "signature": hex} over body bytes || endorser PEM.
- signature: the creator's over the payload bytes.
Transient data and the private-salt seed ride beside a proposal (`SignedProposal`), signed by the
client but never part of the envelope, so they never reach the ledger.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from chains.fabric.codec import canonical, decode_arg, encode_arg, sha256, sha256_hex
from chains.fabric.errors import MalformedError
from chains.fabric.rwset import RWSet
from chains.identity import Identity

__all__ = ["CHAINCODE_DEFINITION", "CONFIG", "ENDORSER_TX", "Endorsement", "Envelope",
           "SignedProposal", "make_header", "tx_id_of"]

ENDORSER_TX = "endorser_tx"
CONFIG = "config"
CHAINCODE_DEFINITION = "chaincode_definition"
_TYPES = (ENDORSER_TX, CONFIG, CHAINCODE_DEFINITION)


def tx_id_of(nonce: bytes, creator_pem: bytes) -> str:
    return sha256_hex(nonce, creator_pem)


def make_header(tx_type: str, channel: str, creator: Identity, nonce: bytes, timestamp: int,
                **extra: Any) -> dict[str, Any]:
    """A transaction header; `extra` adds chaincode, fn and args for endorser transactions."""
    header = {"type": tx_type, "channel": channel, "creator": creator.cert_pem.decode("ascii"),
              "nonce": nonce.hex(), "tx_id": tx_id_of(nonce, creator.cert_pem),
              "timestamp": int(timestamp)}
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
        return canonical(self.header)

    @cached_property
    def proposal_hash(self) -> str:
        return sha256_hex(self.header_bytes)

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
        private = {"transient": {k: sha256(v).hex() for k, v in self.transient.items()},
                   "salt_seed": self.salt_seed.hex()}
        return self.header_bytes + sha256(canonical(private))

    @classmethod
    def create(cls, identity: Identity, *, channel: str, chaincode: str, fn: str,
               args: tuple[Any, ...], nonce: bytes, timestamp: int,
               transient: Mapping[str, bytes], salt_seed: bytes) -> SignedProposal:
        header = make_header(ENDORSER_TX, channel, identity, nonce, timestamp,
                             chaincode=chaincode, fn=fn, args=[encode_arg(a) for a in args])
        unsigned = cls(header, dict(transient), salt_seed)
        return cls(header, unsigned.transient, salt_seed, identity.sign(unsigned.signed_bytes()))


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
        return canonical(self.header)

    @cached_property
    def body_bytes(self) -> bytes:
        return canonical(self.body)

    @cached_property
    def payload_bytes(self) -> bytes:
        return b'{"body":' + self.body_bytes + b',"header":' + self.header_bytes + b"}"

    @cached_property
    def raw(self) -> bytes:
        """The canonical envelope bytes, as stored in a block."""
        endorsements = canonical([e.to_dict() for e in self.endorsements])
        return (b'{"endorsements":' + endorsements + b',"payload":' + self.payload_bytes
                + b',"signature":"' + self.signature.hex().encode("ascii") + b'"}')

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

    @property
    def creator(self) -> bytes:
        return self.header["creator"].encode("ascii")

    @classmethod
    def from_bytes(cls, raw: bytes) -> Envelope:
        """Parse stored envelope bytes; ValueError says what is malformed."""
        try:
            data = json.loads(raw)
            payload = data["payload"]
            header, body = payload["header"], payload["body"]
            endorsements = tuple(Endorsement(e["endorser"].encode("ascii"),
                                             bytes.fromhex(e["signature"]))
                                 for e in data["endorsements"])
            signature = bytes.fromhex(data["signature"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise MalformedError(f"malformed envelope: {exc!r}") from None
        envelope = cls(header, body, endorsements, signature)
        envelope.check_shape()
        envelope.__dict__["raw"] = bytes(raw)
        return envelope

    def check_shape(self) -> None:
        """MalformedError unless header and body have the fields validation reads."""
        header, body = self.header, self.body
        if not isinstance(header, dict) or not isinstance(body, dict):
            raise MalformedError("malformed envelope: header and body must be objects")
        for name, kind in (("type", str), ("channel", str), ("tx_id", str), ("nonce", str),
                           ("creator", str), ("timestamp", int)):
            if not isinstance(header.get(name), kind):
                raise MalformedError(f"malformed envelope: header field {name!r} missing or not "
                                     f"{kind.__name__}")
        if header["type"] not in _TYPES:
            raise MalformedError(f"malformed envelope: unknown type {header['type']!r}")
        if header["type"] == ENDORSER_TX:
            if not (isinstance(header.get("chaincode"), str) and isinstance(header.get("fn"), str)
                    and isinstance(header.get("args"), list)):
                raise MalformedError("malformed envelope: endorser header needs chaincode, fn, "
                                     "args")
            if not isinstance(body.get("proposal_hash"), str) or "rwset" not in body:
                raise MalformedError("malformed envelope: endorser body needs proposal_hash, "
                                     "rwset")
        if not all(isinstance(e, Endorsement) and isinstance(e.endorser, bytes)
                   and isinstance(e.signature, bytes) for e in self.endorsements) \
                or not isinstance(self.signature, bytes):
            raise MalformedError("malformed envelope: endorsements and signature must be bytes")
