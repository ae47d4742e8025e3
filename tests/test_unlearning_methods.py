"""The unlearning methods beyond exact_replay, a scheduled request with clawback, and two
organizations forgotten in one episode."""

from __future__ import annotations

import json

import pytest

import fedenv
from chains.verify import verify_path

SETTINGS = {"max_rounds": 5, "scoring.reject_negative": False}


@pytest.fixture(scope="module")
def episode(tmp_path_factory):
    run = tmp_path_factory.mktemp("methods") / "run"
    env = fedenv.parallel_env(
        "tiny",
        run_dir=run,
        unlearning=[{"round": 2, "org": "northbank", "method": "lora_gradient_ascent"}],
        **{"unlearning_policy.clawback": True},
        **SETTINGS,
    )
    env.reset(seed=5)
    steps = [env.step({a: 1 for a in env.agents}) for _ in range(2)]
    payouts = sum(s[4]["northbank"]["payout"] for s in steps)
    steps.append(env.step({a: 1 for a in env.agents}))  # northbank forgotten at its start
    assert not env.agents  # the others spent their budgets: no step follows
    immediate = env.unwrapped.request_unlearning("skyway", method="calibrated_replay")
    log = list(env.unwrapped.unlearning_log)
    assert log[-1] is immediate
    env.close()
    return {"run": run, "steps": steps, "payouts": payouts, "log": log}


def test_a_scheduled_request_claws_back_the_payouts(episode):
    _, rewards, terminations, _, infos = episode["steps"][2]
    assert episode["payouts"] > 0
    assert terminations["northbank"]
    assert rewards["northbank"] == pytest.approx(-episode["payouts"], abs=1e-6)
    assert infos["northbank"]["unlearning"]["clawback"] == pytest.approx(
        episode["payouts"], abs=1e-6
    )


def test_gradient_ascent_raises_the_forget_loss_within_its_bound(episode):
    ascent = episode["log"][0]
    assert ascent.method == "lora_gradient_ascent" and ascent.org == "northbank"
    m = ascent.measures
    assert m["forget_nll"] > m["before_forget_nll"]
    assert m["forget_nll"] < 6.0 + 1.0  # ascent_max_forget_loss bounds how far it climbs
    assert "oracle_forget_accuracy_gap" in m and ascent.timings["retrain"] > 0


def test_calibrated_replay_after_the_episode_leaves_out_everyone_forgotten(episode):
    calibrated = episode["log"][1]
    assert calibrated.method == "calibrated_replay" and calibrated.org == "skyway"
    certificate = json.loads((episode["run"] / calibrated.certificate_file).read_bytes())
    for step in certificate["replay"]:
        assert {u["org"] for u in step["updates"]} <= {"citycare"}
    assert set(calibrated.timings) == {"calibrated_replay", "retrain"}
    assert 0.0 <= calibrated.measures["mia_auc"] <= 1.0


def test_the_episode_still_verifies(episode):
    reports = verify_path(episode["run"])
    assert all(r.ok for r in reports), [r.summary() for r in reports if not r.ok]
