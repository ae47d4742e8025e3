"""One seed derivation: fedenv's and the agents' copy of the same SeedSequence rule."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

import agents.base
from fedenv.seeding import derive_seed


def test_the_same_inputs_give_the_same_32_bit_seed_and_any_change_another():
    seed = derive_seed(0, "client", 1, "a")
    assert seed == derive_seed(0, "client", 1, "a") and 0 <= seed < 2**32
    others = {
        derive_seed(0, "client", 1, "b"),
        derive_seed(0, "client", 2, "a"),
        derive_seed(1, "client", 1, "a"),
        derive_seed(0, "round", 1, "a"),
        derive_seed(0, "client", 1),
    }
    assert seed not in others and len(others) == 5


def test_the_rule_is_numpy_seed_sequence_over_the_parts():
    assert derive_seed(7, 2, 5) == int(np.random.SeedSequence([7, 2, 5]).generate_state(1)[0])
    text = int.from_bytes(hashlib.sha256(b"episode").digest(), "big")
    expected = np.random.SeedSequence([7, text, 5]).generate_state(1)[0]
    assert derive_seed(7, "episode", 5) == int(expected)
    assert derive_seed(np.int64(7), np.uint8(2)) == derive_seed(7, 2)


@pytest.mark.parametrize("path", [(0,), (2, 17), (3, 0), (1, 2, 3)])
@pytest.mark.parametrize("seed", [0, 1, 12345, 2**40])
def test_agents_derive_the_same_seeds_for_integer_paths(seed, path):
    assert agents.base.derive_seed(seed, *path) == derive_seed(seed, *path)


@pytest.mark.parametrize(
    "parts, where",
    [((-1,), "seed"), ((0, -3), r"path\[0\]"), ((0, 1.5), r"path\[0\]"), ((0, True), r"path\[0\]")],
)
def test_negative_or_non_integer_parts_are_refused_by_name(parts, where):
    with pytest.raises(ValueError, match=where):
        derive_seed(*parts)
