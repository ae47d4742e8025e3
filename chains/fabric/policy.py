"""Endorsement policies in Fabric's signature-policy syntax, parsed and evaluated.

    AND('Org1.peer', 'Org2.peer')            both
    OR('Org1.member', 'Org2.member')          either
    OutOf(2, 'Org1.peer', 'Org2.peer', 'Org3.peer')
    AND('Org1.admin', OR('Org2.peer', 'Org3.peer'))   nested

A principal is 'MSPID.role' with role one of member, peer, client, admin, orderer ('member' is
any valid identity of the organization). As in Fabric, one identity satisfies at most one
principal, so AND('Org1.peer', 'Org1.peer') needs two different Org1 peers. Gate names are
case-insensitive (AND/And/and); principals may use single or double quotes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Union

from chains.fabric.errors import PolicySyntaxError

__all__ = ["POLICY_ROLES", "EndorsementPolicy", "OutOf", "Principal", "parse_policy"]

POLICY_ROLES = ("member", "peer", "client", "admin", "orderer")
_MSP_ID = re.compile(r"[A-Za-z0-9.\-]+\Z")
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
        token = re.match(r"[A-Za-z0-9_.\-]+|.", self.text[at:], re.DOTALL)
        return repr(token.group(0))  # type: ignore[union-attr]

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
        word = re.match(r"[A-Za-z]+", self.text[self.pos:])
        if word is None or word.group(0).lower() not in _GATES:
            raise self.error("AND(, OR(, OutOf( or a quoted principal 'MSPID.role'")
        self.pos += len(word.group(0))
        gate = _GATES[word.group(0).lower()]
        self.expect("(")
        n: int | None = None
        n_at = 0
        if gate == "OutOf":
            self.skip_space()
            n_at = self.pos
            digits = re.match(r"\d+", self.text[self.pos:])
            if digits is None:
                raise self.error("a count (integer) as OutOf's first argument")
            n = int(digits.group(0))
            self.pos += len(digits.group(0))
            self.expect(",")
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
        if gate == "AND":
            n = len(rules)
        elif gate == "OR":
            n = 1
        assert n is not None
        if not 1 <= n <= len(rules):
            raise self.error(f"a count between 1 and {len(rules)} (the number of rules)",
                             at=n_at, found=str(n))
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
            raise self.error("a principal of the form 'MSPID.role'", at=start, found=repr(body))
        if not _MSP_ID.match(msp_id):
            raise self.error("an MSP ID of letters, digits, '.' or '-'", at=start + 1,
                             found=repr(msp_id))
        if role not in POLICY_ROLES:
            raise self.error(f"a role ({', '.join(POLICY_ROLES)})", at=start + 2 + len(msp_id),
                             found=repr(role))
        return Principal(msp_id, role)


def parse_policy(text: str) -> Rule:
    """The rule tree of a policy string; PolicySyntaxError says where and what was expected."""
    if not isinstance(text, str):
        raise TypeError(f"endorsement policy must be a str, got {type(text).__name__}")
    return _Parser(text).parse()


def _uses(rule: Rule, signers: tuple[tuple[str, str], ...], free: int) -> Iterator[int]:
    """Bit masks of the signers that satisfy `rule` using only signers in `free`."""
    if isinstance(rule, Principal):
        for i, (msp_id, role) in enumerate(signers):
            if free >> i & 1 and rule.matches(msp_id, role):
                yield 1 << i
        return

    def pick(start: int, need: int, available: int) -> Iterator[int]:
        if need == 0:
            yield 0
            return
        for j in range(start, len(rule.rules) - need + 1):
            for used in _uses(rule.rules[j], signers, available):
                for rest in pick(j + 1, need - 1, available & ~used):
                    yield used | rest

    yield from pick(0, rule.n, free)


class EndorsementPolicy:
    """A parsed policy; `satisfied_by` answers for a set of signers and remembers the answer."""

    __slots__ = ("_memo", "rule", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.rule = parse_policy(text)
        self._memo: dict[tuple[tuple[str, str], ...], bool] = {}

    def satisfied_by(self, signers: Iterable[tuple[str, str]]) -> bool:
        """True when the signers, one (msp_id, role) per distinct identity, satisfy the policy."""
        key = tuple(sorted(signers))
        answer = self._memo.get(key)
        if answer is None:
            answer = next(_uses(self.rule, key, (1 << len(key)) - 1), None) is not None
            if len(self._memo) < 4096:
                self._memo[key] = answer
        return answer

    def principals(self) -> tuple[Principal, ...]:
        """Every principal in the policy, in order of appearance (with repeats)."""
        out: list[Principal] = []

        def walk(rule: Rule) -> None:
            if isinstance(rule, Principal):
                out.append(rule)
            else:
                for child in rule.rules:
                    walk(child)

        walk(self.rule)
        return tuple(out)

    def msp_ids(self) -> frozenset[str]:
        return frozenset(p.msp_id for p in self.principals())

    def is_single_signer(self) -> bool:
        """True for a principal or an OR of principals: every principal alone satisfies it."""
        rule = self.rule
        return isinstance(rule, Principal) or (
            rule.n == 1 and all(isinstance(r, Principal) for r in rule.rules))

    def __str__(self) -> str:
        return str(self.rule)

    def __repr__(self) -> str:
        return f"EndorsementPolicy({str(self.rule)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EndorsementPolicy) and other.rule == self.rule

    def __hash__(self) -> int:
        return hash(self.rule)
