"""Floating-point operations of a local LoRA step and of a benchmark forward, from the model config.

Counted for Llama-architecture decoders (the embedded presets, and most Hugging Face causal LMs):
per layer the projections ``q_proj k_proj v_proj o_proj gate_proj up_proj down_proj`` and the
attention core, then ``lm_head``. A matrix product of ``[T, in] x [in, out]`` is ``2 T in out``
FLOPs; elementwise work (norms, rotary, SiLU, softmax, the optimizer) is not counted, as in the
usual model-FLOPs utilization (PaLM, nanoGPT).

- **Forward**: every projection on every token (``2 T in out``), every LoRA pair on the tokens of
  its module (``2 T r (in + out)``), and the attention core: ``QK^T`` and ``PV`` cost
  ``4 * heads * head_dim`` per attended (query, key) pair.
- **Backward with a frozen base** (what :class:`~fedenv.engine.local_training.LocalTrainer`
  runs): no weight gradient for base weights; the input gradient of a projection (``2 T in out``)
  only where its input depends on a trainable parameter (in the first layer, ``q/k/v_proj`` read
  the embeddings, which need no gradient); each LoRA pair's weight gradients and input gradient
  (``4 T r (in + out)``); the attention core twice its forward where its inputs need gradients.

``tokens`` and ``pairs`` say which work counts: :func:`local_step_flops` of a batch counts its
real tokens and causal pairs ("model FLOPs": padding is waste, not work); pass the padded
width to get what the kernels execute (``tests/test_flops.py`` checks that count against
``torch.utils.flop_counter`` on the real model).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fedenv.data.benchmark import Benchmark

ATTENTION_INPUTS = ("q_proj", "k_proj", "v_proj")
MLP_INPUTS = ("gate_proj", "up_proj")


@dataclass(frozen=True)
class DecoderShape:
    """The sizes that decide a Llama decoder's FLOPs."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int

    @classmethod
    def of(cls, config) -> DecoderShape:
        """From a transformers config (``LlamaConfig`` and alikes)."""
        heads = config.num_attention_heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        return cls(
            hidden=config.hidden_size,
            intermediate=config.intermediate_size,
            layers=config.num_hidden_layers,
            heads=heads,
            kv_heads=getattr(config, "num_key_value_heads", None) or heads,
            head_dim=head_dim,
            vocab=config.vocab_size,
        )

    def projections(self) -> dict[str, tuple[int, int]]:
        """``name -> (in, out)`` of one layer's projections."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        h, i = self.hidden, self.intermediate
        return {
            "q_proj": (h, q),
            "k_proj": (h, kv),
            "v_proj": (h, kv),
            "o_proj": (q, h),
            "gate_proj": (h, i),
            "up_proj": (h, i),
            "down_proj": (i, h),
        }

    @property
    def parameters_in_projections(self) -> int:
        """Weights that every token multiplies: the layers' projections and ``lm_head``."""
        per_layer = sum(i * o for i, o in self.projections().values())
        return self.layers * per_layer + self.hidden * self.vocab


@dataclass(frozen=True)
class FlopCount:
    """FLOPs of one pass, split into matrix products of projections and the attention core."""

    projections: float
    attention: float

    @property
    def total(self) -> float:
        return self.projections + self.attention


def causal_pairs(lengths: Sequence[int]) -> int:
    """Attended (query, key) pairs of causal rows of these lengths."""
    return sum(n * (n + 1) // 2 for n in lengths)


def forward_flops(
    shape: DecoderShape,
    tokens: int,
    pairs: int,
    *,
    lora_ranks: Mapping[str, int] | None = None,
    logit_tokens: int | None = None,
) -> FlopCount:
    """One forward pass over ``tokens`` positions with ``pairs`` attended pairs in all.

    ``lora_ranks`` maps target module names (``"q_proj"``, ...) to the rank of their adapter;
    ``logit_tokens`` (default ``tokens``) is how many positions go through ``lm_head``."""
    lora_ranks = lora_ranks or {}
    per_token = 0
    for name, (fan_in, fan_out) in shape.projections().items():
        per_token += fan_in * fan_out + lora_ranks.get(name, 0) * (fan_in + fan_out)
    projections = 2.0 * tokens * shape.layers * per_token
    projections += (
        2.0 * (tokens if logit_tokens is None else logit_tokens) * shape.hidden * shape.vocab
    )
    attention = 4.0 * shape.layers * shape.heads * shape.head_dim * pairs
    return FlopCount(projections, attention)


def backward_flops(
    shape: DecoderShape, tokens: int, pairs: int, *, lora_ranks: Mapping[str, int]
) -> FlopCount:
    """The backward pass of a LoRA step with frozen base weights (see the module docstring)."""
    projections = shape.projections()
    macs = 0  # multiply-accumulates per token in projections and LoRA pairs
    attention = 0.0

    def stage(names: Sequence[str], input_grad: bool) -> bool:
        """Add one stage's backward; return whether its outputs need gradients."""
        nonlocal macs
        produced = input_grad
        for name in names:
            fan_in, fan_out = projections[name]
            rank = lora_ranks.get(name, 0)
            # LoRA: dB = dy^T h, dh = dy B, dA = dh^T x (always), dx = dh A (if x needs it)
            macs += rank * (2 * fan_out + fan_in)
            if input_grad:
                macs += fan_in * fan_out + rank * fan_in
            produced = produced or rank > 0
        return produced

    stream = False  # does the residual stream depend on a trainable parameter yet?
    for _ in range(shape.layers):
        qkv = stage(ATTENTION_INPUTS, stream)
        if qkv:
            attention += 8.0 * shape.heads * shape.head_dim * pairs  # dQ, dK, dV, dP
        stream = stage(("o_proj",), qkv) or stream
        gate_up = stage(MLP_INPUTS, stream)
        stream = stage(("down_proj",), gate_up) or stream
    lm_head = shape.hidden * shape.vocab if stream else 0
    return FlopCount(2.0 * tokens * (macs + lm_head), attention)


def local_step_flops(
    shape: DecoderShape,
    lengths: Sequence[int],
    *,
    lora_ranks: Mapping[str, int],
    width: int | None = None,
) -> FlopCount:
    """Forward and backward of one local step on rows of these ``lengths``.

    Model FLOPs by default (real tokens, causal pairs); with ``width``, what runs on the rows
    padded to ``width`` (padding tokens included, full causal triangles of ``width``)."""
    if width is None:
        tokens, pairs = sum(lengths), causal_pairs(lengths)
    else:
        tokens, pairs = width * len(lengths), causal_pairs([width] * len(lengths))
    forward = forward_flops(shape, tokens, pairs, lora_ranks=lora_ranks)
    backward = backward_flops(shape, tokens, pairs, lora_ranks=lora_ranks)
    return FlopCount(
        forward.projections + backward.projections, forward.attention + backward.attention
    )


def evaluation_flops(
    shape: DecoderShape, benchmark: Benchmark, *, executed: bool = False
) -> FlopCount:
    """One benchmark evaluation (forward only, adapters merged into the weights).

    Model FLOPs by default: real tokens, the pairs the packed mask allows, logits only where a
    log-probability is scored. ``executed``: every padded position, full ``width x width``
    attention (a masked attention kernel computes every pair), logits everywhere."""
    total = FlopCount(0.0, 0.0)
    for work in benchmark.workload:
        if executed:
            tokens = work.rows * work.width
            count = forward_flops(shape, tokens, work.rows * work.width**2)
        else:
            count = forward_flops(shape, work.tokens, work.pairs, logit_tokens=work.scored)
        total = FlopCount(total.projections + count.projections, total.attention + count.attention)
    return total
