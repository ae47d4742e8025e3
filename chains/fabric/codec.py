"""Hashes and value encodings of the channels; structures are `chains.canonical` JSON.

Binary values travel as lowercase hex; chaincode arguments are str, or bytes as {"hex": ...}.
"""

from __future__ import annotations

import hashlib
from typing import Any

from chains.canonical import canonical_json
from chains.errors import MalformedError

ZERO_HASH = "00" * 32


def sha256(*parts: bytes) -> bytes:
    """SHA-256 of the concatenation of `parts`."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part)
    return h.digest()


def sha256_hex(*parts: bytes) -> str:
    return sha256(*parts).hex()


def framed_hash(*parts: bytes) -> bytes:
    """SHA-256 of length-prefixed parts: no two different part lists share an input."""
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.digest()


def to_bytes(value: bytes | bytearray | memoryview | str, what: str) -> bytes:
    """`value` as bytes (str is UTF-8 encoded); anything else is a TypeError naming `what`."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError(f"{what} must be bytes or str, got {type(value).__name__}")


def encode_payload(value: Any) -> bytes:
    """A chaincode return value as response bytes: bytes as-is, str as UTF-8, None as b"",
    anything else as canonical JSON."""
    if value is None:
        return b""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    try:
        return canonical_json(value)
    except MalformedError as exc:
        raise TypeError(f"chaincode result must be bytes, str or JSON-serializable: {exc}") \
            from None


def encode_arg(arg: Any) -> str | dict[str, str]:
    """A chaincode argument for the proposal: str as-is, bytes as {"hex": ...}."""
    if isinstance(arg, str):
        return arg
    if isinstance(arg, (bytes, bytearray, memoryview)):
        return {"hex": bytes(arg).hex()}
    raise TypeError(f"chaincode arguments must be str or bytes (as in Fabric), got "
                    f"{type(arg).__name__}; encode structured values, e.g. with json.dumps")


def decode_arg(arg: Any) -> str | bytes:
    if isinstance(arg, str):
        return arg
    if isinstance(arg, dict) and set(arg) == {"hex"} and isinstance(arg["hex"], str):
        try:
            return bytes.fromhex(arg["hex"])
        except ValueError:
            pass
    raise MalformedError(f"malformed chaincode argument {str(arg)[:60]}")
