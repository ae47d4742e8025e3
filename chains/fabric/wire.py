"""The exact shape of what a channel receives: headers, bodies, endorsements, as parsed JSON.

Everything a peer or the orderer reads from a client or a file passes here first; anything else
is a `MalformedError` naming the field, so no later step meets a wrong type, a non-ASCII
certificate, an odd hex string or an unbounded list. Limits: an envelope is at most 4 MiB and 10
levels deep, at most 64 endorsements and 1,024 arguments; certificates are ASCII PEM of at most
16 KiB.
"""

from __future__ import annotations

import re
from typing import Any

from chains.errors import MalformedError
from chains.msp import MAX_CERT_BYTES

__all__ = ["CHAINCODE_DEFINITION", "CONFIG", "ENDORSER_TX", "MAX_ENVELOPE_BYTES",
           "MAX_ENVELOPE_DEPTH", "check_body", "check_endorsement", "check_header", "hex_bytes"]

ENDORSER_TX = "endorser_tx"
CONFIG = "config"
CHAINCODE_DEFINITION = "chaincode_definition"
MAX_ENVELOPE_BYTES = 4 << 20
MAX_ENVELOPE_DEPTH = 10
MAX_ENDORSEMENTS = 64
MAX_ARGS = 1024
_COMMON = ("chain", "channel", "creator", "nonce", "timestamp", "tx_id", "type")
_HEADER_KEYS = {
    ENDORSER_TX: frozenset((*_COMMON, "chaincode", "fn", "args")),
    CONFIG: frozenset(_COMMON),
    CHAINCODE_DEFINITION: frozenset(_COMMON),
}
_BODY_KEYS = {
    ENDORSER_TX: frozenset(("payload", "proposal_hash", "rwset", "sequence", "status")),
    CONFIG: frozenset(("config",)),
    CHAINCODE_DEFINITION: frozenset(("definition",)),
}
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
_HEX = re.compile(r"(?:[0-9a-f]{2})*\Z")
_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,249}\Z")
_PEM_START = "-----BEGIN CERTIFICATE-----"


def _fail(what: str) -> MalformedError:
    return MalformedError(f"malformed envelope: {what}")


def hex_bytes(value: Any, what: str, *, size: int | None = None) -> bytes:
    """The bytes of a lowercase hex string (of `size` bytes, if given)."""
    if not isinstance(value, str) or not _HEX.match(value) \
            or (size is not None and len(value) != 2 * size):
        raise _fail(f"{what} must be lowercase hex" + (f" of {size} bytes" if size else ""))
    return bytes.fromhex(value)


def _pem(value: Any, what: str) -> None:
    if not isinstance(value, str) or not value.isascii() or len(value) > MAX_CERT_BYTES \
            or not value.startswith(_PEM_START):
        raise _fail(f"{what} must be an ASCII PEM certificate of at most {MAX_CERT_BYTES} bytes")


def _int(value: Any, what: str, low: int = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise _fail(f"{what} must be an int >= {low}")


def check_header(header: Any) -> None:
    """MalformedError unless `header` is a transaction header of a known type, exactly."""
    if not isinstance(header, dict):
        raise _fail("header must be an object")
    kind = header.get("type")
    keys = _HEADER_KEYS.get(kind) if isinstance(kind, str) else None
    if keys is None:
        raise _fail(f"unknown transaction type {str(kind)[:40]!r}")
    if set(header) != keys:
        raise _fail(f"a {kind} header has exactly the fields {sorted(keys)}")
    for name in ("channel", "chaincode", "fn"):
        if name in keys and not (isinstance(header[name], str) and _NAME.match(header[name])):
            raise _fail(f"header {name} must be a name of letters, digits, '_', '.', '-'")
    if not isinstance(header["chain"], str) or not _HEX64.match(header["chain"]):
        raise _fail("header chain must be 64 lowercase hex characters")
    if not isinstance(header["tx_id"], str) or not _HEX64.match(header["tx_id"]):
        raise _fail("header tx_id must be 64 lowercase hex characters")
    if not 16 <= len(hex_bytes(header["nonce"], "header nonce")) <= 64:
        raise _fail("header nonce must be 16 to 64 bytes")
    _pem(header["creator"], "header creator")
    _int(header["timestamp"], "header timestamp")
    if kind == ENDORSER_TX:
        args = header["args"]
        if not isinstance(args, list) or len(args) > MAX_ARGS:
            raise _fail(f"header args must be a list of at most {MAX_ARGS}")
        for arg in args:
            if isinstance(arg, dict) and set(arg) == {"hex"}:
                hex_bytes(arg["hex"], "a bytes argument")
            elif not isinstance(arg, str):
                raise _fail("an argument is a string or {\"hex\": ...}")


def check_body(kind: str, body: Any) -> None:
    """MalformedError unless `body` has the fields of a `kind` transaction's body."""
    keys = _BODY_KEYS[kind]
    if not isinstance(body, dict) or set(body) != keys:
        raise _fail(f"a {kind} body has exactly the fields {sorted(keys)}")
    if kind == ENDORSER_TX:
        hex_bytes(body["payload"], "body payload")
        hex_bytes(body["proposal_hash"], "body proposal_hash", size=32)
        _int(body["sequence"], "body sequence", 1)
        if body["status"] != 200 or isinstance(body["status"], bool):
            raise _fail("body status must be 200")
    elif not isinstance(body[next(iter(keys))], dict):
        raise _fail(f"a {kind} body holds an object")


def check_endorsement(value: Any) -> tuple[bytes, bytes]:
    """(endorser PEM, signature) of one endorsement entry."""
    if not isinstance(value, dict) or set(value) != {"endorser", "signature"}:
        raise _fail("an endorsement has exactly endorser and signature")
    _pem(value["endorser"], "endorser")
    return value["endorser"].encode("ascii"), hex_bytes(value["signature"], "endorsement "
                                                                           "signature", size=64)
