"""Dilution-proof accounting on the real env (tiny scenario): a free rider, exact or noisy, earns
nothing in any round, a boosted update earns what its unboosted self earns, and contributions are
measured on the set that is aggregated."""

from __future__ import annotations

import pytest

import fedenv
from fedenv.data.benchmark import BenchmarkResult
from fedenv.engine.aggregators import AggregationRule
from fedenv.scoring import accounting
from fedenv.scoring.coalition_values import CoalitionValues
from fedenv.scoring.contribution import contributions
from fedenv.scoring.defence import Decision
from fedenv.scoring.incentives import MECHANISMS

ROUNDS = 2


def play(behaviours: dict[str, str], seed: int, **overrides) -> list[dict[str, dict]]:
    """One episode at every organization's top level; the infos of each round."""
    orgs = fedenv.load_scenario("tiny").to_dict()["organizations"]
    for org in orgs:
        org["behaviour"] = behaviours.get(org["name"], "honest")
        org["budget"] = 100.0  # nobody drops out before the last round
    env = fedenv.parallel_env(
        "tiny", organizations=orgs, seed=seed, max_rounds=ROUNDS, **overrides
    )
    try:
        env.reset(seed=seed)
        rounds = []
        while env.agents:
            top = {a: int(env.action_space(a).n) - 1 for a in env.agents}
            rounds.append(env.step(top)[4])
        return rounds
    finally:
        env.close()


@pytest.mark.parametrize("method", ["shapley", "loo"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_and_noisy_free_riders_earn_nothing_in_any_round(method, seed):
    riders = {"citycare": "free_rider", "skyway": "noisy_free_rider"}
    rounds = play(
        riders,
        seed,
        mechanism=method,
        contribution=method,
        **{"scoring.reject_negative": True},
    )
    assert len(rounds) == ROUNDS
    for infos in rounds:
        for org in riders:
            assert infos[org]["payout"] == 0.0 and not infos[org]["accepted"], infos[org]
            assert infos[org]["reasons"][0].startswith("near_global:")
        assert infos["northbank"]["accepted"] or infos["northbank"]["contribution"] < 0


@pytest.mark.parametrize("method", ["shapley", "loo"])
def test_the_accounting_alone_gives_an_exact_free_rider_nothing(method):
    """With the free-rider screen off, the free rider is scored, and accepted: the fixed shares
    make its marginal value 0 in every coalition, so it has nothing to be paid on."""
    rounds = play(
        {"skyway": "free_rider"},
        0,
        mechanism=method,
        contribution=method,
        **{"scoring.reject_negative": True, "defence.near_global": 0.0},
    )
    for infos in rounds:
        rider = infos["skyway"]
        assert rider["contribution"] == pytest.approx(0.0, abs=1e-9)
        assert rider["payout"] == pytest.approx(0.0, abs=1e-9)
    assert sum(i["payout"] for infos in rounds for i in infos.values()) > 0  # others are paid


def test_a_boosted_update_earns_no_more_than_its_unboosted_self():
    honest = play({}, 3, mechanism="shapley", contribution="shapley")
    boosted = play({"skyway": "scaled"}, 3, mechanism="shapley", contribution="shapley")
    for plain, boost in zip(honest, boosted):
        assert boost["skyway"]["reasons"][0].startswith("norm: change x")
        assert boost["skyway"]["payout"] <= plain["skyway"]["payout"] + 1e-3
        assert boost["skyway"]["contribution"] == pytest.approx(
            plain["skyway"]["contribution"], abs=1e-3
        )


def test_without_the_norm_rule_a_boost_changes_what_the_update_counts_for():
    """The control: with ``norm = "none"`` the same boost is scored as sent (so the rule above is
    what makes the difference)."""
    honest = play({}, 3, mechanism="shapley", contribution="shapley", **{"defence.norm": "none"})
    boosted = play(
        {"skyway": "scaled"}, 3, mechanism="shapley", contribution="shapley",
        **{"defence.norm": "none"},
    )
    assert boosted[0]["skyway"]["contribution"] != pytest.approx(
        honest[0]["skyway"]["contribution"], abs=1e-3
    )


def test_shares_are_those_of_the_aggregated_set():
    rounds = play({}, 0, mechanism="loo", contribution="loo")
    for infos in rounds:
        accepted = [i for i in infos.values() if i["accepted"]]
        assert sum(i["weight"] for i in accepted) == pytest.approx(1.0) if accepted else True
        assert all(i["weight"] == 0.0 for i in infos.values() if not i["accepted"])


# ----------------------------------------------------------------- the rule on a game of known values


def additive_game(effects):
    """A game whose ``value(S)`` is the sum of its members' effects; ``effects(players)`` gives
    each player's effect in the game of ``players`` (the set whose shares are renormalized).
    Returns the game and the list of player sets it was played on."""
    played = []

    def game(players):
        played.append(list(players))
        effect = effects(players)
        shares = {p: 1.0 / len(players) for p in players} if players else None
        return AggregationRule(shares=shares), CoalitionValues(
            lambda coalitions: [sum(effect[p] for p in c) for c in coalitions],
            known={frozenset(): 0.0},  # the current global's score, as a round knows it
        )

    return game, played


def settle_game(game, candidates, *, margin, reject=True):
    decisions = {o: Decision() for o in candidates}
    settlement = accounting.play(
        candidates,
        game,
        decisions,
        reject=reject,
        margin=margin,
        method="loo",
        pay_method=lambda n: None,
        score=lambda method, players, values, i: contributions(method, players, values),
        before=BenchmarkResult(0.0),
    )
    return settlement, decisions


def test_a_loss_within_the_margin_is_kept_and_a_clear_harm_rejected():
    effects = {"a": 0.3, "b": 0.2, "noise": -0.01, "bad": -0.5}
    game, played = additive_game(lambda players: effects)
    settlement, decisions = settle_game(game, list(effects), margin=0.1)
    assert settlement.accepted == ["a", "b", "noise"]
    assert decisions["noise"].accepted and decisions["noise"].contribution == pytest.approx(-0.01)
    assert not decisions["bad"].accepted
    assert decisions["bad"].reasons[0].startswith("contribution: -0.5 < -0.1")
    payouts = MECHANISMS["loo"].payouts(settlement.paid_on, dict.fromkeys(effects, 1), 10.0)
    assert payouts["noise"] == 0.0 and payouts["a"] == pytest.approx(6.0)
    # leave-one-out: N and each N - {i} in both games (the empty coalition is known)
    assert played == [["a", "b", "noise", "bad"], ["a", "b", "noise"]]
    assert settlement.evaluations == 5 + 4
    strict, decided = settle_game(additive_game(lambda p: effects)[0], list(effects), margin=0.0)
    assert strict.accepted == ["a", "b"] and not decided["noise"].accepted


def test_no_rejection_plays_one_game():
    game, played = additive_game(lambda players: {"a": 0.3, "b": -0.05})
    settlement, _ = settle_game(game, ["a", "b"], margin=0.1)
    assert settlement.accepted == ["a", "b"] and len(played) == 1 and settlement.evaluations == 3


def test_the_set_aggregated_is_scored_once_more_and_never_again():
    """``late`` helps among all candidates and harms once ``bad`` is out: the second game is the
    last; it stays in, measured on the set aggregated, and is paid nothing."""

    def effects(players):
        return {"a": 0.5, "b": 0.4, "bad": -0.5, "late": 0.05 if "bad" in players else -0.3}

    game, played = additive_game(effects)
    settlement, decisions = settle_game(game, ["a", "b", "bad", "late"], margin=0.1)
    assert len(played) == 2
    assert settlement.accepted == ["a", "b", "late"]
    assert settlement.paid_on["late"] == pytest.approx(-0.3) == decisions["late"].contribution
    payouts = MECHANISMS["loo"].payouts(settlement.paid_on, dict.fromkeys(["a", "b", "late"], 1), 10)
    assert payouts["late"] == 0.0


def test_a_set_that_lowers_the_score_is_not_committed():
    game, _ = additive_game(lambda players: {"a": 0.05, "b": -0.09})
    settlement, decisions = settle_game(game, ["a", "b"], margin=0.1)
    assert settlement.accepted == [] and settlement.paid_on == {}
    assert all(d.reasons[-1].startswith("aggregate:") for d in decisions.values())
    kept, _ = settle_game(additive_game(lambda p: {"a": 0.05, "b": -0.09})[0], ["a", "b"],
                          margin=0.1, reject=False)
    assert kept.accepted == ["a", "b"]
