"""Grouped local training (all participants in shared passes) against one-at-a-time training."""

from __future__ import annotations

import copy

import pytest
import torch

from fedenv.data.benchmark import Benchmark
from fedenv.engine.demo import org_datasets
from fedenv.engine.federation import FederatedEngine, Participant
from fedenv.engine.settings import EngineConfig, LoraSettings, TrainingSettings
from fedenv.errors import ConfigError

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def world(test_base):
    model, tokenizer = test_base
    benchmark = Benchmark.generated(tokenizer, ["bank", "clinic"], 1, 0, device="cpu")
    return model, tokenizer, org_datasets(3, 20, seed=0), benchmark


def make_engine(world, aggregator="fedavg", lora=None) -> FederatedEngine:
    model, tokenizer, datasets, benchmark = world
    lora = lora or LoraSettings(r=4, alpha=8, target_modules=("q_proj", "v_proj", "down_proj"))
    # lr 1e-3: AdamW's first steps move every weight by about lr * sign(gradient), so rounding
    # in a near-zero gradient can move a weight by up to lr; at 1e-3 that stays below 1e-5.
    training = TrainingSettings(aggregator=aggregator, learning_rate=1e-3, max_len=64, batch_size=4)
    config = EngineConfig(lora=lora, training=training)
    return FederatedEngine(copy.deepcopy(model), tokenizer, datasets, benchmark, config)


MIXED = [("bank-0", 1, 0.5), ("clinic-1", 3, 1.0), ("insurance-2", 2, 1.0)]


@pytest.mark.parametrize("aggregator", ["fedavg", "ffa", "flora"])
def test_grouped_training_equals_one_at_a_time(world, aggregator):
    engine = make_engine(world, aggregator)
    engine.commit(engine.train_updates([Participant(o, 1) for o in engine.orgs], round_seed=9))
    participants = [Participant(org, steps, share) for org, steps, share in MIXED]
    alone = engine.train_updates(participants, round_seed=3, grouped=False)
    together = engine.train_updates(participants, round_seed=3, grouped=True)
    assert [u.org for u in together] == [u.org for u in alone]
    for one, other in zip(alone, together):
        assert (one.num_examples, one.local_steps) == (other.num_examples, other.local_steps)
        assert abs(one.train_loss - other.train_loss) < TOLERANCE
        assert one.adapter.keys() == other.adapter.keys()
        worst = max(float((one.adapter[k] - other.adapter[k]).abs().max()) for k in one.adapter)
        assert worst < TOLERANCE, f"{one.org}: adapters differ by {worst}"
        moved = max(
            float((one.adapter[k] - engine.global_adapter[k]).abs().max()) for k in one.adapter
        )
        assert moved > 50 * TOLERANCE  # they really trained (a step moves a weight by ~lr)


def test_grouped_training_is_deterministic_and_leaves_the_model(world):
    engine = make_engine(world)
    state = {k: v.clone() for k, v in engine.model.state_dict().items()}
    participants = [Participant(org, steps, share) for org, steps, share in MIXED]
    first = engine.train_updates(participants, round_seed=1, grouped=True)
    second = engine.train_updates(participants, round_seed=1, grouped=True)
    assert [u.digest for u in first] == [u.digest for u in second]
    assert all(torch.equal(v, state[k]) for k, v in engine.model.state_dict().items())
    assert not engine.model.training
    assert all(p.grad is None for p in engine.model.parameters())


def test_grouped_training_refuses_dropout(world):
    lora = LoraSettings(r=4, alpha=8, dropout=0.1)
    engine = make_engine(world, lora=lora)
    assert not engine.grouped_default
    with pytest.raises(ConfigError, match="dropout") as info:
        engine.train_updates([Participant("bank-0", 1)], round_seed=0, grouped=True)
    assert info.value.field == "grouped"


def test_the_grouped_setting_decides_the_default(world):
    assert not make_engine(world).grouped_default  # auto: CUDA only
    model, tokenizer, datasets, benchmark = world
    for setting, expected in (("on", True), ("off", False)):
        config = EngineConfig(training=TrainingSettings(grouped=setting, max_len=64))
        engine = FederatedEngine(copy.deepcopy(model), tokenizer, datasets, benchmark, config)
        assert engine.grouped_default is expected
    config = EngineConfig(lora=LoraSettings(dropout=0.1), training=TrainingSettings(grouped="on"))
    with pytest.raises(ConfigError, match="dropout") as info:
        FederatedEngine(copy.deepcopy(model), tokenizer, datasets, benchmark, config)
    assert info.value.field == "training.grouped"
