"""Fabric's signature-policy syntax, parsed into a small rule tree within fixed bounds.

    AND('Org1.peer', 'Org2.peer')            both
    OR('Org1.member', 'Org2.member')          either
    OutOf(2, 'Org1.peer', 'Org2.peer', 'Org3.peer')
    AND('Org1.admin', OR('Org2.peer', 'Org3.peer'))   nested

A principal is 'MSPID.role' with role one of member, peer, client, admin, orderer ('member' is
any valid identity of the organization). Gate names are case-insensitive (AND/And/and);
principals may use single or double quotes. A policy is at most 16,384 characters, nests at most
16 gates and names at most 512 principals; an OutOf count is a plain decimal between 1 and its
number of rules. Anything else is a `PolicySyntaxError` with the position and what was expected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Union

from chains.fabric.errors import PolicySyntaxError

__all__ = ["MAX_POLICY_CHARS", "MAX_POLICY_DEPTH", "MAX_PRINCIPALS", "POLICY_ROLES", "OutOf",
           "Principal", "Rule", "parse_policy"]

POLICY_ROLES = ("member", "peer", "client", "admin", "orderer")
MAX_POLICY_CHARS = 16_384
MAX_POLICY_DEPTH = 16
MAX_PRINCIPALS = 512
_MSP_ID = re.compile(r"[A-Za-z0-9.\-]+\Z")
_WORD = re.compile(r"[A-Za-z]+")
_COUNT = re.compile(r"[0-9]+")
_TOKEN = re.compile(r"[A-Za-z0-9_.\-]+|.", re.DOTALL)
_GATES = {"and": "AND", "or": "OR", "outof": "OutOf"}


@dataclass(frozen=True)
class Principal:
    """A signer requirement: a valid identity of `msp_id` with `role` ('member' is any role)."""

    msp_id: str
    role: str

    def matches(self, msp_id: str, role: str) -> bool:
        return msp_id == self.msp_id and (self.role == "member" or role == self.role)

    def __str__(self) -> str:
        return f"'{self.msp_id}.{self.role}'"


@dataclass(frozen=True)
class OutOf:
    """At least `n` of `rules` are satisfied, by disjoint sets of signers."""

    n: int
    rules: tuple[Rule, ...]

    def __str__(self) -> str:
        inner = ", ".join(str(r) for r in self.rules)
        if self.n == len(self.rules) and len(self.rules) > 1:
            return f"AND({inner})"
        if self.n == 1:
            return f"OR({inner})"
        return f"OutOf({self.n}, {inner})"


Rule = Union[Principal, OutOf]  # noqa: UP007 (a runtime alias; py3.10 has no `type`)


class _Parser:
    """Recursive descent over the characters of one policy string."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.depth = 0
        self.principals = 0

    def parse(self) -> Rule:
        rule = self.rule()
        self.skip_space()
        if self.pos != len(self.text):
            raise self.error("end of policy")
        return rule

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def found(self, at: int | None = None) -> str:
        at = self.pos if at is None else at
        if at >= len(self.text):
            return "end of string"
        token = _TOKEN.match(self.text, at)
        return repr(token.group(0)[:40])  # type: ignore[union-attr]

    def error(self, expected: str, at: int | None = None, found: str | None = None
              ) -> PolicySyntaxError:
        at = self.pos if at is None else at
        return PolicySyntaxError(self.text, at, expected,
                                 self.found(at) if found is None else found)

    def expect(self, char: str) -> None:
        self.skip_space()
        if self.text.startswith(char, self.pos):
            self.pos += 1
            return
        raise self.error(repr(char))

    def rule(self) -> Rule:
        self.skip_space()
        start = self.pos
        if self.pos < len(self.text) and self.text[self.pos] in "'\"":
            return self.principal()
        word = _WORD.match(self.text, self.pos)
        if word is None or word.group(0).lower() not in _GATES:
            raise self.error("AND(, OR(, OutOf( or a quoted principal 'MSPID.role'")
        if self.depth >= MAX_POLICY_DEPTH:
            raise self.error(f"at most {MAX_POLICY_DEPTH} nested gates")
        self.pos += len(word.group(0))
        gate = _GATES[word.group(0).lower()]
        self.expect("(")
        n: int | None = None
        n_at = 0
        if gate == "OutOf":
            self.skip_space()
            n_at = self.pos
            digits = _COUNT.match(self.text, self.pos)
            if digits is None:
                raise self.error("a count (integer) as OutOf's first argument")
            count = digits.group(0)
            self.pos += len(count)
            n = int(count) if len(count) <= 4 else MAX_PRINCIPALS + 1  # beyond any rule count
            if len(count) > 4:
                count = f"{count[:8]}... ({len(count)} digits)"
            self.expect(",")
        else:
            count = ""
        self.depth += 1
        rules = [self.rule()]
        while True:
            self.skip_space()
            if self.text.startswith(",", self.pos):
                self.pos += 1
                rules.append(self.rule())
            elif self.text.startswith(")", self.pos):
                self.pos += 1
                break
            else:
                raise self.error(f"',' or ')' to continue {gate}( opened at position {start}")
        self.depth -= 1
        if gate == "AND":
            n = len(rules)
        elif gate == "OR":
            n = 1
        assert n is not None
        if not 1 <= n <= len(rules):
            raise self.error(f"a count between 1 and {len(rules)} (the number of rules)",
                             at=n_at, found=count or str(n))
        return OutOf(n, tuple(rules))

    def principal(self) -> Principal:
        start = self.pos
        quote = self.text[self.pos]
        end = self.text.find(quote, self.pos + 1)
        if end < 0:
            raise self.error(f"closing {quote} of the principal", at=len(self.text))
        body = self.text[self.pos + 1:end]
        self.pos = end + 1
        msp_id, dot, role = body.rpartition(".")
        if not dot or not msp_id:
            raise self.error("a principal of the form 'MSPID.role'", at=start,
                             found=repr(body[:40]))
        if not _MSP_ID.match(msp_id):
            raise self.error("an MSP ID of letters, digits, '.' or '-'", at=start + 1,
                             found=repr(msp_id[:40]))
        if role not in POLICY_ROLES:
            raise self.error(f"a role ({', '.join(POLICY_ROLES)})", at=start + 2 + len(msp_id),
                             found=repr(role[:40]))
        self.principals += 1
        if self.principals > MAX_PRINCIPALS:
            raise self.error(f"at most {MAX_PRINCIPALS} principals", at=start)
        return Principal(msp_id, role)


def parse_policy(text: str) -> Rule:
    """The rule tree of a policy string; PolicySyntaxError says where and what was expected."""
    if not isinstance(text, str):
        raise TypeError(f"endorsement policy must be a str, got {type(text).__name__}")
    if len(text) > MAX_POLICY_CHARS:
        raise PolicySyntaxError(text, MAX_POLICY_CHARS, f"at most {MAX_POLICY_CHARS} characters",
                                f"{len(text)} characters")
    return _Parser(text).parse()
