"""Grouped coalition evaluation (every coalition of a round in shared passes) against merged."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch

from fedenv.data.benchmark import Benchmark
from fedenv.engine import coalitions
from fedenv.engine.demo import org_datasets
from fedenv.engine.federation import FederatedEngine, Participant
from fedenv.engine.settings import EngineConfig, LoraSettings, TrainingSettings

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def world(test_base):
    model, tokenizer = test_base
    benchmark = Benchmark.generated(
        tokenizer, ["bank", "clinic", "insurance"], 2, 0, batch_size=4, device="cpu"
    )
    return model, tokenizer, org_datasets(3, 16, seed=0), benchmark


def make_engine(world, aggregator: str) -> FederatedEngine:
    model, tokenizer, datasets, benchmark = world
    lora = LoraSettings(r=4, alpha=8, target_modules=("q_proj", "v_proj", "up_proj"))
    training = TrainingSettings(aggregator=aggregator, learning_rate=2e-2, max_len=64, batch_size=4)
    config = EngineConfig(lora=lora, training=training)
    return FederatedEngine(copy.deepcopy(model), tokenizer, datasets, benchmark, config)


def all_coalitions(updates):
    return [list(c) for n in range(len(updates) + 1) for c in itertools.combinations(updates, n)]


def assert_close(one, other):
    assert abs(one.score - other.score) < TOLERANCE
    assert one.domains.keys() == other.domains.keys()
    for domain, result in one.domains.items():
        twin = other.domains[domain]
        assert abs(result.nll - twin.nll) < TOLERANCE
        assert result.fact_accuracy == twin.fact_accuracy or (
            result.fact_accuracy != result.fact_accuracy  # both nan: no probes
            and twin.fact_accuracy != twin.fact_accuracy
        )


@pytest.mark.parametrize("aggregator", ["fedavg", "ffa", "flora"])
def test_grouped_coalitions_equal_merged_ones(world, aggregator, monkeypatch):
    engine = make_engine(world, aggregator)
    engine.commit(engine.train_updates([Participant(o, 2) for o in engine.orgs], round_seed=0))
    updates = engine.train_updates(
        [Participant("bank-0", 3), Participant("clinic-1", 1, 0.5), Participant("insurance-2", 2)],
        round_seed=1,
    )
    state = {k: v.clone() for k, v in engine.model.state_dict().items()}
    subsets = all_coalitions(updates)
    monkeypatch.setattr(coalitions, "GROUPED_POSITIONS", 1)  # one coalition per pass
    merged = engine.evaluate_coalitions(subsets, grouped=False)
    monkeypatch.setattr(coalitions, "GROUPED_POSITIONS", 3 * 4 * 64)  # three per pass
    grouped = engine.evaluate_coalitions(subsets, grouped=True)
    monkeypatch.setattr(coalitions, "GROUPED_POSITIONS", 1 << 20)  # all in one pass
    in_one_pass = engine.evaluate_coalitions(subsets, grouped=True)
    for one, other, third in zip(merged, grouped, in_one_pass):
        assert_close(one, other)
        assert_close(one, third)
    assert len({round(r.score, 6) for r in merged}) > len(subsets) // 2  # they really differ
    assert all(torch.equal(v, state[k]) for k, v in engine.model.state_dict().items())


def test_evaluate_copies_of_a_plain_model_repeat_its_result(world):
    model, _, _, benchmark = world
    single = benchmark.evaluate(model)
    copies = benchmark.evaluate_copies(model, 3)
    assert len(copies) == 3
    for result in copies:
        assert_close(single, result)
