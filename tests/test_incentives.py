"""Incentive mechanisms: who gets what share of a round's pool."""

from __future__ import annotations

import numpy as np
import pytest

from fedenv.errors import ConfigError
from fedenv.scoring.incentives import MECHANISMS, get_mechanism, payout_method

SIZES = {"a": 100, "b": 50, "c": 50}


@pytest.mark.parametrize("name", ["shapley", "loo"])
def test_contribution_share_pays_positive_contributions_only(name):
    pay = get_mechanism(name).payouts({"a": 0.3, "b": 0.1, "c": -0.2}, SIZES, 8.0)
    assert pay == pytest.approx({"a": 6.0, "b": 2.0, "c": 0.0})


def test_contribution_share_keeps_the_pool_when_nobody_helped():
    assert get_mechanism("shapley").payouts({"a": -1.0, "b": 0.0, "c": -0.1}, SIZES, 8.0) == {
        "a": 0.0,
        "b": 0.0,
        "c": 0.0,
    }


def test_equal_data_size_and_none():
    c = {"a": 1.0, "b": 0.0, "c": -1.0}
    assert get_mechanism("equal").payouts(c, SIZES, 9.0) == pytest.approx(dict.fromkeys(SIZES, 3.0))
    assert get_mechanism("data_size").payouts(c, SIZES, 8.0) == pytest.approx(
        {"a": 4.0, "b": 2.0, "c": 2.0}
    )
    assert get_mechanism("none").payouts(c, SIZES, 8.0) == dict.fromkeys(SIZES, 0.0)


@pytest.mark.parametrize("name", sorted(MECHANISMS))
def test_payouts_are_nonnegative_and_within_the_pool(name):
    rng = np.random.default_rng(0)
    for _ in range(50):
        orgs = [f"o{i}" for i in range(rng.integers(1, 6))]
        contrib = {o: float(rng.normal()) for o in orgs}
        sizes = {o: int(rng.integers(1, 100)) for o in orgs}
        pay = get_mechanism(name).payouts(contrib, sizes, 10.0)
        assert set(pay) == set(orgs)
        assert all(p >= 0 for p in pay.values())
        assert sum(pay.values()) <= 10.0 + 1e-9


def test_registry_names_match_the_mechanisms():
    assert list(MECHANISMS) == ["shapley", "loo", "equal", "data_size", "none"]
    assert all(m.name == name for name, m in MECHANISMS.items())


def test_unknown_mechanism_lists_the_known_ones():
    with pytest.raises(
        ConfigError, match="unknown mechanism 'vcg'.*shapley, loo, equal, data_size, none"
    ):
        get_mechanism("vcg")


@pytest.mark.parametrize(
    ("mechanism", "scoring", "players", "expected"),
    [
        ("shapley", "shapley", 4, None),  # the scoring values are Shapley values already
        ("shapley", "tmc_shapley", 12, None),
        ("shapley", "loo", 4, "shapley"),  # pays on exact Shapley values it computes itself
        ("shapley", "loo", 12, "tmc_shapley"),  # too many players for the exact sum
        ("loo", "shapley", 4, "loo"),
        ("loo", "loo", 4, None),
        ("equal", "loo", 4, None),  # pays on no contribution at all
        ("none", "shapley", 4, None),
    ],
)
def test_each_mechanism_pays_on_its_own_measure(mechanism, scoring, players, expected):
    assert payout_method(get_mechanism(mechanism), scoring, players, 8) == expected
