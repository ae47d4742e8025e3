"""TorchRL: the env in TorchRL's PettingZoo wrapper (mask on, done_on_any=False), a collector
and a MAPPO-style loss with the global state train on the tiny scenario, unpatched."""

from __future__ import annotations

import pytest

pytest.importorskip("torchrl", reason="needs the optional 'torchrl' extra")

import torch
from torchrl.collectors import Collector

from fedenv.fedorg import OBS_FIELDS
from fedenv.integrations.torchrl import GROUP, mappo_loss, mappo_modules, torchrl_env

pytestmark = pytest.mark.usefixtures("shared_cache")


def test_a_collector_and_mappo_train_on_the_tiny_scenario():
    torch.manual_seed(0)
    env = torchrl_env("tiny", seed=0)
    actor, critic = mappo_modules(env)
    loss = mappo_loss(actor, critic)
    optimizer = torch.optim.Adam(loss.parameters(), lr=3e-3)
    before = [p.detach().clone() for p in loss.parameters()]
    collector = Collector(
        env, actor, frames_per_batch=8, total_frames=16, auto_register_policy_transforms=False
    )
    batches = 0
    try:
        for data in collector:
            live = data[GROUP, "mask"]
            actions, allowed = data[GROUP, "action"], data[GROUP, "action_mask"]
            picked = allowed.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
            assert picked[live].all()  # live organizations only ever pick affordable levels
            assert data["state"].shape == (8, 3 * len(OBS_FIELDS))
            with torch.no_grad():
                loss.value_estimator(
                    data,
                    params=loss.critic_network_params,
                    target_params=loss.target_critic_network_params,
                )
            terms = loss(data)
            total = terms["loss_objective"] + terms["loss_critic"] + terms["loss_entropy"]
            assert torch.isfinite(total)
            optimizer.zero_grad()
            total.backward()
            optimizer.step()
            batches += 1
            if batches == 2:
                # every organization finished an episode: 3 rounds of tiny, then auto-reset
                assert data["next", "done"].any() and not live.all()
    finally:
        collector.shutdown()
    assert batches == 2
    assert any(not torch.equal(a, b) for a, b in zip(before, loss.parameters()))
