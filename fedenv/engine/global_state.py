"""The global state's transition: what committing a round's aggregate does, as a pure function.

:meth:`fedenv.engine.federation.FederatedEngine.commit` and anyone who recomputes a global state
from stored updates (the unlearning replay, :mod:`fedenv.unlearning`, and its offline check under
``python -m chains verify``) call :func:`next_global_state`, so the two cannot drift apart.

A global state is the global adapter plus, for aggregators that fold their aggregate into the
base weights (``flora``), the accumulated dense change of every adapted module, stored under
``<module>`` + :data:`BASE_DELTA_SUFFIX` (:meth:`FederatedEngine.global_state`).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from fedenv.engine.aggregators import Aggregator
from fedenv.engine.lora import Adapter, adapter_digest, dense_deltas, fresh_adapter
from fedenv.seeding import derive_seed

BASE_DELTA_SUFFIX = ".base_layer.weight_delta"  # global-state key of a module's merged change


def split_global_state(
    state: Mapping[str, torch.Tensor],
) -> tuple[Adapter, dict[str, torch.Tensor]]:
    """``(adapter, base_delta)`` of a global state (``base_delta`` empty without ``flora``)."""
    adapter = {k: v for k, v in state.items() if not k.endswith(BASE_DELTA_SUFFIX)}
    delta = {
        k[: -len(BASE_DELTA_SUFFIX)]: v for k, v in state.items() if k.endswith(BASE_DELTA_SUFFIX)
    }
    return adapter, delta


def join_global_state(
    adapter: Mapping[str, torch.Tensor], base_delta: Mapping[str, torch.Tensor]
) -> Adapter:
    """The global state of ``adapter`` and ``base_delta`` (the inverse of :func:`split_global_state`)."""
    return {**adapter, **{m + BASE_DELTA_SUFFIX: d for m, d in base_delta.items()}}


def next_global_state(
    aggregator: Aggregator,
    aggregate: Adapter,
    base_delta: Mapping[str, torch.Tensor],
    *,
    scale: float,
    initial: Mapping[str, torch.Tensor],
    seed: int,
) -> tuple[Adapter, dict[str, torch.Tensor]]:
    """The ``(global adapter, base delta)`` after committing a round's ``aggregate`` (what the
    aggregator made of the round's updates).

    ``fedavg``/``ffa``: the aggregate is the new adapter.  ``flora``: the aggregate's dense change
    ``scale * B @ A`` is added to the base delta and the next round starts from a fresh adapter
    seeded by ``(seed, the aggregate's digest)`` and shaped like ``initial``."""
    with torch.no_grad():
        if aggregator.folds_into_base:
            deltas = dense_deltas(aggregate, scale)
            new_delta = {m: d + deltas[m] for m, d in base_delta.items()}
            fresh_seed = derive_seed(seed, "fresh-adapter", adapter_digest(aggregate))
            return fresh_adapter(initial, fresh_seed), new_delta
        return {k: aggregate[k].to(initial[k].dtype) for k in initial}, dict(base_delta)
