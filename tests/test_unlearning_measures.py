"""The membership-inference measure's sample sizes and standard errors, calibrated_replay's
training bounded by ``calibration_budget`` per request, and both deterministic (tiny scenario)."""

from __future__ import annotations

import math
import re

import pytest
import torch

import fedenv
from fedenv.errors import ConfigError
from fedenv.scenario import load_scenario
from fedenv.unlearning.measures import MembershipScore
from fedenv.unlearning.methods import METHODS, calibrated_change

SETTINGS = {"max_rounds": 6, "scoring.reject_negative": False}
LATE = "northbank"  # takes part in the last round only
ROUNDS = 3


def _episode(run_dir, **overrides):
    """Three rounds at level 1; ``LATE`` sits out the first two."""
    env = fedenv.parallel_env("tiny", run_dir=run_dir, **{**SETTINGS, **overrides})
    env.reset(seed=7)
    for r in range(ROUNDS):
        env.step({a: (0 if a == LATE and r < ROUNDS - 1 else 1) for a in env.agents})
    return env


@pytest.fixture(scope="module")
def episode(tmp_path_factory):
    env = _episode(tmp_path_factory.mktemp("measures") / "run")
    yield env
    env.close()


def _delong(members, non_members):
    """DeLong's AUC and its standard error, written out with loops."""

    def psi(m, n):
        return 1.0 if m < n else 0.5 if m == n else 0.0

    v10 = [sum(psi(m, n) for n in non_members) / len(non_members) for m in members]
    v01 = [sum(psi(m, n) for m in members) / len(members) for n in non_members]
    auc = sum(v10) / len(v10)

    def var(values):
        mean = sum(values) / len(values)
        return sum((v - mean) ** 2 for v in values) / (len(values) - 1)

    return auc, math.sqrt(var(v10) / len(v10) + var(v01) / len(v01))


def test_delong_standard_errors():
    score = MembershipScore((0.1, 0.5, 0.9, 0.3), (0.2, 0.6, 1.0, 0.5, 0.4, 0.7))
    auc, se = _delong(score.members, score.non_members)
    assert score.auc == pytest.approx(auc) and score.se == pytest.approx(se)
    assert 0.0 < score.se < 0.5
    assert score.difference_se(score) == 0.0  # the same model: nothing differs
    shifted = MembershipScore(tuple(m + 0.25 for m in score.members), score.non_members)
    assert shifted.auc < score.auc and score.difference_se(shifted) > 0.0
    with pytest.raises(ValueError, match="same members"):
        score.difference_se(MembershipScore(score.members[:3], score.non_members))
    assert math.isnan(MembershipScore((0.1,), (0.2, 0.3)).se)


@pytest.mark.parametrize(
    "key, value, problem",
    [
        ("calibration_budget", 1.5, "must be in [0, 1]"),
        ("calibration_budget", -0.1, "must be in [0, 1]"),
        ("mia_non_member_ratio", 0, "must be >= 1"),
    ],
)
def test_bad_policy_values_fail_at_load_naming_the_key(key, value, problem):
    with pytest.raises(ConfigError, match=rf"unlearning_policy\.{key}: {re.escape(problem)}"):
        load_scenario("tiny", **{f"unlearning_policy.{key}": value})


def test_the_mia_compares_every_trained_dialogue_with_more_unseen_ones(episode):
    results = episode.unwrapped.compare_unlearning("skyway", ("exact_replay",))
    engine = episode.unwrapped._player.engine
    trained = len(engine.dataset("skyway"))  # level 1 of tiny trains on all of its data
    for name in ("before", "retrain", "exact_replay"):
        m = results[name]["measures"]
        assert m["mia_members"] == trained
        assert m["mia_non_members"] == 4 * trained  # [unlearning_policy] mia_non_member_ratio
        assert 0.0 < m["mia_auc_se"] < 0.2
    gaps = results["exact_replay"]["gaps"]
    assert gaps["oracle_mia_auc_gap"] == pytest.approx(abs(gaps["oracle_mia_auc_signed_gap"]))
    assert gaps["oracle_mia_auc_gap_se"] >= 0.0
    assert results["retrain"]["gaps"]["oracle_mia_auc_gap_se"] == 0.0


@pytest.mark.parametrize("org", [LATE, "skyway"])
@pytest.mark.parametrize("budget", [0.0, 0.25, 0.5, 1.0])
def test_the_calibration_budget_bounds_each_requests_training(episode, org, budget):
    unlearner = episode.unwrapped._unlearner
    policy = unlearner.policy
    unlearner.policy = policy.model_copy(update={"calibration_budget": budget})
    try:
        results = episode.unwrapped.compare_unlearning(org, ("calibrated_replay",))
    finally:
        unlearner.policy = policy
    calibrated, retrain = results["calibrated_replay"], results["retrain"]
    plan = calibrated["details"]
    assert retrain["training_steps"] > 0
    assert plan["retrain_training_steps"] == retrain["training_steps"]
    assert calibrated["training_steps"] == plan["calibration_training_steps"]
    assert calibrated["training_steps"] <= budget * retrain["training_steps"]
    if not plan["calibrated_rounds"]:
        assert calibrated["training_steps"] == 0
        assert re.search("allows no calibration|nothing to calibrate", plan["calibration_note"])
    # the first replayed round starts as it was played: never calibrated; the next one is when
    # the budget allows (LATE is replayed in its one round only)
    first_replayed = 2 if org == LATE else 0
    assert first_replayed not in plan["calibrated_rounds"]
    if budget == 1.0 and org != LATE:
        assert plan["calibrated_rounds"][0] == 1 and calibrated["training_steps"] > 0


def test_a_round_replayed_from_its_recorded_start_keeps_its_stored_updates(episode):
    """LATE took part in the last round only: that round is replayed from the state it was
    played from, so its stored updates are the ones retrain trains there; calibrating them would
    only approximate them.  Whatever the budget, calibrated_replay rebuilds exact_replay's
    state, bit for bit, and that is retrain's up to rounding."""
    unlearner = episode.unwrapped._unlearner
    record = unlearner.episode_record(LATE, episode.unwrapped.round_log)
    engine = record.engine
    current = engine.global_state()
    policy = unlearner.policy.model_copy(update={"calibration_budget": 1.0})
    try:
        states = {}
        for name in ("calibrated_replay", "exact_replay", "retrain"):
            engine.load_global_state(current)
            rebuilt = METHODS[name](record, policy)
            states[name] = rebuilt.state
            if name == "calibrated_replay":
                assert rebuilt.training_steps == 0 and rebuilt.details["calibrated_rounds"] == []
                assert "nothing to calibrate" in rebuilt.details["calibration_note"]
    finally:
        engine.load_global_state(current)
    for key, value in states["exact_replay"].items():
        assert torch.equal(states["calibrated_replay"][key], value), key
        torch.testing.assert_close(states["retrain"][key], value, rtol=1e-4, atol=1e-6)


def test_a_calibration_moves_each_coordinate_as_far_as_the_stored_update_did():
    """A one-step AdamW calibration is lr * sign(gradient) on every coordinate: its changes say
    which way, not how far.  The calibrated change keeps the stored change's magnitude per
    coordinate (a coordinate the stored training left still stays still), the calibration's
    sign, and no move where the calibration made none (FedEraser's per-layer norm spreads the
    stored norm over every coordinate, the still ones included)."""
    stored = torch.tensor([[0.02, 0.0, -0.001], [0.0, 0.03, 0.0]])
    calibration = torch.tensor([[-0.01, 0.01, 0.01], [0.01, 0.01, 0.0]])  # Adam's first step
    changed = calibrated_change(stored, calibration)
    assert torch.equal(changed, torch.tensor([[-0.02, 0.0, 0.001], [0.0, 0.03, 0.0]]))
    assert torch.equal(changed.abs(), stored.abs() * (calibration != 0))


def test_an_org_of_one_round_gets_no_calibration_under_the_default_budget(tmp_path):
    env = _episode(tmp_path / "run")
    try:
        outcome = env.unwrapped.request_unlearning(LATE, method="calibrated_replay")
        if outcome is None:  # agents left: carried out at the next step
            _, _, _, _, infos = env.step({a: 1 for a in env.agents})
            outcome, info = env.unwrapped.unlearning_log[-1], infos[LATE]["unlearning"]
        else:
            info = outcome.info()
    finally:
        env.close()
    # round 2 only: 2 remaining orgs x 1 step to retrain, a quarter of which is no step at all
    assert outcome.training_steps == {"retrain": 2, "calibrated_replay": 0}
    assert info["calibrated_rounds"] == [] and info["calibration_budget_steps"] == 0
    assert "nothing to calibrate" in info["calibration_note"]
    assert info["training_steps_calibrated_replay"] == 0 and info["mia_non_members"] > 0


def _certificate(run_dir):
    env = _episode(run_dir, **{"unlearning_policy.calibration_budget": 1.0})
    try:
        outcome = env.unwrapped.request_unlearning("skyway", method="calibrated_replay")
        if outcome is None:
            env.step({a: 1 for a in env.agents})
            outcome = env.unwrapped.unlearning_log[-1]
        return outcome, (run_dir / outcome.certificate_file).read_bytes()
    finally:
        env.close()


def test_the_same_seed_gives_the_same_calibrated_certificate(tmp_path):
    first, data = _certificate(tmp_path / "a")
    second, again = _certificate(tmp_path / "b")
    assert first.training_steps["calibrated_replay"] > 0  # it trained, and trained the same
    assert data == again and first.certificate_digest == second.certificate_digest
    assert first.details == second.details and first.measures == second.measures
