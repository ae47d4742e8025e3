"""SuperSuit 3.11.0's vector envs cannot drive fedenv, and say so (docs/integrations.md says
why; agents/sb3.py is the SB3 path, trained on fedenv in tests/test_sb3.py)."""

from __future__ import annotations

import numpy as np
import pytest

supersuit = pytest.importorskip("supersuit", reason="needs the optional 'supersuit' extra")

import fedenv
from fedenv.fedorg import InvalidActionError

pytestmark = pytest.mark.usefixtures("shared_cache")


def test_without_black_death_supersuit_refuses_organizations_that_finish_early():
    env = fedenv.parallel_env("tiny")
    venv = supersuit.pettingzoo_env_to_vec_env_v1(env)
    try:
        venv.reset(seed=0)
        with pytest.raises(AssertionError, match="does not support environments with varying numbers of active agents"):
            for _ in range(3):
                venv.step(np.array([2, 2, 2]))  # citycare and skyway run out after round 2
    finally:
        env.close()


def test_black_death_v3_steps_past_the_end_and_fedenv_says_why():
    env = fedenv.parallel_env("tiny")
    venv = supersuit.pettingzoo_env_to_vec_env_v1(supersuit.black_death_v3(env))
    try:
        venv.reset(seed=0)
        for _ in range(3):  # three rounds: every organization truncated, none both flags
            _, _, terminations, truncations, _ = venv.step(np.array([1, 0, 0]))
        assert not terminations.any() and not truncations.any()  # SuperSuit missed the end
        assert env.agents == []
        with pytest.raises(InvalidActionError, match="the episode is over .*black_death_v3"):
            venv.step(np.array([1, 0, 0]))
    finally:
        env.close()
