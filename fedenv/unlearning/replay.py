"""Replaying stored updates into a global state, without loading a model.

:func:`replay_rounds` commits each round's updates with the engine's own transition
(:func:`fedenv.engine.global_state.next_global_state`, in the engine's order: by digest)
from a starting global state.  ``exact_replay`` runs it on the episode's stored updates minus the
forgotten organization's, and ``python -m chains verify`` runs it again offline
(:mod:`fedenv.unlearning.verify_plugin`): same files, same bytes, same digest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from safetensors.torch import load as safetensors_load

from fedenv.engine.aggregators import get_aggregator
from fedenv.engine.global_state import (
    join_global_state,
    mean_aggregate,
    next_global_state,
    split_global_state,
)
from fedenv.engine.lora import Adapter


@dataclass(frozen=True)
class StoredUpdate:
    """One stored update: its organization, canonical bytes' digest, weight and tensors."""

    org: str
    digest: str
    num_examples: int
    adapter: Adapter


def load_adapter(data: bytes) -> Adapter:
    """Tensors of canonical adapter bytes (safetensors)."""
    return dict(safetensors_load(data))


def stored_update(org: str, data: bytes, num_examples: int) -> StoredUpdate:
    return StoredUpdate(org, hashlib.sha256(data).hexdigest(), num_examples, load_adapter(data))


def replay_rounds(
    aggregator: str,
    start: Mapping[str, torch.Tensor],
    rounds: Sequence[Sequence[StoredUpdate]],
    *,
    initial: Mapping[str, torch.Tensor],
    scale: float,
    seed: int,
) -> Adapter:
    """The global state after committing each round's updates from ``start`` (a round with no
    update leaves the state as it is, as a round with nothing accepted does)."""
    adapter, base_delta = split_global_state(start)
    method = get_aggregator(aggregator)
    for updates in rounds:
        if not updates:
            continue
        ordered = sorted(updates, key=lambda u: (u.digest, u.num_examples, u.org))
        aggregate = mean_aggregate(
            method, adapter, [u.adapter for u in ordered], [u.num_examples for u in ordered]
        )
        adapter, base_delta = next_global_state(
            method, aggregate, base_delta, scale=scale, initial=initial, seed=seed
        )
    return join_global_state(adapter, base_delta)
