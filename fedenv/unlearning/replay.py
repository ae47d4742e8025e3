"""Replaying stored updates into a global state as the rounds committed them, without a model.

A round commits its accepted updates through the defences (:mod:`fedenv.scoring.defence`): each
update's change from the round's starting global adapter is rescaled by the norm rule
(``defence.norm``), the rescaled updates are combined under the round's rule (the shares it
recorded, or a coordinate-wise statistic) and the engine's transition makes the new global state.
:func:`replayed_states` does the same with the same functions
(:func:`fedenv.scoring.screening.measured_change`, :func:`~fedenv.scoring.screening.norm_rule_scale`,
:func:`~fedenv.scoring.screening.rescaled`, :func:`fedenv.engine.aggregators.aggregate_under_rule`,
:func:`fedenv.engine.global_state.next_global_state`), and only three inputs may differ:

- *the updates*: a round's accepted ones less the forgotten organization's;
- *the shares*: renormalized over those that remain in a round that had accepted it
  (:func:`remaining_shares`), the recorded ones otherwise;
- *the starting state*: the replayed one.  Each rescaled update is moved onto it by the
  difference between the replayed and the recorded starting adapter, tensor by tensor
  (aggregators that average parameters; a ``flora`` round starts from a fresh adapter and folds
  its stacked factors into the base, so its rescaled updates are stacked as they were).

The norm rescaling is measured against the round's *recorded* starting adapter, as the round did:
it depends on the update, its level and that adapter only, never on the other participants.
Replaying every accepted update with its recorded share from the base gives each stored global
state byte for byte (tested): no share is renormalized and no difference is non-zero.
``exact_replay`` runs it on the stored updates without the forgotten organization's, and
``python -m chains verify`` runs it again offline (:mod:`fedenv.unlearning.verify_plugin`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass

import torch
from safetensors.torch import load as safetensors_load

from fedenv.engine.aggregators import AggregationRule, aggregate_under_rule, get_aggregator
from fedenv.engine.global_state import join_global_state, next_global_state, split_global_state
from fedenv.engine.lora import Adapter
from fedenv.engine.rounds import ClientUpdate
from fedenv.scoring.screening import measured_change, norm_rule_scale, rescaled, trained_keys


@dataclass(frozen=True)
class CommitRule:
    """What a round did with its accepted updates besides choosing them: the aggregator and the
    engine's transition settings, and the defences' norm rule and aggregation (the
    certificate's ``commit_rule``)."""

    aggregator: str
    lora_scale: float
    seed: int
    learning_rate: float
    norm: str = "none"
    norm_bound: float = 1.0
    statistic: str = "mean"
    trim: float = 0.0

    def fields(self) -> dict:
        return asdict(self)

    def aggregation(self, shares: Mapping[str, float] | None) -> AggregationRule:
        """The round's aggregation rule for updates with these ``shares``."""
        return AggregationRule.for_defence(self.statistic, self.trim, shares)


@dataclass(frozen=True)
class StoredUpdate:
    """One stored update as a round accepted it: its organization, canonical bytes' digest,
    example count, local steps (its level's: the norm budget) and share of the round."""

    org: str
    digest: str
    num_examples: int
    local_steps: int
    share: float
    adapter: Adapter

    def client_update(self) -> ClientUpdate:
        return ClientUpdate(
            self.org, self.adapter, self.num_examples, self.local_steps, math.nan, self.digest
        )


@dataclass(frozen=True)
class ReplayRound:
    """A round to replay: the global adapter it started from (as recorded) and its updates."""

    start: Adapter
    updates: Sequence[StoredUpdate]


def load_adapter(data: bytes) -> Adapter:
    """Tensors of canonical adapter bytes (safetensors)."""
    return dict(safetensors_load(data))


def stored_update(
    org: str, data: bytes, num_examples: int, local_steps: int, share: float
) -> StoredUpdate:
    return StoredUpdate(
        org, hashlib.sha256(data).hexdigest(), num_examples, local_steps, share, load_adapter(data)
    )


def remaining_shares(
    shares: Mapping[str, float], removed: Sequence[str]
) -> dict[str, float]:
    """A round's recorded shares without the ``removed`` organizations: renormalized over the
    rest when one of them had a share, as recorded otherwise."""
    remaining = {o: s for o, s in sorted(shares.items()) if o not in removed}
    if len(remaining) == len(shares) or not remaining:
        return remaining
    total = sum(remaining.values())
    return {o: s / total for o, s in remaining.items()}


def committed_updates(
    rule: CommitRule, start: Mapping[str, torch.Tensor], updates: Sequence[ClientUpdate]
) -> list[ClientUpdate]:
    """``updates`` rescaled by the norm rule from ``start``, as the round's defences did."""
    aggregator = get_aggregator(rule.aggregator)
    keys = trained_keys(start, aggregator.trains_lora_a)
    committed = []
    for update in updates:
        _, norm, budget = measured_change(
            update,
            start,
            keys,
            steps=update.local_steps,
            learning_rate=rule.learning_rate,
            trains_lora_a=aggregator.trains_lora_a,
        )
        scale = norm_rule_scale(rule.norm, rule.norm_bound, norm, budget)
        committed.append(rescaled(update, start, keys, scale))
    return committed


def moved(
    adapter: Mapping[str, torch.Tensor],
    recorded: Mapping[str, torch.Tensor],
    replayed: Mapping[str, torch.Tensor],
) -> Adapter:
    """``adapter`` moved by ``replayed - recorded`` (tensors where they are equal are kept as
    they are, so a replay from the recorded state changes no bit)."""
    return {
        k: v if torch.equal(replayed[k], recorded[k]) else v + (replayed[k] - recorded[k])
        for k, v in adapter.items()
    }


def replayed_states(
    rule: CommitRule,
    start: Mapping[str, torch.Tensor],
    rounds: Sequence[ReplayRound],
    *,
    initial: Mapping[str, torch.Tensor],
) -> Iterator[Adapter]:
    """The global state after each of ``rounds`` replayed from the global state ``start`` (a
    round with no update leaves it as it is, as a round with nothing accepted does)."""
    method = get_aggregator(rule.aggregator)
    adapter, base_delta = split_global_state(start)
    for replay in rounds:
        if replay.updates:
            candidates = sorted(
                committed_updates(rule, replay.start, [u.client_update() for u in replay.updates]),
                key=lambda u: (u.digest, u.num_examples, u.org),
            )
            adapters = [
                c.adapter if method.folds_into_base else moved(c.adapter, replay.start, adapter)
                for c in candidates
            ]
            aggregate = aggregate_under_rule(
                method,
                adapter,
                adapters,
                orgs=[c.org for c in candidates],
                num_examples=[c.num_examples for c in candidates],
                rule=rule.aggregation({u.org: u.share for u in replay.updates}),
            )
            adapter, base_delta = next_global_state(
                method,
                aggregate,
                base_delta,
                scale=rule.lora_scale,
                initial=initial,
                seed=rule.seed,
            )
        yield join_global_state(adapter, base_delta)


def replay_rounds(
    rule: CommitRule,
    start: Mapping[str, torch.Tensor],
    rounds: Sequence[ReplayRound],
    *,
    initial: Mapping[str, torch.Tensor],
) -> Adapter:
    """The global state after replaying every one of ``rounds`` from ``start``."""
    state = dict(start)
    for state in replayed_states(rule, start, rounds, initial=initial):
        pass
    return state
