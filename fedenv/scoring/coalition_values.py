"""The coalition values of one round, each evaluated once: the round's one cache of scores.

``value(S)`` is the benchmark score of the aggregate of coalition ``S``'s updates. Scoring a
round needs many of them (leave-one-out ``n + 1``, exact Shapley ``2^n``), the payout rule may
need others of the same round, and the rejection rule one more; :class:`CoalitionValues` keeps
every result it has computed, so each coalition is evaluated once per round, by whichever of
them asks first.

It evaluates through ``evaluate_many``, which scores a list of coalitions in one call, so that
:meth:`CoalitionValues.prefetch` can hand the engine every coalition a method is known to need
at once (:func:`fedenv.scoring.contribution.needed_coalitions`), and the engine can evaluate
them in grouped passes where that pays (``training.grouped``, GPUs). Results may be any objects;
``score`` turns one into the value (``BenchmarkResult.score`` for the engine's results).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fedenv.data.benchmark import BenchmarkResult
    from fedenv.engine.aggregators import AggregationRule
    from fedenv.engine.federation import ClientUpdate, FederatedEngine

Coalition = frozenset[str]


class CoalitionValues:
    """``value(S)`` with every result kept (see the module docstring)."""

    def __init__(
        self,
        evaluate_many: Callable[[list[Coalition]], Sequence[Any]],
        *,
        known: Mapping[Coalition, Any] | None = None,
        score: Callable[[Any], float] = float,
    ) -> None:
        self._evaluate_many = evaluate_many
        self._score = score
        self._results: dict[Coalition, Any] = dict(known or {})
        self._known = len(self._results)

    @classmethod
    def of(cls, value: Callable[[Coalition], float]) -> CoalitionValues:
        """Values from a plain function of one coalition."""
        return cls(lambda coalitions: [value(c) for c in coalitions])

    def prefetch(self, coalitions: Iterable[Coalition]) -> None:
        """Evaluate every coalition not known yet, in one ``evaluate_many`` call."""
        missing = list(dict.fromkeys(frozenset(c) for c in coalitions if c not in self._results))
        if missing:
            results = self._evaluate_many(missing)
            if len(results) != len(missing):
                raise RuntimeError(f"{len(missing)} coalitions evaluated into {len(results)}")
            self._results.update(zip(missing, results))

    def result(self, coalition: Iterable[str]) -> Any:
        """The kept result of ``coalition`` (evaluated now if it is new)."""
        coalition = frozenset(coalition)
        if coalition not in self._results:
            self.prefetch([coalition])
        return self._results[coalition]

    def __call__(self, coalition: Iterable[str]) -> float:
        return float(self._score(self.result(coalition)))

    @property
    def evaluations(self) -> int:
        """Coalitions evaluated here (the ones given as ``known`` do not count)."""
        return len(self._results) - self._known


class RoundCoalitionValues(CoalitionValues):
    """The coalition values of one round's ``updates`` (organization -> ``ClientUpdate``) on the
    engine: ``value(S)`` is the score of the aggregate of ``S``'s updates under ``rule`` (the
    engine's default: data-size weights normalized over ``S``), the empty coalition's result is
    ``empty`` (the current global's), and prefetched coalitions reach
    ``engine.evaluate_coalitions`` together (grouped passes where the engine uses them)."""

    def __init__(
        self,
        engine: FederatedEngine,
        updates: Mapping[str, ClientUpdate],
        empty,
        *,
        rule: AggregationRule | None = None,
    ) -> None:
        self.engine = engine
        self.updates = dict(updates)
        self.rule = rule
        super().__init__(self._evaluate, known={frozenset(): empty}, score=_score)

    def _evaluate(self, coalitions: list[Coalition]) -> list[BenchmarkResult]:
        members = [[self.updates[org] for org in sorted(c)] for c in coalitions]
        return self.engine.evaluate_coalitions(members, rule=self.rule)


def _score(result: BenchmarkResult) -> float:
    return result.score
