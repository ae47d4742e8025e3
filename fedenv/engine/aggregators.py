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

An :class:`AggregationRule` changes how a coalition's updates combine (the round's defences and
dilution-proof accounting, :mod:`fedenv.scoring.defence`):

- ``shares``: each organization's fixed share of the round, *not* renormalized over a coalition.
  The aggregate of a coalition ``S`` is the global adapter moved by its members' shares of their
  changes, ``g + sum_{i in S} s_i (a_i - g)`` (``flora``: ``sum_{i in S} s_i B_i A_i``), so an
  update equal to the global adds nothing and takes no weight from the others. When the shares
  of ``S`` sum to 1 it is the weighted average above.
- ``statistic``: ``median`` or ``trimmed_mean`` (Yin et al., ICML 2018) take that statistic of
  every coordinate over the coalition's adapters instead of their mean (unweighted). Only
  aggregators that average parameters (``fedavg``, ``ffa``; ``coordinatewise``) can: ``flora``
  stacks its clients' factors, and a coordinate-wise statistic of stacked factors is no
  aggregate of theirs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

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


STATISTICS = ("mean", "median", "trimmed_mean")


@dataclass(frozen=True)
class AggregationRule:
    """How a coalition's updates combine (see the module docstring); the default is FedAvg's
    data-size weights, normalized over the coalition."""

    shares: Mapping[str, float] | None = None  # organization -> fixed share of the round
    statistic: str = "mean"  # mean | median | trimmed_mean
    trim: float = 0.0  # trimmed_mean: share of the values cut at each end of every coordinate

    @classmethod
    def for_defence(
        cls, statistic: str, trim: float, shares: Mapping[str, float] | None
    ) -> AggregationRule:
        """The rule of a round whose defences aggregate by ``statistic`` (``mean``: ``shares``)."""
        if statistic != "mean":
            return cls(statistic=statistic, trim=trim)
        return cls(shares=shares)

    def __post_init__(self) -> None:
        if self.statistic not in STATISTICS:
            raise ConfigError("statistic", f"must be one of {STATISTICS}, got {self.statistic!r}")
        if not 0.0 <= self.trim < 0.5:
            raise ConfigError("trim", f"must be in [0, 0.5), got {self.trim!r}")
        if self.shares is not None:
            for org, share in self.shares.items():
                if not (isinstance(share, float | int) and math.isfinite(share) and share > 0):
                    raise InvalidUpdateError(f"{org}: share must be positive, got {share!r}")
            if sum(self.shares.values()) > 1.0 + 1e-9:
                raise InvalidUpdateError(f"shares sum to {sum(self.shares.values())} > 1")


def trimmed_count(n: int, trim: float) -> int:
    """Values cut at each end of a coordinate by ``trimmed_mean``: ``ceil(trim * n)``, at most
    ``(n - 1) // 2`` so that one value (two for an even ``n``) always remains."""
    return min(math.ceil(trim * n - 1e-9), (n - 1) // 2)


def coordinatewise(tensors: Sequence[torch.Tensor], statistic: str, trim: float) -> torch.Tensor:
    """``statistic`` of every coordinate over ``tensors`` (float32; the median of an even number
    of values is the mean of the two middle ones)."""
    stacked = torch.stack([t.float() for t in tensors]).sort(dim=0).values
    n = stacked.shape[0]
    if statistic == "median":
        low, high = (n - 1) // 2, n // 2
        result = (stacked[low] + stacked[high]) / 2
    elif statistic == "trimmed_mean":
        cut = trimmed_count(n, trim)
        result = stacked[cut : n - cut].mean(dim=0)
    else:
        result = stacked.mean(dim=0)
    return result.to(tensors[0].dtype)


def _weighted_sum(tensors: Sequence[torch.Tensor], weights: Sequence[float]) -> torch.Tensor:
    total = torch.zeros_like(tensors[0], dtype=torch.float32)
    for tensor, weight in zip(tensors, weights):
        total.add_(tensor.float(), alpha=weight)
    return total.to(tensors[0].dtype)


def aggregate_under_rule(
    aggregator: Aggregator,
    global_adapter: Mapping[str, torch.Tensor],
    adapters: Sequence[Adapter],
    *,
    orgs: Sequence[str],
    num_examples: Sequence[float],
    rule: AggregationRule | None = None,
) -> Adapter:
    """What a round commits: ``adapters`` (of ``orgs``, in the engine's order) combined under
    ``rule`` (default: data-size weights normalized over them). The engine's commit and the
    unlearning replay (:mod:`fedenv.unlearning.replay`) both call it."""
    with torch.no_grad():
        if rule is not None and rule.statistic != "mean":
            return aggregator.combine_statistic(global_adapter, adapters, rule.statistic, rule.trim)
        if rule is not None and rule.shares is not None:
            shares = [rule.shares[org] for org in orgs]
            return aggregator.combine_shares(global_adapter, adapters, shares)
        return aggregator.combine(global_adapter, adapters, normalized_weights(num_examples))


class Aggregator:
    """Combines client adapters. Subclasses set the class attributes and implement ``combine``."""

    name: str = ""
    summary: str = ""
    trains_lora_a: bool = True  # False: clients keep every lora_A fixed at the global value
    folds_into_base: bool = False  # True: the aggregate is merged into the base weights
    coordinatewise: bool = True  # False: no coordinate-wise median / trimmed mean (see above)

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

    def combine_shares(
        self,
        global_adapter: Mapping[str, torch.Tensor],
        adapters: Sequence[Adapter],
        shares: Sequence[float],
    ) -> Adapter:
        """``g + sum_i s_i (a_i - g)`` for every key this method trains (the others stay ``g``)."""
        combined = {}
        for key, start in global_adapter.items():
            if not self._trains(key):
                combined[key] = start.clone()
                continue
            total = start.float().clone()
            for adapter, share in zip(adapters, shares):
                total.add_(adapter[key].float() - start.float(), alpha=share)
            combined[key] = total.to(start.dtype)
        return combined

    def combine_statistic(
        self,
        global_adapter: Mapping[str, torch.Tensor],
        adapters: Sequence[Adapter],
        statistic: str,
        trim: float,
    ) -> Adapter:
        """The coordinate-wise ``statistic`` of ``adapters`` on every key this method trains."""
        if not self.coordinatewise:
            raise ConfigError(
                "defence.aggregation",
                f"{statistic} needs an aggregator that averages parameters (fedavg, ffa); "
                f"{self.name} stacks its clients' factors",
            )
        return {
            key: coordinatewise([a[key] for a in adapters], statistic, trim)
            if self._trains(key)
            else start.clone()
            for key, start in global_adapter.items()
        }

    def _trains(self, key: str) -> bool:
        return self.trains_lora_a or key.endswith(LORA_B_SUFFIX)

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
    coordinatewise = False

    def combine_shares(self, global_adapter, adapters, shares):
        # the global B is zero (a fresh adapter every round): the stack is the members' change
        return self.combine(global_adapter, adapters, shares)

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
