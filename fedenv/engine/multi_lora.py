"""Many LoRA adapters in one forward pass: each group of rows of a batch gets its own adapter.

The batch holds ``G`` equal groups of rows, laid end to end: rows ``[g * R, (g + 1) * R)`` belong
to group ``g``. :func:`grouped_lora` switches the peft model's own LoRA layers off and, on every
adapted module, adds group ``g``'s low-rank change to the base output of its rows::

    y[g] = base(x[g]) + scale * (x[g] @ A[g]^T) @ B[g]^T      (two batched matrix products)

exactly as peft computes a single adapter (``lora_B(lora_A(x)) * scaling``, in the adapter's
dtype, the sum cast back to the base output's dtype), so group ``g`` of a grouped pass equals a
pass of its rows alone with adapter ``g`` loaded, up to floating-point summation order. The ranks
may differ between groups (FLoRA's stacked aggregates): zero rows and columns pad them to the
largest, and contribute exact zeros.

The engine uses it for local training of all participants at once
(:class:`~fedenv.engine.batched_training.BatchedTrainer`) and for evaluating all coalitions of a
round in one pass (``FederatedEngine.evaluate_coalitions``). LoRA dropout is not applied here:
callers use the grouped path only when it is zero.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence

import torch

from fedenv.engine.lora import LORA_A_SUFFIX, LORA_B_SUFFIX
from fedenv.errors import ConfigError

Factors = Mapping[str, tuple[torch.Tensor, torch.Tensor]]  # module -> (A [G, r, in], B [G, out, r])


def stack_factors(
    adapters: Sequence[Mapping[str, torch.Tensor]], modules: Sequence[str]
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``module -> (A, B)`` stacked over ``adapters`` (one group each), ranks zero-padded to the
    largest. Differentiable: gradients reach each adapter's own tensors."""
    factors = {}
    for module in modules:
        a_list = [adapter[module + LORA_A_SUFFIX] for adapter in adapters]
        b_list = [adapter[module + LORA_B_SUFFIX] for adapter in adapters]
        rank = max(a.shape[0] for a in a_list)
        if any(a.shape[0] != rank for a in a_list):
            a_list = [torch.nn.functional.pad(a, (0, 0, 0, rank - a.shape[0])) for a in a_list]
            b_list = [torch.nn.functional.pad(b, (0, rank - b.shape[1])) for b in b_list]
        factors[module] = (torch.stack(a_list), torch.stack(b_list))
    return factors


def lora_layers(model: torch.nn.Module, modules: Sequence[str]) -> dict[str, torch.nn.Module]:
    """The peft LoRA layers of ``modules`` (names as in adapter keys, without the suffixes)."""
    return {module: model.get_submodule(module) for module in modules}


@contextlib.contextmanager
def adapters_off(layers: Mapping[str, torch.nn.Module]) -> Iterator[None]:
    """The base model alone: every LoRA layer of ``layers`` returns its base layer's output.

    peft's ``disable_adapter()`` does the same for the whole model but first inspects every
    module's status (milliseconds per call on a small model); this touches only these layers.
    Re-enabling sets ``requires_grad`` on the adapter weights, as peft does."""
    for layer in layers.values():
        layer.enable_adapters(False)
    try:
        yield
    finally:
        for layer in layers.values():
            layer.enable_adapters(True)


def _grouped_hook(lora_a: torch.Tensor, lora_b: torch.Tensor, scale: float):
    groups = lora_a.shape[0]
    a_t, b_t = lora_a.transpose(1, 2), lora_b.transpose(1, 2)

    def hook(module, args, output):
        x = args[0]
        if x.shape[0] % groups:
            raise RuntimeError(f"{x.shape[0]} rows do not split into {groups} adapter groups")
        grouped = x.to(lora_a.dtype).reshape(groups, -1, x.shape[-1])
        change = torch.bmm(torch.bmm(grouped, a_t), b_t) * scale
        return (output + change.view(output.shape)).to(output.dtype)

    return hook


@contextlib.contextmanager
def grouped_lora(
    layers: Mapping[str, torch.nn.Module], factors: Factors, scale: float
) -> Iterator[None]:
    """Run the model with group ``g`` of every batch on adapter ``g`` of ``factors``."""
    handles = []
    with adapters_off(layers):
        try:
            for module, (lora_a, lora_b) in factors.items():
                handles.append(
                    layers[module].register_forward_hook(_grouped_hook(lora_a, lora_b, scale))
                )
            yield
        finally:
            for handle in handles:
                handle.remove()


DROPOUT_SETTINGS = ("dropout", "pdrop")  # config attributes naming a dropout probability


def has_dropout(model: torch.nn.Module, lora) -> bool:
    """Whether training ``model`` with ``lora`` settings draws random dropout masks: LoRA
    dropout, an active ``nn.Dropout`` module, or a dropout probability in the model config
    (``attention_dropout``, ``hidden_dropout``, ``resid_pdrop``, ...)."""
    if lora.dropout > 0:
        return True
    if any(isinstance(m, torch.nn.Dropout) and m.p > 0 for m in model.modules()):
        return True
    config = getattr(model, "config", None)
    settings = config.to_dict() if hasattr(config, "to_dict") else {}
    return any(
        isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
        for name, value in settings.items()
        if any(part in name for part in DROPOUT_SETTINGS)
    )


def use_grouped(
    setting: str, model: torch.nn.Module, lora, field: str = "training.grouped"
) -> bool:
    """Whether to run grouped passes: ``on``, ``off``, or ``auto`` (on CUDA, without dropout).
    ``on`` with dropout is a :class:`ConfigError` naming ``field``: grouped passes would draw
    other random masks than one-at-a-time training, so they would no longer be equal."""
    dropout = has_dropout(model, lora)
    if setting == "on" and dropout:
        raise ConfigError(
            field,
            "grouped passes need a model and LoRA without dropout (they would draw other "
            "random masks than one-at-a-time training)",
        )
    cuda = next(model.parameters()).device.type == "cuda"
    return setting == "on" or (setting == "auto" and cuda and not dropout)
