"""The one canonical JSON of `chains` (and of fedenv): what every hashed or signed structure is.

`canonical_json(obj)` follows RFC 8785 (JSON Canonicalization Scheme) in spirit: object keys
sorted, no whitespace, UTF-8 (not ASCII escapes), no NaN or infinities, integers only within
+-(2**53 - 1) (beyond it JSON numbers are not portable: a clear error says so), and nesting at
most `max_depth` levels. Two differences from RFC 8785, both outside what ledgers hold: keys are
sorted by code point (RFC 8785 sorts by UTF-16 code units; the orders differ only for keys that
mix characters above U+FFFF with characters in U+E000-U+FFFF), and a float is written as Python's
shortest round-trip repr (ECMAScript writes 1e16 as 10000000000000000 and 1e-5 as 0.00001).

`parse_json(data, max_bytes=...)` is the strict reader of untrusted bytes: size first, then
strict UTF-8, JSON without NaN/Infinity, integers in the safe range, bounded depth (measured
before json's recursive decoder ever sees deep input); every failure is a `MalformedError`. `parse_canonical` also
requires the bytes to be exactly the canonical encoding of what they parse to, so one value has
one byte string (no duplicate keys, no spaces, no escapes where UTF-8 is meant).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from chains.errors import MalformedError

__all__ = ["DEFAULT_MAX_DEPTH", "MAX_SAFE_INTEGER", "canonical_json", "encode_parsed",
           "parse_canonical", "parse_json"]

MAX_SAFE_INTEGER = 2**53 - 1
DEFAULT_MAX_DEPTH = 32
_MAX_INT_DIGITS = len(str(MAX_SAFE_INTEGER)) + 1  # a sign, then at most 16 digits
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                            allow_nan=False)  # one instance: json.dumps would build one a call
_SAFE_OPENERS = 500  # json cannot recurse deeper than this many [ and { : no scan needed
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)  # unrolled: runs in one step
_BRACKET = re.compile(r"[\[\]{}]")


def _nesting(text: str) -> int:
    """How deep the arrays and objects of JSON text nest, found without parsing it (json's
    C decoder recurses per level, and a raised recursion limit would let it overflow the C
    stack on hostile input)."""
    if text.count("[") + text.count("{") <= 1:
        return 1
    depth = deepest = 0
    for bracket in _BRACKET.findall(_STRING.sub("", text)):
        if bracket in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


class _Bad(Exception):
    """Raised inside the walk; the frames on the way out prefix where it happened."""

    def __init__(self, where: str, problem: str) -> None:
        self.where, self.problem = where, problem


_SCALARS = (str, bool, type(None))


def _scalar(value: Any) -> bool:
    """True for a JSON scalar that is fine as it is; _Bad for a number JSON cannot keep."""
    kind = type(value)
    if kind in _SCALARS:
        return True
    if kind is int:
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return True
        raise _Bad("", f"integer {value} is outside +-(2**53 - 1), the range JSON keeps exact")
    if kind is float:
        if math.isfinite(value):
            return True
        raise _Bad("", f"{value} is not a finite number")
    return False


def _check(value: Any, depth: int, max_depth: int) -> None:
    """_Bad unless `value` is JSON with safe integers, finite floats, str keys, at most
    `max_depth` levels of arrays and objects. Scalars are checked inline (the common case)."""
    kind = type(value)
    if kind is dict or kind is list or kind is tuple:
        if depth >= max_depth:
            raise _Bad("", f"nests deeper than {max_depth} levels")
        pairs = value.items() if kind is dict else enumerate(value)
        for key, item in pairs:
            if kind is dict and type(key) is not str:
                raise _Bad("", f"has a non-string key {key!r}")
            try:
                if not _scalar(item):
                    _check(item, depth + 1, max_depth)
            except _Bad as bad:
                where = f".{key}" if kind is dict else f"[{key}]"
                raise _Bad(f"{where}{bad.where}", bad.problem) from None
        return
    if _scalar(value):
        return
    for base, convert in ((str, str), (int, int), (float, float), (dict, dict), (list, list),
                          (tuple, list)):  # subclasses (bool is handled)
        if isinstance(value, base):
            return _check(convert(value), depth, max_depth)
    raise _Bad("", f"has type {type(value).__name__}, which JSON cannot hold")


def canonical_json(obj: Any, *, max_depth: int = DEFAULT_MAX_DEPTH, what: str = "value") -> bytes:
    """The canonical bytes of `obj` (see the module doc); MalformedError names what cannot be
    encoded and where (e.g. "value.payload.loss nan is not a finite number"; `what` names the
    root)."""
    try:
        _check(obj, 0, max_depth)
        return _ENCODER.encode(obj).encode("utf-8")
    except _Bad as bad:
        raise MalformedError(f"{what}{bad.where} {bad.problem}") from None
    except UnicodeEncodeError as exc:
        raise MalformedError(f"{what} holds text that is not valid Unicode ({exc.reason})") \
            from None
    except (TypeError, ValueError, RecursionError) as exc:  # e.g. a dict subclass misbehaving
        raise MalformedError(f"{what} cannot be encoded as JSON ({exc})") from None


def encode_parsed(value: Any) -> bytes:
    """`canonical_json` of a value `parse_json` returned (or part of one), whose types and depth
    are known good: the same bytes, without walking it again."""
    return _ENCODER.encode(value).encode("utf-8")


def _parse_int(text: str) -> int:
    value = int(text) if len(text) <= _MAX_INT_DIGITS else None
    if value is None or abs(value) > MAX_SAFE_INTEGER:
        shown = text if len(text) <= 24 else f"{text[:24]}... ({len(text)} digits)"
        raise MalformedError(f"integer {shown} is outside +-(2**53 - 1)")
    return value


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise MalformedError(f"number {text[:24]} is not finite")
    return value


def _parse_constant(text: str) -> Any:
    raise MalformedError(f"{text} is not JSON")


def parse_json(data: bytes, *, max_bytes: int, max_depth: int = DEFAULT_MAX_DEPTH,
               what: str = "JSON") -> Any:
    """Strictly parse untrusted bytes (see the module doc); MalformedError says what is wrong."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise MalformedError(f"{what} must be bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise MalformedError(f"{what} is {len(data)} bytes; the limit is {max_bytes}")
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedError(f"{what} is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    if text.count("[") + text.count("{") > _SAFE_OPENERS and _nesting(text) > max_depth:
        raise MalformedError(f"{what} nests deeper than {max_depth} levels")
    try:
        value = json.loads(text, parse_int=_parse_int, parse_float=_parse_float,
                           parse_constant=_parse_constant)
        _check(value, 0, max_depth)
    except MalformedError as exc:
        raise MalformedError(f"{what}: {exc}") from None
    except RecursionError:
        raise MalformedError(f"{what} nests deeper than {max_depth} levels") from None
    except _Bad as bad:
        raise MalformedError(f"{what}{bad.where} {bad.problem}") from None
    except ValueError as exc:
        raise MalformedError(f"{what} is not JSON ({exc})") from None
    return value


def parse_canonical(data: bytes, *, max_bytes: int, max_depth: int = DEFAULT_MAX_DEPTH,
                    what: str = "JSON") -> Any:
    """`parse_json`, and the bytes must be the canonical encoding of the value they hold."""
    value = parse_json(data, max_bytes=max_bytes, max_depth=max_depth, what=what)
    try:
        same = encode_parsed(value) == bytes(data)
    except UnicodeEncodeError:  # a lone surrogate from a \ud800 escape
        raise MalformedError(f"{what} holds text that is not valid Unicode") from None
    if not same:
        raise MalformedError(f"{what} is not in canonical JSON form")
    return value
