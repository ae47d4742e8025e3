"""Update geometry for the round's defences: changes, norm budgets, and rescaled updates.

An update's *change* is what it moves the global adapter by: ``a - g`` on every tensor the
aggregator trains (``ffa`` keeps ``lora_A`` frozen), flattened into one float32 vector.

**The norm budget** of a resource level with ``k`` local steps is the norm of ``k`` AdamW steps
whose signs are independent from step to step::

    budget(k) = lr * sqrt(sum over the trained tensors of (steps that move it) * numel)

AdamW's first step moves every coordinate with a non-zero gradient by exactly ``lr``
(``m / sqrt(v) = sign(g)``), and later steps by about ``lr`` each. A ``lora_A`` gets no gradient
while its module's ``lora_B`` is zero (the gradient of ``B A x`` with respect to ``A`` is
``B^T ...``), so it moves from the second step on when the global ``lora_B`` is zero (the first
round of ``fedavg``, every round of ``flora``). Honest updates of the default scenario measure
0.8 to 1.25 times their budget (docs/incentives.md); the budget depends only on the scenario's
settings and the global adapter, never on what a participant sends, so no participant can move
it. The defences rescale every update to it (``norm = "normalize"``), so a boosted update counts
exactly as its unboosted self, and reject updates that move the model by a small share of it
(``near_global``): free riders, exact or disguised by noise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from fedenv.engine.lora import LORA_B_SUFFIX, Adapter, lora_modules, lora_pair
from fedenv.engine.rounds import ClientUpdate


def trained_keys(global_adapter: Mapping[str, torch.Tensor], trains_lora_a: bool) -> list[str]:
    """The adapter keys an aggregator trains, sorted."""
    return [k for k in sorted(global_adapter) if trains_lora_a or k.endswith(LORA_B_SUFFIX)]


def change_vector(update: ClientUpdate, global_adapter: Adapter, keys: list[str]) -> torch.Tensor:
    """``a - g`` over ``keys``, flattened (float32, CPU)."""
    return torch.cat(
        [
            (update.adapter[k].detach().float().cpu() - global_adapter[k].float().cpu()).flatten()
            for k in keys
        ]
    )


def non_finite(update: ClientUpdate) -> str | None:
    """Why ``update`` holds NaN or infinite values (``None`` when it does not)."""
    for key in sorted(update.adapter):
        tensor = update.adapter[key]
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point():
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                return f"{key} holds {bad} NaN/inf value(s)"
    return None


def norm_budget(
    global_adapter: Mapping[str, torch.Tensor],
    *,
    steps: int,
    learning_rate: float,
    trains_lora_a: bool,
) -> float:
    """The norm of ``steps`` sign-independent AdamW steps from ``global_adapter`` (see the
    module docstring)."""
    moved = 0
    for module in lora_modules(global_adapter):
        lora_a, lora_b = lora_pair(global_adapter, module)
        moved += steps * lora_b.numel()
        if trains_lora_a:
            moved += (steps if bool(lora_b.any()) else steps - 1) * lora_a.numel()
    return learning_rate * math.sqrt(moved)


def measured_change(
    update: ClientUpdate,
    global_adapter: Adapter,
    keys: list[str],
    *,
    steps: int,
    learning_rate: float,
    trains_lora_a: bool,
) -> tuple[torch.Tensor, float, float]:
    """``(change, its norm, the norm budget of its level's steps)`` of ``update`` from
    ``global_adapter`` (the round's defences, and the unlearning replay, measure it so)."""
    change = change_vector(update, global_adapter, keys)
    budget = norm_budget(
        global_adapter, steps=steps, learning_rate=learning_rate, trains_lora_a=trains_lora_a
    )
    return change, float(change.norm()), budget


def norm_rule_scale(rule: str, bound: float, norm: float, budget: float) -> float:
    """What the norm rule ``rule`` (``normalize``, ``clip``, ``none``) multiplies a change of
    ``norm`` by, for a level whose budget is ``budget`` and the bound ``bound`` x budget."""
    target = bound * budget
    if rule == "none" or norm == 0.0:
        return 1.0
    if rule == "clip":
        return min(1.0, target / norm)
    return target / norm


def rescaled(
    update: ClientUpdate, global_adapter: Adapter, keys: list[str], factor: float
) -> ClientUpdate:
    """``update`` with its change multiplied by ``factor`` (``g + factor (a - g)`` on ``keys``;
    the other tensors as they were); the same update when ``factor`` is 1."""
    if factor == 1.0:
        return update
    adapter = dict(update.adapter)
    for key in keys:
        start = global_adapter[key].to(adapter[key])
        adapter[key] = start + (adapter[key] - start) * factor
    return ClientUpdate.create(
        update.org, adapter, num_examples=update.num_examples, local_steps=update.local_steps
    )
