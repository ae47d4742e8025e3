"""training.compile: the compiled engine trains and scores like the eager one; a failed compile
falls back to eager with a warning."""

from __future__ import annotations

import copy

import pytest
import torch

from fedenv.data.benchmark import Benchmark
from fedenv.engine import compiled
from fedenv.engine.compiled import CompiledCall
from fedenv.engine.demo import org_datasets
from fedenv.engine.federation import FederatedEngine, Participant
from fedenv.engine.settings import EngineConfig, LoraSettings, TrainingSettings


def make_engine(test_base, *, compile_: bool) -> FederatedEngine:
    model, tokenizer = test_base
    benchmark = Benchmark.generated(tokenizer, ["bank", "clinic"], 1, 0, device="cpu")
    training = TrainingSettings(learning_rate=1e-3, max_len=64, batch_size=4, compile=compile_)
    config = EngineConfig(lora=LoraSettings(r=4, alpha=8), training=training)
    datasets = org_datasets(2, 12, seed=0)
    return FederatedEngine(copy.deepcopy(model), tokenizer, datasets, benchmark, config)


def test_a_compiled_engine_trains_and_scores_like_an_eager_one(test_base, recwarn):
    eager, fast = make_engine(test_base, compile_=False), make_engine(test_base, compile_=True)
    participants = [Participant("bank-0", 3), Participant("clinic-1", 2, 0.5)]
    for round_seed in (0, 1):  # the second round runs the compiled code without compiling
        expected = eager.train_updates(participants, round_seed=round_seed)
        got = fast.train_updates(participants, round_seed=round_seed)
        for one, other in zip(expected, got):
            assert abs(one.train_loss - other.train_loss) < 1e-4
            worst = max(float((one.adapter[k] - other.adapter[k]).abs().max()) for k in one.adapter)
            assert worst < 1e-4
        score = eager.evaluate_coalition(expected).score
        assert abs(fast.evaluate_coalition(got).score - score) < 1e-4
    assert fast._compiled.enabled, [str(w.message) for w in recwarn]
    assert not fast.model.training


def test_a_failed_compile_falls_back_to_eager(monkeypatch):
    def broken_compile(function, **kwargs):
        def call(*args, **kw):
            raise RuntimeError("no C++ compiler")

        return call

    monkeypatch.setattr(compiled.torch, "compile", broken_compile)
    layer = torch.nn.Linear(3, 2)
    call = CompiledCall(layer, enabled=True)
    x = torch.ones(1, 3)
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler"):
        assert torch.equal(call(x), layer(x))
    assert not call.enabled
    assert torch.equal(call(x), layer(x))  # eager from now on, silently
    with pytest.raises(RuntimeError, match="mat1 and mat2"):  # a real error is still raised
        CompiledCall(layer, enabled=True)(torch.ones(1, 4))
