"""The round's defences: what they reject or down-weight, and that every decision and its reason
reaches the consortium channel (screens in isolation, then on the real tiny env)."""

from __future__ import annotations

import json

import pytest
import torch

import fedenv
from fedenv.engine.federation import ClientUpdate
from fedenv.ledgers.chaincode import CHAINCODE
from fedenv.ledgers.run_ledgers import round_key
from fedenv.scoring.reputation import next_reputation
from fedenv.scoring.robust import fltrust_trust, foolsgold_weights, krum_selection
from fedenv.scoring.screening import norm_budget, rescaled

A, B = "m.q_proj.lora_A.weight", "m.q_proj.lora_B.weight"


def test_multi_krum_leaves_out_the_outlier():
    torch.manual_seed(0)
    changes = {f"h{i}": torch.ones(8) + 0.01 * torch.randn(8) for i in range(4)}
    changes["bad"] = -10 * torch.ones(8)
    assert set(krum_selection(changes, byzantine=1)) == {"h0", "h1", "h2", "h3"}
    assert set(krum_selection({"a": torch.ones(2), "b": -torch.ones(2)}, 1)) == {"a", "b"}


def test_fltrust_trusts_by_direction_and_never_a_reversed_update():
    root = torch.tensor([1.0, 0.0])
    trust = fltrust_trust(
        {"same": torch.tensor([5.0, 0.0]), "flip": torch.tensor([-1.0, 0.0]),
         "side": torch.tensor([1.0, 1.0])},
        root,
    )
    assert trust["same"] == pytest.approx(1.0) and trust["flip"] == 0.0
    assert trust["side"] == pytest.approx(2**-0.5)


def test_foolsgold_weighs_down_identical_histories_not_a_distinct_one():
    weights = foolsgold_weights(
        {"s1": torch.tensor([1.0, 1.0, 0.0]), "s2": torch.tensor([1.0, 1.0, 0.0]),
         "honest": torch.tensor([0.0, -1.0, 1.0])},
        confidence=1.0,
    )
    assert weights["s1"] == weights["s2"] == 0.0 and weights["honest"] == 1.0


def test_reputation_decays_towards_what_happened():
    assert next_reputation(1.0, False, 0.7) == pytest.approx(0.7)
    assert next_reputation(0.7, True, 0.7) == pytest.approx(0.79)


def test_the_norm_budget_counts_the_steps_that_move_each_tensor():
    fresh = {A: torch.zeros(2, 4), B: torch.zeros(4, 2)}  # lora_B zero: A moves from step 2 on
    assert norm_budget(fresh, steps=3, learning_rate=0.1, trains_lora_a=True) == pytest.approx(
        0.1 * (3 * 8 + 2 * 8) ** 0.5
    )
    assert norm_budget(fresh, steps=3, learning_rate=0.1, trains_lora_a=False) == pytest.approx(
        0.1 * (3 * 8) ** 0.5
    )
    start = {A: torch.zeros(2, 4), B: torch.zeros(4, 2)}
    update = ClientUpdate.create(
        "x", {A: torch.ones(2, 4), B: torch.ones(4, 2)}, num_examples=1, local_steps=1
    )
    half = rescaled(update, start, [B], 0.5)
    assert torch.equal(half.adapter[B], torch.full((4, 2), 0.5))
    assert torch.equal(half.adapter[A], torch.ones(2, 4))  # not a trained key: as sent


def _corrupting(player, bad: dict[str, float]):
    """``player``'s updates, with one value of each of ``bad``'s organizations replaced (what a
    broken or hostile client sends)."""
    send = player._updates

    def updates(participants, round_seed):
        sent, trained = send(participants, round_seed)
        out = []
        for update in sent:
            if update.org in bad:
                adapter = {k: v.clone() for k, v in update.adapter.items()}
                key = min(adapter)
                adapter[key].view(-1)[0] = bad[update.org]
                update = ClientUpdate.create(
                    update.org, adapter, num_examples=update.num_examples,
                    local_steps=update.local_steps,
                )
            out.append(update)
        return out, trained

    return updates


def test_nan_and_inf_updates_are_rejected_recorded_on_the_channel_and_never_aggregated():
    env = fedenv.parallel_env("tiny", max_rounds=1)
    try:
        env.reset(seed=0)
        player = env._player
        player._updates = _corrupting(player, {"skyway": float("nan"), "citycare": float("inf")})
        infos = env.step({a: 1 for a in env.agents})[4]
        for org in ("skyway", "citycare"):
            assert not infos[org]["accepted"] and infos[org]["payout"] == 0.0
            assert infos[org]["reasons"] == [infos[org]["reasons"][0]]
            assert infos[org]["reasons"][0].startswith("non_finite: ")
            assert "NaN/inf" in infos[org]["reasons"][0]
        assert infos["northbank"]["accepted"] or infos["northbank"]["reasons"]
        adapter = player.engine.global_adapter
        assert all(torch.isfinite(t).all() for t in adapter.values())
        ledgers = player.ledgers
        peer = ledgers.channels[ledgers.scoring_channel].peers[0]
        stored, _ = peer.state.get(CHAINCODE, f"scores/{round_key(player.episode, 0)}")
        record = json.loads(stored)["participants"]
        assert record["skyway"]["reasons"] == infos["skyway"]["reasons"]
        assert record["skyway"]["weight"] == 0.0 and not record["skyway"]["accepted"]
    finally:
        env.close()


def test_reputation_is_kept_on_the_channel_and_lowers_a_rejected_org():
    orgs = fedenv.load_scenario("tiny").to_dict()["organizations"]
    orgs[2]["behaviour"] = "free_rider"
    for org in orgs:
        org["budget"] = 100.0
    env = fedenv.parallel_env(
        "tiny", organizations=orgs, max_rounds=2, **{"defence.reputation": True}
    )
    try:
        env.reset(seed=0)
        steps = [env.step({a: 1 for a in env.agents}) for _ in range(2)]
        seen = [step[4] for step in steps]
        rate = env.observation_fields.index("acceptance_rate")
    finally:
        env.close()
    assert [i["skyway"]["reputation"] for i in seen] == pytest.approx([0.7, 0.49])
    # the observation's acceptance_rate is another measure: the share of its updates accepted
    assert "reputation" not in env.observation_fields
    assert [step[0]["skyway"][rate] for step in steps] == [0.0, 0.0]
    assert all(i["northbank"]["reputation"] == 1.0 for i in seen if i["northbank"]["accepted"])
