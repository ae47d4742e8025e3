"""One cache of coalition values per round: each coalition evaluated once, needed ones together."""

from __future__ import annotations

import pytest

from fedenv.scoring.coalition_values import CoalitionValues
from fedenv.scoring.contribution import contributions, needed_coalitions

PLAYERS = ["a", "b", "c"]


class Recorder:
    """An ``evaluate_many`` that records each call's coalitions and scores ``len(S)``."""

    def __init__(self) -> None:
        self.calls: list[list[frozenset[str]]] = []

    def __call__(self, coalitions):
        self.calls.append(list(coalitions))
        return [{"score": float(len(c))} for c in coalitions]


def test_methods_prefetch_what_they_need_in_one_call_and_share_the_cache():
    record = Recorder()
    values = CoalitionValues(
        record, known={frozenset(): {"score": 0.5}}, score=lambda r: r["score"]
    )
    assert contributions("loo", PLAYERS, values) == {p: 1.0 for p in PLAYERS}
    assert record.calls == [needed_coalitions("loo", PLAYERS)]  # one call, N and N - {i}
    shapley = contributions("shapley", PLAYERS, values)  # the payout rule, same round
    assert len(record.calls) == 2
    assert len(record.calls[1]) == 2**3 - 1 - 3 - 1  # singletons only: the rest is known
    assert sum(shapley.values()) == pytest.approx(3.0 - 0.5)
    assert values({"a", "b"}) == 2.0 and len(record.calls) == 2  # kept
    assert values.evaluations == 7  # the empty coalition was given


def test_a_plain_function_is_evaluated_once_per_coalition():
    seen = []
    values = CoalitionValues.of(lambda s: seen.append(s) or len(s))
    values.prefetch([frozenset("a"), frozenset("a"), frozenset("ab")])
    assert values("a") == 1.0 and values(["b", "a"]) == 2.0
    assert seen == [frozenset("a"), frozenset("ab")]


def test_needed_coalitions_per_method():
    everyone = frozenset(PLAYERS)
    assert needed_coalitions("tmc_shapley", PLAYERS) == [frozenset(), everyone]
    assert len(set(needed_coalitions("shapley", PLAYERS))) == 8
    assert set(needed_coalitions("loo", PLAYERS)) == {everyone} | {everyone - {p} for p in PLAYERS}


def test_an_evaluator_that_loses_coalitions_is_an_error():
    values = CoalitionValues(lambda coalitions: coalitions[:1])
    with pytest.raises(RuntimeError, match="2 coalitions evaluated into 1"):
        values.prefetch([frozenset("a"), frozenset("b")])


def test_a_rounds_values_come_from_the_engine_in_one_call(test_base, monkeypatch):
    import copy

    from fedenv.data.benchmark import Benchmark
    from fedenv.engine.demo import org_datasets
    from fedenv.engine.federation import FederatedEngine, Participant
    from fedenv.engine.settings import EngineConfig, TrainingSettings
    from fedenv.scoring.coalition_values import RoundCoalitionValues

    model, tokenizer = test_base
    benchmark = Benchmark.generated(tokenizer, ["bank", "clinic"], 1, 0, device="cpu")
    config = EngineConfig(training=TrainingSettings(max_len=64))
    datasets = org_datasets(3, 8, seed=0)
    engine = FederatedEngine(copy.deepcopy(model), tokenizer, datasets, benchmark, config)
    updates = {
        u.org: u
        for u in engine.train_updates([Participant(o, 1) for o in engine.orgs], round_seed=0)
    }
    empty = engine.evaluate_global()
    calls = []
    evaluate = engine.evaluate_coalitions
    monkeypatch.setattr(
        engine, "evaluate_coalitions", lambda cs, **kw: calls.append(len(cs)) or evaluate(cs, **kw)
    )
    values = RoundCoalitionValues(engine, updates, empty)
    loo = contributions("loo", sorted(updates), values)
    assert calls == [len(updates) + 1]
    everyone = frozenset(updates)
    for org in updates:
        alone_out = engine.evaluate_coalition([updates[o] for o in sorted(everyone - {org})])
        assert loo[org] == pytest.approx(values(everyone) - alone_out.score)
    assert values.result(everyone) is values.result(everyone)  # kept, shared
    assert values.evaluations == len(updates) + 1
