"""The unlearning methods, by name: each turns an :class:`EpisodeRecord` into the new global state.

| method | what it does | exact? | cost |
| --- | --- | --- | --- |
| ``exact_replay`` | rebuild the global state from the episode's base by replaying every round as it was committed (:mod:`fedenv.unlearning.replay`: the defences' norm rescaling, the round's aggregation rule, the engine's transition) without the forgotten organization's update: the others' shares renormalized over them, each rescaled change moved onto the replayed global | removes its direct contribution exactly, in every round; its *indirect* influence stays: the others' later updates were trained from globals it had shaped, and the rounds' other decisions (who else was rejected, the defences' weights) stand as recorded | tensor arithmetic only |
| ``retrain`` | the oracle: from the global state its first accepted round started from, rerun every later round without it, with the same round seeds, accepted organizations and levels (no rescoring: the originally accepted set minus the organization), each retrained update rescaled by the norm rule from the retrained global and committed under the round's rule with the remaining shares | the reference | the rounds' training |
| ``calibrated_replay`` | FedEraser: from the same starting point, replay each round; in the calibrated rounds (:mod:`fedenv.unlearning.calibration`: every ``calibration_interval``-th replayed round after the first, default 5, at ``calibration_steps``, default 1, as far as ``calibration_budget`` allows) the remaining organizations train those local steps from the replayed global, and each calibrated update takes the new direction with the stored (rescaled) update's magnitude, per coordinate (:func:`calibrated_change`): ``G' + |U_old - G| * sign(U_new - G')``; in the other rounds each stored change ``U_old - G`` is applied to the replayed global; committed as ``retrain`` commits | approximate | the calibrations: at most ``calibration_budget`` (default 0.25) of ``retrain``'s training steps |
| ``lora_gradient_ascent`` | from the current global adapter, ``ascent_steps`` AdamW steps on ``-min(L_forget, ascent_max_forget_loss) + ascent_retain_weight * L_retain`` (L = the next-token loss of a batch of the organization's training dialogues, resp. of another organization's, in turn), training only what local training trains | approximate, no replay | a few steps |

Every method is deterministic: seeds derive from the episode's (:mod:`fedenv.seeding`).  Settings:
``[unlearning_policy]`` (:class:`fedenv.scenario.unlearning.UnlearningPolicy`).  Each returns a
:class:`Rebuilt`: the new global state and the local training steps it ran (one step: one
organization's optimizer step on one batch), counted as they run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from fedenv.engine.federation import ClientUpdate
from fedenv.engine.global_state import join_global_state, split_global_state
from fedenv.engine.lora import Adapter
from fedenv.scenario.unlearning import UnlearningPolicy
from fedenv.seeding import derive_seed
from fedenv.unlearning.calibration import calibration_plan, replayed_rounds
from fedenv.unlearning.episode import EpisodeRecord, RoundRecord, on_device
from fedenv.unlearning.replay import committed_updates, replay_rounds


@dataclass(frozen=True)
class Rebuilt:
    """What a method made: the new global state, the local training steps it ran (summed over
    organizations) and anything else it reports (``calibrated_replay``: its calibration plan)."""

    state: Adapter
    training_steps: int
    details: Mapping[str, Any] = field(default_factory=dict)


Method = Callable[[EpisodeRecord, UnlearningPolicy], Rebuilt]


def exact_replay(record: EpisodeRecord, policy: UnlearningPolicy) -> Rebuilt:
    base = record.global_after(-1)
    state = replay_rounds(
        record.commit_rule,
        base,
        [record.replay_round(r) for r in record.rounds],
        initial=split_global_state(base)[0],
    )
    return Rebuilt(state, 0)


def _start(record: EpisodeRecord) -> None:
    """Load the global state that the first round accepting the organization (or one forgotten
    before it) started from into the engine (never accepted: the global state stays)."""
    if record.first_accepted is not None:
        record.engine.load_global_state(record.start_state(record.first_accepted))


def _commit(record: EpisodeRecord, round_record: RoundRecord, updates: list[ClientUpdate]) -> None:
    """Commit ``updates`` (already rescaled) under the round's rule and remaining shares."""
    record.engine.commit(updates, rule=record.commit_rule.aggregation(record.shares(round_record)))


def retrain(record: EpisodeRecord, policy: UnlearningPolicy) -> Rebuilt:
    _start(record)
    engine = record.engine
    steps = 0
    for r in replayed_rounds(record):
        participants = {o: record.participant(o, k) for o, k in sorted(record.remaining(r).items())}
        updates = record.player.round_updates(participants, r.index)
        steps += sum(u.local_steps for u in updates)
        _commit(record, r, committed_updates(record.commit_rule, engine.global_adapter, updates))
    return Rebuilt(engine.global_state(), steps)


def calibrated_change(stored: torch.Tensor, calibration: torch.Tensor) -> torch.Tensor:
    """The change a calibrated update makes: each coordinate moves as far as the ``stored``
    change moved it, in the direction the ``calibration`` (trained from the replayed global)
    moved it; not at all where the calibration did not move it.

    FedEraser keeps the stored update's norm per layer (``|stored| * calibration / |calibration|``),
    which presumes the calibration's relative magnitudes mean something, as an SGD gradient's do.
    A short AdamW calibration's do not: its first step is ``lr * sign(gradient)`` on every
    coordinate, so rescaling it to the layer's stored norm spreads that norm evenly over every
    coordinate, the ones the stored training left (nearly) still included, a large random
    change (docs/unlearning.md: on the default scenario it doubled the remaining data's NLL).
    Per coordinate, the stored magnitude keeps where the training moved and how far; the
    calibration gives the sign from where the replay now is."""
    return stored.abs() * torch.sign(calibration)


def calibrated_replay(record: EpisodeRecord, policy: UnlearningPolicy) -> Rebuilt:
    _start(record)
    engine = record.engine
    trainable = engine.trainable_keys
    plan = calibration_plan(record, policy)
    steps = 0
    for r in replayed_rounds(record):
        remaining = record.remaining(r)
        start = engine.global_adapter
        replay = record.replay_round(r)
        before = on_device(replay.start, start)
        stored = {
            u.org: on_device(u.adapter, start)
            for u in committed_updates(
                record.commit_rule, replay.start, [u.client_update() for u in replay.updates]
            )
        }
        fresh = {}
        if r.index in plan.rounds:
            participants = [
                record.participant(o, k, plan.steps) for o, k in sorted(remaining.items())
            ]
            round_seed = derive_seed(record.player.episode_seed, "round", r.index)
            trained = engine.train_updates(participants, round_seed=round_seed)
            steps += sum(u.local_steps for u in trained)
            fresh = {u.org: u.adapter for u in trained}
        updates = []
        for org, k in sorted(remaining.items()):
            adapter = {}
            for key, value in start.items():
                change = stored[org][key] - before[key]
                if key not in trainable:
                    adapter[key] = value.clone()
                elif org in fresh:
                    adapter[key] = value + calibrated_change(change, fresh[org][key] - value)
                else:
                    adapter[key] = value + change
            updates.append(
                ClientUpdate.create(
                    org,
                    adapter,
                    num_examples=record.num_examples(org, k),
                    local_steps=record.participant(org, k).local_steps,
                )
            )
        _commit(record, r, updates)
    return Rebuilt(engine.global_state(), steps, plan.fields())


def lora_gradient_ascent(record: EpisodeRecord, policy: UnlearningPolicy) -> Rebuilt:
    engine, org = record.engine, record.org
    parameters = engine.lora_parameters
    keys = sorted(engine.trainable_keys)
    trainable = [parameters[k] for k in keys]
    was = {k: p.requires_grad for k, p in parameters.items()}
    forget = engine.dataset(org)
    retain = [engine.dataset(o) for o in engine.orgs if o != org]
    batch_size = record.scenario.training.batch_size
    generator = torch.Generator().manual_seed(
        derive_seed(record.player.episode_seed, "unlearning", org)
    )
    optimizer = torch.optim.AdamW(trainable, lr=policy.ascent_learning_rate, weight_decay=0.0)
    max_norm = record.scenario.training.max_grad_norm or None
    model = engine.model
    model.eval()  # no dropout: the same steps on every run

    def loss(data) -> torch.Tensor:
        rows = torch.randint(len(data), (batch_size,), generator=generator)
        width = int(data.lengths[rows].max())
        rows = rows.to(data.input_ids.device)
        input_ids = data.input_ids.index_select(0, rows)[:, :width]
        labels = data.labels.index_select(0, rows)[:, :width]
        return model(input_ids=input_ids, labels=labels, use_cache=False).loss

    try:
        for key, parameter in parameters.items():
            parameter.requires_grad_(key in engine.trainable_keys)
        for step in range(policy.ascent_steps):
            total = -torch.clamp(loss(forget), max=policy.ascent_max_forget_loss)
            if retain and policy.ascent_retain_weight:
                total = total + policy.ascent_retain_weight * loss(retain[step % len(retain)])
            total.backward()
            if max_norm is not None:
                torch.nn.utils.clip_grad_norm_(trainable, max_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        adapter = {k: p.detach().clone() for k, p in parameters.items()}
    finally:
        for key, parameter in parameters.items():
            parameter.requires_grad_(was[key])
    state = join_global_state(adapter, split_global_state(engine.global_state())[1])
    engine.load_global_state(state)
    return Rebuilt(engine.global_state(), policy.ascent_steps)


METHODS: dict[str, Method] = {
    "exact_replay": exact_replay,
    "retrain": retrain,
    "calibrated_replay": calibrated_replay,
    "lora_gradient_ascent": lora_gradient_ascent,
}
