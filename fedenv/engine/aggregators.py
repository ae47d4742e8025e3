"""Aggregators: how the clients' LoRA adapters become one, selectable by name.

Every client ``i`` returns an adapter ``(A_i, B_i)`` per module and a weight ``n_i`` (its number of
examples); ``w_i = n_i / sum_j n_j``. The ideal aggregate is the weighted sum of the clients' weight
changes, ``sum_i w_i B_i A_i`` (times peft's ``scale = alpha / r``).

| name     | trains  | aggregate                                         | exact? |
| -------- | ------- | ------------------------------------------------- | ------ |
| `fedavg` | A and B | ``(sum w_i B_i)(sum w_i A_i)``                    | no: cross terms ``w_i w_j B_i A_j`` |
| `ffa`    | B only  | ``(sum w_i B_i) A`` with A frozen and shared      | yes |
| `flora`  | A and B | ``[w_1 B_1 ... w_n B_n] @ [A_1; ...; A_n]``        | yes |

``flora`` stacks along the rank dimension, so its aggregate has rank ``n * r``. As in the FLoRA
paper, the engine folds that product into the base weights and starts the next round from a fresh
seeded rank-``r`` adapter (``folds_into_base``), so the rank does not grow from round to round.

An aggregator sees adapters in the order given; the engine sorts updates by digest first, so the
aggregate does not depend on the order in which clients report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from fedenv.engine.lora import LORA_A_SUFFIX, LORA_B_SUFFIX, Adapter, lora_modules, lora_pair
from fedenv.errors import ConfigError, InvalidUpdateError, NoParticipantsError


def normalized_weights(weights: Sequence[float]) -> list[float]:
    """``w_i = n_i / sum n``; every weight must be positive and finite."""
    if not weights:
        raise NoParticipantsError("cannot aggregate zero updates")
    for index, weight in enumerate(weights):
        if not (isinstance(weight, (int, float)) and math.isfinite(weight) and weight > 0):
            raise InvalidUpdateError(f"update {index}: weight must be positive, got {weight!r}")
    total = float(sum(weights))
    return [float(weight) / total for weight in weights]


def _weighted_sum(tensors: Sequence[torch.Tensor], weights: Sequence[float]) -> torch.Tensor:
    total = torch.zeros_like(tensors[0], dtype=torch.float32)
    for tensor, weight in zip(tensors, weights):
        total.add_(tensor.float(), alpha=weight)
    return total.to(tensors[0].dtype)


class Aggregator:
    """Combines client adapters. Subclasses set the class attributes and implement ``combine``."""

    name: str = ""
    summary: str = ""
    trains_lora_a: bool = True  # False: clients keep every lora_A fixed at the global value
    folds_into_base: bool = False  # True: the aggregate is merged into the base weights

    def check_update(
        self, global_adapter: Mapping[str, torch.Tensor], adapter: Adapter, *, source: str
    ) -> None:
        """Raise :class:`InvalidUpdateError` if ``adapter`` breaks this method's rules."""

    def combine(
        self,
        global_adapter: Mapping[str, torch.Tensor],
        adapters: Sequence[Adapter],
        weights: Sequence[float],
    ) -> Adapter:
        """The aggregate of validated ``adapters`` with normalized ``weights``."""
        raise NotImplementedError

    def aggregate(
        self,
        global_adapter: Mapping[str, torch.Tensor],
        adapters: Sequence[Adapter],
        weights: Sequence[float],
    ) -> Adapter:
        """The aggregate adapter of ``adapters`` weighted by ``weights`` (normalized here).

        For ``fedavg``/``ffa`` it is shaped like ``global_adapter`` (the next global); for ``flora``
        its rank is the sum of the clients' ranks (a dense change to fold into the base)."""
        if len(adapters) != len(weights):
            raise InvalidUpdateError(f"{len(adapters)} adapters but {len(weights)} weights")
        normalized = normalized_weights(weights)
        for index, adapter in enumerate(adapters):
            self.check_update(global_adapter, adapter, source=f"update {index}")
        with torch.no_grad():
            return self.combine(global_adapter, adapters, normalized)

    def __repr__(self) -> str:
        return f"<aggregator {self.name}: {self.summary}>"


class FedAvg(Aggregator):
    name = "fedavg"
    summary = "A and B averaged separately, weighted by data size (not exact)"

    def combine(self, global_adapter, adapters, weights):
        return {key: _weighted_sum([a[key] for a in adapters], weights) for key in global_adapter}


class FFALoRA(Aggregator):
    name = "ffa"
    summary = "FFA-LoRA: A frozen and shared, only B trained and averaged (exact)"
    trains_lora_a = False

    def check_update(self, global_adapter, adapter, *, source):
        for key in global_adapter:
            if key.endswith(LORA_A_SUFFIX) and not torch.equal(adapter[key], global_adapter[key]):
                raise InvalidUpdateError(
                    f"{source}: ffa keeps lora_A frozen, but {key} was changed"
                )

    def combine(self, global_adapter, adapters, weights):
        return {
            key: global_adapter[key].clone()
            if key.endswith(LORA_A_SUFFIX)
            else _weighted_sum([a[key] for a in adapters], weights)
            for key in global_adapter
        }


class FLoRA(Aggregator):
    name = "flora"
    summary = (
        "FLoRA: weighted A and B stacked along the rank dimension (exact), merged into the base"
    )
    folds_into_base = True

    def combine(self, global_adapter, adapters, weights):
        stacked: Adapter = {}
        for module in lora_modules(global_adapter):
            pairs = [lora_pair(adapter, module) for adapter in adapters]
            a_key, b_key = module + LORA_A_SUFFIX, module + LORA_B_SUFFIX
            stacked[a_key] = torch.cat([lora_a for lora_a, _ in pairs], dim=0)
            stacked[b_key] = torch.cat(
                [lora_b * weight for (_, lora_b), weight in zip(pairs, weights)], dim=1
            )
        return stacked


AGGREGATORS: dict[str, Aggregator] = {
    aggregator.name: aggregator for aggregator in (FedAvg(), FFALoRA(), FLoRA())
}


def get_aggregator(name: str) -> Aggregator:
    """The registered aggregator called ``name``; :class:`ConfigError` names the choices otherwise."""
    try:
        return AGGREGATORS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            "aggregator", f"unknown aggregator {name!r}; choose one of {sorted(AGGREGATORS)}"
        ) from None
