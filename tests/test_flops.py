"""FLOP counts from the model config against torch's own FLOP counter on the real model."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from fedenv.data.benchmark import Benchmark
from fedenv.engine.flops import (
    DecoderShape,
    causal_pairs,
    evaluation_flops,
    forward_flops,
    local_step_flops,
)
from fedenv.engine.local_training import attach_lora
from fedenv.engine.settings import LoraSettings


def matmul_flops(function) -> int:
    """FLOPs of the matrix products ``function`` runs (attention kernels are not counted on the
    CPU by torch's counter, so ``attention`` is compared separately)."""
    with FlopCounterMode(display=False) as counter:
        function()
    counts = counter.get_flop_counts()["Global"]
    return sum(v for k, v in counts.items() if "mm" in str(k))


@pytest.mark.parametrize(
    "targets",
    [("q_proj", "v_proj"), ("q_proj", "v_proj", "up_proj", "down_proj"), ("up_proj", "down_proj")],
)
def test_local_step_projections_match_torchs_counter(test_base, targets):
    model, _ = test_base
    peft_model, parameters = attach_lora(
        copy.deepcopy(model), LoraSettings(r=4, target_modules=targets)
    )
    for parameter in parameters.values():
        parameter.requires_grad_(True)
    shape = DecoderShape.of(model.config)
    rows, width = 3, 40
    ids = torch.randint(3, model.config.vocab_size, (rows, width))

    def step():
        peft_model(input_ids=ids, labels=ids, use_cache=False).loss.backward()

    counted = local_step_flops(
        shape, [width] * rows, lora_ranks=dict.fromkeys(targets, 4), width=width
    )
    assert counted.projections == matmul_flops(step)
    assert counted.attention > 0


def test_forward_and_evaluation_counts(test_base):
    model, tokenizer = test_base
    shape = DecoderShape.of(model.config)
    ids = torch.randint(3, model.config.vocab_size, (2, 30))
    with torch.no_grad():
        torch_count = matmul_flops(lambda: model(input_ids=ids, use_cache=False))
    assert forward_flops(shape, 60, 0).projections == torch_count
    assert causal_pairs([1, 2, 3]) == 1 + 3 + 6
    benchmark = Benchmark.generated(tokenizer, ["bank", "telecom"], 2, 0, device="cpu")
    executed = evaluation_flops(shape, benchmark, executed=True)
    with torch.no_grad():
        assert executed.projections == matmul_flops(lambda: benchmark.evaluate(model))
    useful = evaluation_flops(shape, benchmark)
    assert 0 < useful.projections < executed.projections
    assert 0 < useful.attention < executed.attention
    work = benchmark.workload[0]
    assert work.tokens <= work.rows * work.width and work.scored <= work.tokens


def test_shape_reads_grouped_query_configs():
    from transformers import LlamaConfig

    config = LlamaConfig(
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=8,
        num_key_value_heads=2,
        vocab_size=100,
    )
    shape = DecoderShape.of(config)
    assert (shape.head_dim, shape.kv_heads) == (8, 2)
    assert shape.projections()["k_proj"] == (64, 16)
    assert (
        shape.parameters_in_projections == 2 * (64 * 64 * 2 + 64 * 16 * 2 + 3 * 64 * 96) + 64 * 100
    )
