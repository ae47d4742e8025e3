"""The one canonical JSON of chains: RFC 8785 style bytes out, strict and bounded parsing in."""

from __future__ import annotations

import sys

import pytest

from chains.canonical import MAX_SAFE_INTEGER, canonical_json, parse_canonical, parse_json
from chains.errors import ChainsError, MalformedError


def test_sorted_keys_no_whitespace_utf8_not_escapes():
    assert canonical_json({"b": [1, 2.5, True, None], "a": "é€😀", "A": {}}) == \
        '{"A":{},"a":"é€😀","b":[1,2.5,true,null]}'.encode()
    assert canonical_json("\x00\n\"\\") == b'"\\u0000\\n\\"\\\\"'  # JSON's mandatory escapes
    assert canonical_json((1, 2)) == b"[1,2]"
    assert canonical_json([MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER]) == \
        b"[9007199254740991,-9007199254740991]"


@pytest.mark.parametrize("value, problem", [
    (float("nan"), "not a finite number"), (float("inf"), "not a finite number"),
    (2**53, "outside"), (-(2**53), "outside"), ({1: "x"}, "non-string key"),
    ({"x": b"bytes"}, "has type bytes"), ({"x": {1, 2}}, "has type set"),
    ("\ud800", "not valid Unicode"), ([[[[[[[[[[1]]]]]]]]]], "deeper than 4"),
])
def test_what_cannot_be_encoded_is_named(value, problem):
    with pytest.raises(MalformedError, match=problem) as err:
        canonical_json(value, max_depth=4)
    assert isinstance(err.value, ChainsError) and isinstance(err.value, ValueError)


def test_the_error_says_where():
    with pytest.raises(MalformedError, match=r"payload\.rows\[1\]\.loss nan is not"):
        canonical_json({"rows": [{}, {"loss": float("nan")}]}, what="payload")


@pytest.mark.parametrize("data, problem", [
    (b"\xff", "not UTF-8"), (b'"\xed\xa0\x80"', "not UTF-8"),  # an encoded surrogate
    (b"\xef\xbb\xbf{}", "not JSON"), (b"NaN", "NaN is not JSON"), (b"[Infinity]", "not JSON"),
    (b"1e400", "not finite"), (b"9" * 20, "outside"), (b"{", "not JSON"),
    (b'{"a":1,"a":2}', "canonical"), (b'{"b":1,"a":2}', "canonical"), (b"[1, 2]", "canonical"),
    (b'"\\u00e9"', "canonical"), (b"1.50", "canonical"), (b"-0", "canonical"),
    (b" 1", "canonical"), (b"x" * 2000, "limit is 1000"),
])
def test_strict_parsing_of_untrusted_bytes(data, problem):
    with pytest.raises(MalformedError, match=problem):
        parse_canonical(data, max_bytes=1000)


def test_deep_input_is_refused_before_json_recurses():
    # Some libraries (web3 among them) raise the recursion limit, after which json's C decoder
    # would overflow the C stack on deep input: depth is measured before it runs.
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(100_000)
    try:
        for data in (b"[" * 1_000_000, b'{"a":' * 300_000, b"[" * 50 + b"]" * 50):
            with pytest.raises(MalformedError, match="nests deeper than 32"):
                parse_json(data, max_bytes=10**7)
    finally:
        sys.setrecursionlimit(old)
    inside = "[" * 40 + '\\"' + "{" * 40
    found = parse_json(f'["{inside}"]'.encode(), max_bytes=200)  # strings do not nest
    assert found == ["[" * 40 + '"' + "{" * 40]


def test_round_trip():
    value = {"k": [1, -2, 0.5, "s", None, False, {"n": {}}]}
    assert parse_canonical(canonical_json(value), max_bytes=100) == value
