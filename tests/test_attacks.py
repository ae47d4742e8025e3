"""Behaviours: what free riders, noise senders and boosting attackers put in their updates."""

from __future__ import annotations

import pytest
import torch

from fedenv.engine.federation import ClientUpdate
from fedenv.engine.lora import adapter_digest
from fedenv.scenario import BEHAVIOURS
from fedenv.scoring.behaviours import SCALE, TRAINS, craft_update

A, B = "m.q_proj.lora_A.weight", "m.q_proj.lora_B.weight"
GLOBAL = {A: torch.full((2, 4), 0.5), B: torch.zeros(4, 2)}
TRAINED = ClientUpdate.create(
    "acme", {A: torch.full((2, 4), 0.6), B: torch.full((4, 2), 0.1)}, num_examples=8, local_steps=2
)


def craft(behaviour, **kw):
    kw = {"num_examples": 8, "local_steps": 2, "seed": 7, **kw}
    return craft_update(behaviour, "acme", GLOBAL, TRAINED if TRAINS[behaviour] else None, **kw)


def test_every_scenario_behaviour_is_simulated():
    assert set(TRAINS) == set(BEHAVIOURS)


def test_honest_sends_its_trained_update():
    assert craft("honest") is TRAINED


def test_free_rider_sends_the_global_back():
    update = craft("free_rider")
    assert update.digest == adapter_digest(GLOBAL) and update.num_examples == 8


def test_noise_is_seeded_and_respects_frozen_lora_a():
    first, again, other = craft("noise"), craft("noise"), craft("noise", seed=8)
    assert first.digest == again.digest != other.digest
    assert not torch.equal(first.adapter[A], GLOBAL[A])
    assert not torch.equal(first.adapter[B], GLOBAL[B])
    frozen = craft("noise", trains_lora_a=False)
    assert torch.equal(frozen.adapter[A], GLOBAL[A]) and not torch.equal(
        frozen.adapter[B], GLOBAL[B]
    )


def test_scaled_boosts_the_trained_change():
    update = craft("scaled")
    assert torch.allclose(update.adapter[A], GLOBAL[A] + SCALE * (TRAINED.adapter[A] - GLOBAL[A]))
    assert torch.allclose(update.adapter[B], SCALE * TRAINED.adapter[B])
    assert update.digest == adapter_digest(update.adapter)


def test_unknown_behaviour():
    with pytest.raises(ValueError, match="unknown behaviour 'spy'"):
        craft_update("spy", "acme", GLOBAL, None, num_examples=1, local_steps=1, seed=0)
