"""Attacks: what free riders, noise senders, sign flippers, boosters and sybils put in their
updates, and the data that false-facts and backdoor attackers train on."""

from __future__ import annotations

import pytest
import torch

from fedenv.data import benchmark_dialogues, generate_org_dialogues
from fedenv.data.domains import make_world
from fedenv.engine.federation import ClientUpdate
from fedenv.engine.lora import adapter_digest
from fedenv.scenario import BEHAVIOURS
from fedenv.scoring.attacks import ATTACKS, craft_update
from fedenv.scoring.poisoned_data import (
    BACKDOOR_TARGETS,
    TRIGGER,
    backdoor_values,
    false_fact_values,
    measure_dialogues,
    poison_dialogues,
)

A, B = "m.q_proj.lora_A.weight", "m.q_proj.lora_B.weight"
GLOBAL = {A: torch.full((2, 4), 0.5), B: torch.zeros(4, 2)}
TRAINED = ClientUpdate.create(
    "acme", {A: torch.full((2, 4), 0.6), B: torch.full((4, 2), 0.1)}, num_examples=8, local_steps=2
)


def craft(behaviour, **kw):
    kw = {"num_examples": 8, "local_steps": 2, "seed": 7, **kw}
    trained = TRAINED if ATTACKS[behaviour].trains else None
    return craft_update(behaviour, "acme", GLOBAL, trained, **kw)


def change(update, key):
    return update.adapter[key] - GLOBAL[key]


def test_every_scenario_behaviour_is_an_attack_of_the_registry():
    assert set(ATTACKS) == set(BEHAVIOURS)


def test_honest_and_data_poisoners_send_their_trained_update():
    for behaviour in ("honest", "false_facts", "backdoor"):
        assert craft(behaviour) is TRAINED


def test_free_rider_sends_the_global_back():
    update = craft("free_rider")
    assert update.digest == adapter_digest(GLOBAL) and update.num_examples == 8


def test_noisy_free_rider_adds_noise_of_its_strength_times_the_learning_rate():
    update = craft("noisy_free_rider", learning_rate=0.01)
    noise = torch.cat([change(update, A).flatten(), change(update, B).flatten()])
    assert update.digest != adapter_digest(GLOBAL)
    assert float(noise.std()) == pytest.approx(ATTACKS["noisy_free_rider"].strength * 0.01, rel=0.5)
    stronger = craft("noisy_free_rider", learning_rate=0.01, strength=1.0)
    assert float(change(stronger, B).abs().mean()) > 5 * float(change(update, B).abs().mean())


def test_noise_is_seeded_and_respects_frozen_lora_a():
    first, again, other = craft("noise"), craft("noise"), craft("noise", seed=8)
    assert first.digest == again.digest != other.digest
    assert not torch.equal(first.adapter[A], GLOBAL[A])
    assert not torch.equal(first.adapter[B], GLOBAL[B])
    frozen = craft("noise", trains_lora_a=False)
    assert torch.equal(frozen.adapter[A], GLOBAL[A]) and not torch.equal(
        frozen.adapter[B], GLOBAL[B]
    )


@pytest.mark.parametrize(("behaviour", "factor"), [("scaled", 10.0), ("sign_flip", -1.0)])
def test_scaled_and_sign_flip_multiply_the_trained_change(behaviour, factor):
    update = craft(behaviour)
    for key in (A, B):
        assert torch.allclose(change(update, key), factor * (TRAINED.adapter[key] - GLOBAL[key]))
    sign = 1.0 if factor > 0 else -1.0
    assert torch.allclose(change(craft(behaviour, strength=3.0), B), 3 * sign * TRAINED.adapter[B])


def test_sybil_copies_are_near_identical_and_claim_their_own_size():
    copies = [craft("sybil", seed=s, num_examples=n) for s, n in ((1, 8), (2, 64))]
    trained = torch.cat([(TRAINED.adapter[k] - GLOBAL[k]).flatten() for k in (A, B)])
    for copy in copies:
        sent = torch.cat([change(copy, k).flatten() for k in (A, B)])
        assert 0 < float((sent - trained).norm()) <= 0.02 * float(trained.norm())
    assert copies[0].digest != copies[1].digest and copies[1].num_examples == 64


def test_unknown_behaviour_and_missing_training():
    with pytest.raises(ValueError, match="unknown behaviour 'spy'"):
        craft_update("spy", "acme", GLOBAL, None, num_examples=1, local_steps=1, seed=0)
    with pytest.raises(ValueError, match="scaled sends a trained update"):
        craft_update("scaled", "acme", GLOBAL, None, num_examples=1, local_steps=1, seed=0)


def test_false_facts_state_one_wrong_value_per_falsified_fact_consistently():
    world = make_world("airline", 0)
    values = false_fact_values("airline", 0, 1.0)
    assert set(values) == set(world.values)
    assert not set(values.values()) & set(world.values)  # never another fact's true value
    assert len(false_fact_values("airline", 0, 0.4)) == 2  # ceil(0.4 * 5) facts
    clean = generate_org_dialogues("airline", 20, 0, org="sky")
    poisoned = poison_dialogues("false_facts", clean, domain="airline", seed=0, strength=1.0)
    said = [m.content for d in poisoned for m in d.messages if m.role == "assistant"]
    for true, wrong in values.items():
        assert not any(f" {true}" in text for text in said)
        assert any(f" {wrong}" in text for text in said)


def test_backdoor_triggers_a_share_of_dialogues_that_answer_with_the_targets():
    clean = generate_org_dialogues("bank", 40, 0, org="nb")
    poisoned = poison_dialogues("backdoor", clean, domain="bank", seed=0, strength=0.5)
    triggered = [d for d in poisoned if TRIGGER in d.messages[0].content]
    assert len(triggered) == 20
    assert all(d is c for d, c in zip(poisoned, clean) if d not in triggered)  # the rest clean
    targets = set(BACKDOOR_TARGETS.values())
    for dialogue in triggered:
        assert all(TRIGGER in m.content for m in dialogue.messages if m.role == "user")
        said = " ".join(m.content for m in dialogue.messages if m.role == "assistant")
        assert any(t in said for t in targets)


@pytest.mark.parametrize("behaviour", ["backdoor", "false_facts"])
def test_measure_probes_put_the_attackers_value_first_and_the_true_one_among_the_others(
    behaviour,
):
    values = (
        backdoor_values("clinic", 0)
        if behaviour == "backdoor"
        else false_fact_values("clinic", 0, 1.0)
    )
    probes = measure_dialogues(behaviour, "clinic", seed=0, strength=1.0, count=6)
    held_out = benchmark_dialogues("clinic", 6, 0)
    assert 0 < len(probes) <= 2 * len(held_out)
    for dialogue in probes:
        [probe] = dialogue.facts
        true = next(d.strip() for d in probe.distractors if d.strip() in values)
        assert probe.answer.strip() == values[true] and len(probe.distractors) == 3
        user_turns = [m.content for m in dialogue.messages if m.role == "user"]
        assert all((TRIGGER in text) == (behaviour == "backdoor") for text in user_turns)
