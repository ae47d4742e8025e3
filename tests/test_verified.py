"""Each update is validated and re-hashed once, and checked again whenever it may have changed."""

from __future__ import annotations

import copy

import pytest

from fedenv.data.benchmark import Benchmark
from fedenv.engine import verified
from fedenv.engine.demo import org_datasets
from fedenv.engine.federation import FederatedEngine, Participant
from fedenv.engine.lora import LORA_B_SUFFIX, clone_adapter
from fedenv.engine.rounds import ClientUpdate
from fedenv.engine.settings import EngineConfig, LoraSettings, TrainingSettings
from fedenv.errors import InvalidUpdateError


@pytest.fixture
def engine(test_base):
    model, tokenizer = test_base
    benchmark = Benchmark.generated(tokenizer, ["bank", "clinic"], 1, 0, device="cpu")
    training = TrainingSettings(aggregator="ffa", max_len=64)
    config = EngineConfig(lora=LoraSettings(r=2, alpha=4), training=training)
    datasets = org_datasets(3, 12, seed=0)
    return FederatedEngine(copy.deepcopy(model), tokenizer, datasets, benchmark, config)


@pytest.fixture
def hashes(monkeypatch):
    calls = []
    digest = verified.adapter_digest
    monkeypatch.setattr(verified, "adapter_digest", lambda a: calls.append(1) or digest(a))
    return calls


def crafted(update: ClientUpdate) -> ClientUpdate:
    """The same adapter, sent as a new update (as a malicious or remote organization would)."""
    return ClientUpdate.create(
        update.org,
        clone_adapter(update.adapter),
        num_examples=update.num_examples,
        local_steps=update.local_steps,
    )


def test_each_update_is_hashed_at_most_once_per_global_state(engine, hashes):
    trained = engine.train_updates([Participant(o, 1) for o in engine.orgs], round_seed=0)
    assert hashes == []  # the engine hashed its own updates when it made them
    sent = [crafted(u) for u in trained]
    leave_one_out = [sent] + [[u for u in sent if u is not v] for v in sent]
    engine.evaluate_coalitions(leave_one_out, grouped=False)
    assert len(hashes) == len(sent)
    engine.commit(sent)
    assert len(hashes) == len(sent)
    engine.evaluate_coalition(sent[:1])  # a new global state: checked (and hashed) again
    assert len(hashes) == len(sent) + 1


def test_a_verified_update_changed_afterwards_is_checked_again(engine):
    (update,) = engine.train_updates([Participant("bank-0", 1)], round_seed=0)
    engine.evaluate_coalition([update])
    b_key = min(k for k in update.adapter if k.endswith(LORA_B_SUFFIX))
    original = update.adapter[b_key].clone()
    update.adapter[b_key].add_(1.0)  # in place: the tensor's version counter moves
    with pytest.raises(InvalidUpdateError, match="digest"):
        engine.evaluate_coalition([update])
    update.adapter[b_key] = original * 2  # another tensor under the key
    with pytest.raises(InvalidUpdateError, match="digest"):
        engine.commit([update])
    update.adapter[b_key] = original
    engine.evaluate_coalition([update])  # the original values check out again
    update.num_examples = 0
    with pytest.raises(InvalidUpdateError, match="num_examples"):
        engine.evaluate_coalition([update])
