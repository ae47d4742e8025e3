"""Dilution-proof accounting on the real env (tiny scenario): a free rider, exact or noisy, earns
nothing in any round, a boosted update earns what its unboosted self earns, and contributions are
measured on the set that is aggregated."""

from __future__ import annotations

import pytest

import fedenv

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
