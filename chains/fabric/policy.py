"""Endorsement policies: whether a set of signers satisfies a rule tree, in polynomial time.

As in Fabric, one identity satisfies at most one principal, so AND('Org1.peer', 'Org1.peer')
needs two different Org1 peers; unlike Fabric's greedy evaluator, the answer is exact. A policy
is compiled once into its *alternatives*: each is a list of groups "n of these principals", all
to be met by distinct signers, and the policy holds when one alternative does. A gate over
principals only is one group, however large, so OutOf(8, 'Org1.peer' x 16) is one group; only
a choice among nested gates multiplies alternatives, and a policy with more than 1,024 is
refused (`PolicySyntaxError`) when it is parsed. Whether an alternative holds is a maximum flow
(a bipartite matching of principals to signers, grouped): source -> group (capacity n) ->
principal (its multiplicity) -> signer kind (msp, role) it matches -> sink (how many signers of
that kind). Signers enter only as counts per kind, so the cost is polynomial in the policy and
independent of the number of signers.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Sequence
from itertools import combinations, product

from chains.fabric.errors import PolicySyntaxError
from chains.fabric.policy_parser import (
    POLICY_ROLES,
    OutOf,
    Principal,
    Rule,
    parse_policy,
)

__all__ = ["MAX_ALTERNATIVES", "POLICY_ROLES", "EndorsementPolicy", "OutOf", "Principal",
           "parse_policy", "smallest_satisfying"]

MAX_ALTERNATIVES = 1024
Group = tuple[int, tuple[Principal, ...]]   # n of these principals, by distinct signers
Alternative = tuple[Group, ...]            # every group at once, all signers distinct
Kinds = tuple[tuple[tuple[str, str], int], ...]  # ((msp_id, role), count) sorted


class _TooComplex(Exception):
    pass


def _alternatives(rule: Rule) -> list[Alternative]:
    if isinstance(rule, Principal):
        return [((1, (rule,)),)]
    principals = tuple(r for r in rule.rules if isinstance(r, Principal))
    nested = [_alternatives(r) for r in rule.rules if not isinstance(r, Principal)]
    out: list[Alternative] = []
    for k in range(max(0, rule.n - len(principals)), min(rule.n, len(nested)) + 1):
        rest: Alternative = ((rule.n - k, principals),) if rule.n > k else ()
        for chosen in combinations(nested, k):
            for parts in product(*chosen):
                out.append(tuple(g for part in parts for g in part) + rest)
                if len(out) > MAX_ALTERNATIVES:
                    raise _TooComplex
    return out


def _max_flow(graph: dict[object, dict[object, int]], source: object, sink: object) -> int:
    """Edmonds-Karp on a small capacity graph (modified in place)."""
    flow = 0
    while True:
        parent = {source: source}
        queue = deque([source])
        while queue and sink not in parent:
            node = queue.popleft()
            for nxt, cap in graph[node].items():
                if cap > 0 and nxt not in parent:
                    parent[nxt] = node
                    queue.append(nxt)
        if sink not in parent:
            return flow
        path, node = [], sink
        while node is not source:
            path.append((parent[node], node))
            node = parent[node]
        push = min(graph[a][b] for a, b in path)
        for a, b in path:
            graph[a][b] -= push
            graph[b][a] = graph[b].get(a, 0) + push
        flow += push


def _holds(alternative: Alternative, kinds: Kinds) -> bool:
    need = sum(n for n, _ in alternative)
    if need > sum(count for _, count in kinds):
        return False
    source, sink = ("source",), ("sink",)
    graph: dict[object, dict[object, int]] = {source: {}, sink: {}}
    for kind, count in kinds:
        graph[("kind", kind)] = {sink: count}
    for g, (n, principals) in enumerate(alternative):
        group = ("group", g)
        graph[source][group] = n
        graph[group] = {}
        for principal, times in Counter(principals).items():
            node = ("principal", g, principal)
            graph[group][node] = times
            graph[node] = {("kind", kind): need for kind, _ in kinds
                           if principal.matches(*kind)}
    return _max_flow(graph, source, sink) == need


class EndorsementPolicy:
    """A parsed policy; `satisfied_by` answers for a set of signers and remembers the answer."""

    __slots__ = ("_alternatives", "_memo", "rule", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.rule = parse_policy(text)
        try:
            self._alternatives = _alternatives(self.rule)
        except _TooComplex:
            raise PolicySyntaxError(text, 0, f"a policy whose nested choices give at most "
                                             f"{MAX_ALTERNATIVES} alternative sets of signers",
                                    "more") from None
        self._memo: dict[Kinds, bool] = {}

    def satisfied_by(self, signers: Iterable[tuple[str, str]]) -> bool:
        """True when the signers, one (msp_id, role) per distinct identity, satisfy the policy."""
        kinds = tuple(sorted(Counter(signers).items()))
        answer = self._memo.get(kinds)
        if answer is None:
            answer = any(_holds(alt, kinds) for alt in self._alternatives)
            if len(self._memo) < 4096:
                self._memo[kinds] = answer
        return answer

    def principals(self) -> tuple[Principal, ...]:
        """Every principal in the policy, in order of appearance (with repeats)."""
        out: list[Principal] = []
        stack: list[Rule] = [self.rule]
        while stack:
            rule = stack.pop()
            if isinstance(rule, Principal):
                out.append(rule)
            else:
                stack.extend(reversed(rule.rules))
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


def smallest_satisfying(signers: Sequence[tuple[str, str]],
                        policies: Sequence[EndorsementPolicy]) -> tuple[int, ...] | None:
    """Indices of the fewest `signers` that satisfy every policy, earliest first among sets of
    one size (None if even all of them do not). Sets with the same kinds are tried once."""
    for size in range(1, len(signers) + 1):
        tried: set[Kinds] = set()
        for chosen in combinations(range(len(signers)), size):
            picked = [signers[i] for i in chosen]
            kinds = tuple(sorted(Counter(picked).items()))
            if kinds in tried:
                continue
            tried.add(kinds)
            if all(policy.satisfied_by(picked) for policy in policies):
                return chosen
    return None
