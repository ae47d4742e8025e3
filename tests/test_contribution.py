"""Contribution scoring against cooperative games whose values are known in closed form."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from fedenv.errors import ConfigError
from fedenv.scoring.contribution import METHODS, contributions

PLAYERS = ["a", "b", "c", "d"]


def additive(weights):
    return lambda s: sum(weights[p] for p in s)


def random_game(players, seed):
    """A game with an independent random value for every coalition (v(empty) = 0.3)."""
    rng = np.random.default_rng(seed)
    table = {
        frozenset(c): float(rng.normal())
        for k in range(1, len(players) + 1)
        for c in itertools.combinations(players, k)
    }
    table[frozenset()] = 0.3
    return table.__getitem__


def glove_game(s):
    """'left' holds a left glove, 'r1' and 'r2' right gloves; a pair is worth 1."""
    return float("left" in s and ("r1" in s or "r2" in s))


@pytest.mark.parametrize("method", METHODS)
def test_additive_game_pays_each_player_its_own_value(method):
    weights = {"a": 1.0, "b": -0.5, "c": 2.5, "d": 0.0}
    got = contributions(
        method,
        PLAYERS,
        additive(weights),
        rng=np.random.default_rng(0),
        permutations=8,
        tolerance=0.0,
    )
    assert got == pytest.approx(weights)


def test_symmetric_game_splits_equally():
    got = contributions("shapley", PLAYERS, lambda s: len(s) ** 2)
    assert got == pytest.approx(dict.fromkeys(PLAYERS, 16 / 4))


def test_glove_game_closed_form():
    players = ["left", "r1", "r2"]
    assert contributions("shapley", players, glove_game) == pytest.approx(
        {"left": 2 / 3, "r1": 1 / 6, "r2": 1 / 6}
    )
    assert contributions("loo", players, glove_game) == {"left": 1.0, "r1": 0.0, "r2": 0.0}


@pytest.mark.parametrize("method", ["shapley", "tmc_shapley"])
def test_efficiency_shares_out_the_whole_gain(method):
    players = list("abcde")
    value = random_game(players, seed=1)
    got = contributions(
        method, players, value, rng=np.random.default_rng(2), permutations=7, tolerance=0.0
    )
    assert sum(got.values()) == pytest.approx(value(frozenset(players)) - value(frozenset()))


def test_tmc_converges_to_exact_shapley_on_six_players():
    players = list("abcdef")
    value = random_game(players, seed=3)
    exact = contributions("shapley", players, value)
    estimate = contributions(
        "tmc_shapley",
        players,
        value,
        rng=np.random.default_rng(4),
        permutations=3000,
        tolerance=0.0,
    )
    for p in players:
        assert estimate[p] == pytest.approx(exact[p], abs=0.06)
    assert max(abs(e) for e in exact.values()) > 0.2  # the game is not trivially near zero


def test_tmc_truncates_once_the_prefix_reaches_the_full_value():
    players = list("abcdefgh")
    calls = {0.0: [], 1e-9: []}
    for tolerance, seen in calls.items():
        got = contributions(
            "tmc_shapley",
            players,
            lambda s, seen=seen: seen.append(s) or float("a" in s),
            rng=np.random.default_rng(0),
            permutations=16,
            tolerance=tolerance,
        )
        assert got == pytest.approx({p: float(p == "a") for p in players})
    # once "a" has joined, the rest of a permutation is skipped
    assert len(calls[1e-9]) < len(calls[0.0])


def test_tmc_skips_a_round_without_gain():
    got = contributions(
        "tmc_shapley",
        PLAYERS,
        lambda s: 5.0 + 0.001 * len(s),
        rng=np.random.default_rng(0),
        permutations=5,
        tolerance=0.01,
    )
    assert got == dict.fromkeys(PLAYERS, 0.0)


def test_tmc_is_reproducible_from_the_seed():
    value = random_game(list("abcdef"), seed=5)
    runs = [
        contributions(
            "tmc_shapley",
            list("abcdef"),
            value,
            rng=np.random.default_rng(9),
            permutations=5,
            tolerance=0.0,
        )
        for _ in range(2)
    ]
    assert runs[0] == runs[1]


@pytest.mark.parametrize("method, calls", [("loo", 5), ("shapley", 16)])
def test_value_is_called_once_per_coalition(method, calls):
    seen = []
    contributions(method, PLAYERS, lambda s: seen.append(s) or len(s))
    assert len(seen) == len(set(seen)) == calls


def test_no_players_no_contributions():
    assert contributions("shapley", [], lambda s: 1.0) == {}


def test_bad_calls_are_named():
    with pytest.raises(ConfigError, match="unknown method 'banzhaf'.*loo, shapley, tmc_shapley"):
        contributions("banzhaf", PLAYERS, len)
    with pytest.raises(ConfigError, match="at most 8 players, got 9"):
        contributions("shapley", list("abcdefghi"), len)
    with pytest.raises(ValueError, match="seeded rng"):
        contributions("tmc_shapley", PLAYERS, len)
    with pytest.raises(ValueError, match="distinct"):
        contributions("loo", ["a", "a"], len)
