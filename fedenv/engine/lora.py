"""LoRA adapters as plain data: canonical bytes and digests, validation, dense deltas.

The adapter's hyperparameters are :class:`~fedenv.engine.settings.LoraSettings`.

An adapter is a ``dict[str, Tensor]`` keyed by peft's own names (the keys of
``peft.get_peft_model_state_dict``, e.g. ``base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight``)
holding cloned, detached tensors that share no storage with a live model. For every adapted module
``m`` it holds ``m.lora_A.weight`` (``r x in``) and ``m.lora_B.weight`` (``out x r``); the module's
weight update is ``scale * B @ A`` with ``scale = alpha / r``.

Canonical bytes are what gets hashed and put on ledgers: safetensors with keys in sorted order,
every tensor float32, contiguous and on the CPU, and no metadata. The same adapter gives the same
bytes (and SHA-256) in any process and on any device.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping

import torch
from safetensors.torch import save as safetensors_save

from fedenv.errors import InvalidUpdateError

Adapter = dict[str, torch.Tensor]

LORA_A_SUFFIX = ".lora_A.weight"
LORA_B_SUFFIX = ".lora_B.weight"


def clone_adapter(adapter: Mapping[str, torch.Tensor]) -> Adapter:
    """A deep copy: detached clones that share no storage with ``adapter``."""
    return {key: tensor.detach().clone() for key, tensor in adapter.items()}


def canonical_tensors(adapter: Mapping[str, torch.Tensor]) -> Adapter:
    """The canonical form: sorted keys, CPU, float32, contiguous, detached."""
    return {
        key: adapter[key].detach().to(device="cpu", dtype=torch.float32).contiguous()
        for key in sorted(adapter)
    }


def canonical_bytes(adapter: Mapping[str, torch.Tensor]) -> bytes:
    """Safetensors bytes with sorted keys, float32 CPU tensors and no metadata."""
    if not adapter:
        raise InvalidUpdateError("cannot serialize an empty adapter")
    return safetensors_save(canonical_tensors(adapter), metadata=None)


def adapter_digest(adapter: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 hex digest of :func:`canonical_bytes`."""
    return hashlib.sha256(canonical_bytes(adapter)).hexdigest()


def lora_modules(adapter: Mapping[str, torch.Tensor]) -> list[str]:
    """Sorted names of the adapted modules; every module must have exactly one A and one B."""
    a_modules = {k[: -len(LORA_A_SUFFIX)] for k in adapter if k.endswith(LORA_A_SUFFIX)}
    b_modules = {k[: -len(LORA_B_SUFFIX)] for k in adapter if k.endswith(LORA_B_SUFFIX)}
    stray = [k for k in adapter if not k.endswith((LORA_A_SUFFIX, LORA_B_SUFFIX))]
    if stray:
        raise InvalidUpdateError(f"adapter has non-LoRA keys: {sorted(stray)[:3]}")
    if a_modules != b_modules:
        unpaired = sorted(a_modules ^ b_modules)
        raise InvalidUpdateError(f"adapter modules without both lora_A and lora_B: {unpaired[:3]}")
    return sorted(a_modules)


def lora_pair(
    adapter: Mapping[str, torch.Tensor], module: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(A, B)`` of one module: ``A`` is ``r x in``, ``B`` is ``out x r``."""
    return adapter[module + LORA_A_SUFFIX], adapter[module + LORA_B_SUFFIX]


def validate_adapter(
    adapter: Mapping[str, torch.Tensor],
    template: Mapping[str, torch.Tensor],
    *,
    source: str = "update",
) -> None:
    """Raise :class:`InvalidUpdateError` unless ``adapter`` matches ``template``'s keys and shapes
    and holds only finite numbers. ``source`` names the adapter's origin in the message."""
    if not isinstance(adapter, Mapping):
        raise InvalidUpdateError(
            f"{source}: adapter must be a mapping, got {type(adapter).__name__}"
        )
    missing = sorted(set(template) - set(adapter))
    extra = sorted(set(adapter) - set(template))
    if missing or extra:
        raise InvalidUpdateError(
            f"{source}: adapter keys differ from the global adapter "
            f"(missing {missing[:3]}, unexpected {extra[:3]})"
        )
    for key in sorted(template):
        tensor = adapter[key]
        if not isinstance(tensor, torch.Tensor):
            raise InvalidUpdateError(f"{source}: {key} is a {type(tensor).__name__}, not a tensor")
        if tuple(tensor.shape) != tuple(template[key].shape):
            raise InvalidUpdateError(
                f"{source}: {key} has shape {tuple(tensor.shape)}, "
                f"expected {tuple(template[key].shape)}"
            )
        if not tensor.is_floating_point():
            raise InvalidUpdateError(f"{source}: {key} has dtype {tensor.dtype}, expected floats")
        if not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise InvalidUpdateError(f"{source}: {key} holds {bad} NaN/inf value(s)")


def dense_deltas(adapter: Mapping[str, torch.Tensor], scale: float) -> dict[str, torch.Tensor]:
    """``module -> scale * B @ A`` in float32, the weight change the adapter makes.

    Works for any rank, including FLoRA's stacked adapters (rank = sum of the clients' ranks).
    """
    deltas = {}
    for module in lora_modules(adapter):
        lora_a, lora_b = lora_pair(adapter, module)
        deltas[module] = (lora_b.float() @ lora_a.float()).mul_(scale)
    return deltas


def fresh_adapter(template: Mapping[str, torch.Tensor], seed: int) -> Adapter:
    """A newly initialized adapter shaped like ``template``, as peft initializes LoRA by default:
    ``A ~ U(-1/sqrt(in), 1/sqrt(in))`` (Kaiming-uniform, a=sqrt(5)) and ``B = 0``, so the adapter
    starts as the identity change. Drawn on the CPU from ``seed`` alone, then moved to the
    template's device: the same seed gives the same adapter on every device."""
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    adapter: Adapter = {}
    for module in lora_modules(template):
        lora_a, lora_b = lora_pair(template, module)
        bound = 1.0 / math.sqrt(lora_a.shape[1])
        values = torch.rand(lora_a.shape, generator=generator, dtype=torch.float32)
        adapter[module + LORA_A_SUFFIX] = (values * (2 * bound) - bound).to(
            device=lora_a.device, dtype=lora_a.dtype
        )
        adapter[module + LORA_B_SUFFIX] = torch.zeros_like(lora_b)
    return adapter
