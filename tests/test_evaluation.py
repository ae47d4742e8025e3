"""Comparing mechanisms: the metrics from hand-made records, and a tiny real comparison."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
from support_records import org_outcome, round_outcome

import fedenv
from fedenv.errors import ConfigError
from fedenv.evaluation.play import (
    METRICS,
    EpisodeRecord,
    compare,
    episode_metrics,
    jain_index,
    mean_metrics,
    pearson,
    plan_comparison,
    play_episode,
)
from fedenv.scenario import SCENARIO_DIR

# --- a policy factory, as a caller (evaluate.py wires agents/) provides one -------------------


class RandomLevels:
    """Every live organization picks a uniformly random action from a generator seeded by the
    run's seed: the actions never depend on rewards, so every mechanism sees the same ones."""

    def __init__(self, seed: int, n_actions: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.n_actions = n_actions

    def act(self, observations):
        return {org: int(self.rng.integers(self.n_actions)) for org in observations}


@dataclass(frozen=True)
class RandomLevelsFactory:
    def __call__(self, env, seed: int) -> RandomLevels:
        return RandomLevels(seed, int(env.action_space(env.possible_agents[0]).n))


# --- metric functions on hand-made values ----------------------------------------------------------


def test_jain_index_is_one_for_equal_shares_and_one_over_n_when_one_takes_all():
    assert jain_index([2.0, 2.0, 2.0]) == pytest.approx(1.0)
    assert jain_index([5.0, 0.0, 0.0, 0.0]) == pytest.approx(0.25)
    assert jain_index([1.0, 2.0, 3.0]) == pytest.approx(36 / 42)  # (1+2+3)^2 / (3 * 14)
    assert jain_index([]) is None
    assert jain_index([0.0, 0.0]) is None
    with pytest.raises(ValueError, match="non-negative"):
        jain_index([1.0, -1.0])


def test_pearson_matches_numpy_and_is_undefined_for_constant_series():
    x, y = [1.0, 2.0, 4.0, 7.0], [0.5, 0.1, 2.0, 3.0]
    assert pearson(x, y) == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert pearson([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert pearson([1, 2, 3], [10 / 3] * 3) is None
    assert pearson([1.0], [2.0]) is None
    with pytest.raises(ValueError, match="equal length"):
        pearson([1, 2], [1, 2, 3])


def test_episode_metrics_from_hand_made_rounds():
    # a: honest, pays off; b: malicious ("noise"); c: takes part once, then runs out of budget
    # (absent from round 2); d: never takes part.
    rounds = (
        round_outcome(
            {
                "a": org_outcome(contribution=0.4, payout=6.0, cost=1.0, reward=5.5),
                "b": org_outcome(contribution=0.1, payout=4.0, cost=2.0, reward=2.0),
                "c": org_outcome(contribution=-0.2, accepted=False, cost=3.0, reward=-3.0),
                "d": org_outcome(participated=False),
            },
            global_score=2.0,
            domain_scores={"bank": 3.0, "telecom": 1.0},
        ),
        round_outcome(
            {
                "a": org_outcome(contribution=0.6, payout=10.0, cost=1.0, reward=9.4),
                "b": org_outcome(participated=False),
                "d": org_outcome(participated=False),
            },
            global_score=2.5,
            domain_scores={"bank": 4.0, "telecom": 1.0},
            attack_measures={"backdoor_asr": 0.25},
        ),
    )
    episode = EpisodeRecord(
        ("a", "b", "c", "d"),
        base_score=1.5,
        base_domain_scores={"bank": 2.0, "telecom": 1.0},
        rounds=rounds,
        malicious=frozenset({"b"}),
        unknown_domains=("bank",),
    )
    m = episode_metrics(episode)
    assert set(m) == set(METRICS)
    assert m["model/final_score"] == 2.5
    assert m["model/score_gain"] == pytest.approx(1.0)
    assert m["model/private_domain_gain"] == pytest.approx(2.0)  # bank: 4 - 2
    assert m["cost/total_payout"] == pytest.approx(20.0)
    assert m["cost/total_org_cost"] == pytest.approx(7.0)
    assert m["efficiency/gain_per_payout"] == pytest.approx(1.0 / 20.0)
    assert m["participation/rate"] == pytest.approx(4 / 8)  # 4 of 4 orgs x 2 rounds
    took_part = ([1.0, 0.1, -0.2], [16.0, 4.0, 0.0])  # a, b, c: summed contribution, payout
    assert m["fairness/contribution_payout_corr"] == pytest.approx(np.corrcoef(*took_part)[0, 1])
    assert m["fairness/jain_payout"] == pytest.approx(20.0**2 / (3 * (16.0**2 + 4.0**2)))
    assert m["attack/payout_share_malicious"] == pytest.approx(4.0 / 20.0)
    assert m["welfare/total_reward"] == pytest.approx(5.5 + 2.0 - 3.0 + 9.4)
    assert m["attack/backdoor_asr"] == 0.25  # the last round's measure
    assert m["attack/false_fact_acceptance"] is None  # no false_facts attacker measured
    assert m["attack/honest_false_rejection"] == pytest.approx(1 / 3)  # a twice, c once: c out
    assert m["attack/attacker_rejection"] == 0.0  # b's one update went in


def test_metrics_that_do_not_apply_are_none_and_skipped_by_the_mean():
    unpaid = EpisodeRecord(
        ("a", "b"),
        1.0,
        {"retail": 1.0},
        (
            round_outcome(
                {
                    "a": org_outcome(contribution=0.3, cost=1.0, reward=-0.8),
                    "b": org_outcome(contribution=0.1, cost=1.0, reward=-0.9),
                },
                1.4,
                {"retail": 1.4},
            ),
        ),
    )
    m = episode_metrics(unpaid)
    assert m["cost/total_payout"] == 0.0
    assert m["efficiency/gain_per_payout"] is None
    assert m["fairness/contribution_payout_corr"] is None  # payouts are constant (all zero)
    assert m["fairness/jain_payout"] is None
    assert m["attack/payout_share_malicious"] is None  # nothing paid: no share to compare
    assert m["model/private_domain_gain"] is None  # no domain unknown to the base model
    paid = {**m, "efficiency/gain_per_payout": 0.5}
    means = mean_metrics([m, paid])
    assert means["efficiency/gain_per_payout"] == 0.5
    assert means["fairness/jain_payout"] is None
    assert means["model/score_gain"] == pytest.approx(0.4)
    with pytest.raises(ValueError, match="without rounds"):
        episode_metrics(EpisodeRecord(("a",), 1.0, {}, ()))


# --- the plan -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, field, message",
    [
        ({"mechanisms": ["equal", "bribes"]}, "mechanisms", "unknown mechanism 'bribes'"),
        ({"mechanisms": ["equal", "equal"]}, "mechanisms", "repeated mechanism"),
        ({"scenarios": ["no_such_scenario"]}, "scenario", "no such file"),
        ({"scenarios": []}, "scenario", "at least one"),
        ({"seeds": [0, -1]}, "seeds", "integers >= 0"),
        ({"seeds": [1, 1]}, "seeds", "repeated seed"),
        ({"episodes": 0}, "episodes", "must be an integer >= 1"),
        ({"overrides": {"max_rounds": 0}}, "override", "max_rounds: must be >= 1"),
        ({"overrides": {"no_such_key": 1}}, "override", "unknown override"),
        ({"contribution": "banzhaf"}, "contribution", "unknown method 'banzhaf'"),
    ],
)
def test_plan_refuses_bad_input_naming_the_field(kwargs, field, message):
    args = {"scenarios": ["tiny"], **kwargs}
    with pytest.raises(ConfigError, match=message) as caught:
        plan_comparison(args.pop("scenarios"), **args)
    assert caught.value.field == field


def test_plan_defaults_to_every_mechanism_and_orders_runs_scenario_mechanism_seed(tmp_path):
    plan = plan_comparison(
        ["tiny"], seeds=[3, 1], overrides={"max_rounds": 2}, contribution="shapley"
    )
    assert plan.mechanisms == tuple(fedenv.scoring.incentives.MECHANISMS)
    assert plan.scenarios[0].max_rounds == 2
    assert plan.scenarios[0].scoring.contribution == "shapley"
    runs = plan.runs(tmp_path)
    assert [(r.mechanism, r.seed) for r in runs[:3]] == [("shapley", 3), ("shapley", 1), ("loo", 3)]
    assert runs[0].run_dir == str(tmp_path / "tiny" / "shapley" / "seed-3")


# --- a tiny real comparison ----------------------------------------------------------------------------

OVERRIDES = {"max_rounds": 2, "scoring.reject_negative": False, "device": "cpu"}


@pytest.fixture(scope="module")
def comparison():
    plan = plan_comparison(["tiny"], ["equal", "none"], seeds=[0], episodes=1, overrides=OVERRIDES)
    return compare(plan, RandomLevelsFactory())


class LearningRandomLevels(RandomLevels):
    """Random levels that keep every ``learn`` call and its rewards (a :class:`Learner`)."""

    def __init__(self, seed: int, n_actions: int) -> None:
        super().__init__(seed, n_actions)
        self.steps = []

    def learn(self, observations, actions, rewards, next_observations, terminations, truncations):
        self.steps.append((set(observations), dict(actions), dict(rewards)))
        return {}


def test_play_episode_records_the_envs_rounds_and_lets_a_learner_learn():
    env = fedenv.parallel_env("tiny", mechanism="shapley", **OVERRIDES)
    controller = LearningRandomLevels(5, int(env.action_space("skyway").n))
    try:
        record = play_episode(env, controller, seed=5, learn=True)
        log = list(env.round_log)
    finally:
        env.close()
    assert len(record.rounds) == len(log) == len(controller.steps) == 2
    assert all(kept is played for kept, played in zip(record.rounds, log))  # no parallel copy
    for (seen, actions, rewards), played in zip(controller.steps, log):
        assert seen == set(env.possible_agents) == set(actions) == set(played.orgs)
        assert {org: row.level for org, row in played.orgs.items()} == actions
        assert rewards == {org: row.reward for org, row in played.orgs.items()}
    # The base scores come from the reset observations: a first-round participant's model value
    # (weight 1 x own-domain gain) recovers its domain's base score independently.
    first = log[0]
    for org, row in first.orgs.items():
        if row.participated:
            before = first.domain_score(org) - row.model_value
            assert record.base_domain_scores[row.domain] == pytest.approx(before, abs=1e-5)
    metrics = episode_metrics(record)
    all_rows = [row for played in log for row in played.orgs.values()]
    assert metrics["cost/total_payout"] == pytest.approx(sum(r.payout for r in all_rows))
    assert metrics["welfare/total_reward"] == pytest.approx(sum(r.reward for r in all_rows))
    assert metrics["cost/total_org_cost"] == pytest.approx(sum(r.costs.total for r in all_rows))


def test_payout_total_is_the_sum_of_the_rounds_payouts(comparison):
    for run in comparison.runs:
        payouts = [row.payout for e in run.episodes for r in e.rounds for row in r.orgs.values()]
        costs = [row.costs.total for e in run.episodes for r in e.rounds for row in r.orgs.values()]
        assert run.metrics["cost/total_payout"] == pytest.approx(sum(payouts))
        assert run.metrics["cost/total_org_cost"] == pytest.approx(sum(costs))
        assert run.metrics["cost/total_org_cost"] > 0  # someone took part: the test has teeth


def test_none_pays_nothing_and_equal_splits_the_pool_among_participants(comparison):
    runs = {r.mechanism: r for r in comparison.runs}
    none = runs["none"]
    assert none.metrics["cost/total_payout"] == 0.0
    assert none.metrics["efficiency/gain_per_payout"] is None
    assert none.metrics["fairness/jain_payout"] is None
    pool = comparison.plan.scenarios[0].incentives.reward_pool
    shared = 0
    for round_ in runs["equal"].episodes[0].rounds:
        paid = [row.payout for row in round_.orgs.values() if row.participated]
        assert all(row.payout == 0.0 for row in round_.orgs.values() if not row.participated)
        if paid:
            assert paid == pytest.approx([pool / len(paid)] * len(paid))
            shared += len(paid) >= 2
    assert shared, "no round with two paid participants: pick another seed"


def test_mechanisms_see_common_random_numbers(comparison):
    # Actions that ignore rewards, the same episode seeds: the mechanism changes the payouts,
    # not the rounds; the federated model is bit-identical.
    equal, none = comparison.runs
    for a, b in zip(equal.episodes[0].rounds, none.episodes[0].rounds):
        assert {o: r.participated for o, r in a.orgs.items()} == {
            o: r.participated for o, r in b.orgs.items()
        }
        assert a.global_score == b.global_score
    assert equal.metrics["model/final_score"] == none.metrics["model/final_score"]
    assert equal.metrics["welfare/total_reward"] - none.metrics[
        "welfare/total_reward"
    ] == pytest.approx(equal.metrics["cost/total_payout"])
    assert math.isfinite(equal.metrics["model/private_domain_gain"])  # tiny's domains are private


def test_a_process_pool_gives_the_same_results_as_one_process(comparison):
    pooled = compare(comparison.plan, RandomLevelsFactory(), workers=2)
    assert [(r.mechanism, r.seed) for r in pooled.runs] == [("equal", 0), ("none", 0)]
    assert [r.metrics for r in pooled.runs] == [r.metrics for r in comparison.runs]


class EveryoneAtTheTop:
    """Every organization takes part at the highest level, every round."""

    def __init__(self, env, seed: int) -> None:
        self.level = int(env.action_space(env.possible_agents[0]).n) - 1

    def act(self, observations):
        return dict.fromkeys(observations, self.level)


def test_payouts_to_a_free_rider_count_as_paid_to_attackers(tmp_path):
    source = (SCENARIO_DIR / "tiny.toml").read_text()
    attacked = source.replace('name = "skyway"', 'name = "skyway"\nbehaviour = "free_rider"')
    assert attacked != source
    (tmp_path / "attacked.toml").write_text(attacked)
    plan = plan_comparison(
        [tmp_path / "attacked.toml"],
        ["equal", "none"],
        overrides={
            "max_rounds": 1,
            "scoring.reject_negative": False,
            "defence.near_global": 0.0,
        },
    )
    equal, none = compare(plan, EveryoneAtTheTop).runs
    # all three take part and are accepted (the free-rider screen is off): the equal split pays
    # the free rider a third
    assert equal.metrics["attack/payout_share_malicious"] == pytest.approx(1 / 3)
    assert equal.episodes[0].malicious == frozenset({"skyway"})
    assert none.metrics["attack/payout_share_malicious"] is None  # pays nobody, attackers neither
