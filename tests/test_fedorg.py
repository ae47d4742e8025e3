"""The env as the RL ecosystem uses it (held to, issue 14): PettingZoo's own API, state, render
and seed tests; two same-seed episodes; the ends of an episode as RLlib and TorchRL read them;
action masks and hard budgets; strict mode; ``max_cycles``; copies of a stepped env; close."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import data_equivalence
from pettingzoo.test import (
    api_test,
    parallel_api_test,
    parallel_seed_test,
    render_test,
    state_test,
)

import fedenv
from chains import verify_path
from fedenv.engine.build import shared_base
from fedenv.errors import ConfigError
from fedenv.fedorg import OBS_FIELDS, EnvClosedError, InvalidActionError

pytestmark = pytest.mark.usefixtures("shared_cache")
AGENT_NAMES = pytest.mark.filterwarnings("ignore:We recommend agents to be named")


def always_max(env):
    return {a: env.action_space(a).n - 1 for a in env.agents}


def heads(folder) -> list[tuple[str, str]]:
    reports = verify_path(folder)
    assert all(r.ok for r in reports), [r for r in reports if not r.ok]
    return sorted((r.path.rsplit("/", 1)[-1], r.head) for r in reports)


# --- PettingZoo's tests ----------------------------------------------------------------------


@pytest.mark.parametrize("mask_observations", [False, True])
def test_parallel_api_test(mask_observations):
    env = fedenv.parallel_env("tiny", mask_observations=mask_observations)
    try:
        parallel_api_test(env, num_cycles=10)
    finally:
        env.close()


@AGENT_NAMES
def test_api_test():
    aec = fedenv.env("tiny")
    try:
        api_test(aec, num_cycles=10)
    finally:
        aec.close()


@AGENT_NAMES
@pytest.mark.filterwarnings("ignore:State numpy array is all zeros")  # every agent done
def test_state_test():
    aec, parallel = fedenv.env("tiny"), fedenv.parallel_env("tiny")
    try:
        state_test(aec, parallel, num_cycles=10)
        state = parallel.state()
        assert state.shape == (3 * len(OBS_FIELDS),) and parallel.state_space.contains(state)
        parallel.step({"citycare": 2})
        while "citycare" in parallel.agents:
            parallel.step({"citycare": 2})
        rows = parallel.state().reshape(3, -1)
        assert not rows[1].any() and rows[0].any()  # a done organization's part is zeros
    finally:
        aec.close()
        parallel.close()


def test_render_test(capsys):
    render_test(lambda render_mode: fedenv.env("tiny", render_mode=render_mode))
    assert "round" in capsys.readouterr().out  # human mode printed the round tables


def test_parallel_seed_test():
    loads = shared_base.cache_info().misses
    parallel_seed_test(lambda: fedenv.parallel_env("tiny"))
    assert shared_base.cache_info().misses == loads  # both envs shared the loaded base model


# --- seeds, ends, masks and budgets ---------------------------------------------------------


def test_two_episodes_with_the_same_seed_are_the_same():
    """parallel_seed_test (PettingZoo 1.27) stops after one step: here two whole episodes, the
    second from an unseeded reset, with seeded masked random actions."""
    envs = [fedenv.parallel_env("tiny"), fedenv.parallel_env("tiny")]
    try:
        for episode in range(2):
            seed = 7 if episode == 0 else None
            first = [e.reset(seed=seed) for e in envs]
            assert data_equivalence(first[0], first[1])
            rngs = [np.random.default_rng(episode), np.random.default_rng(episode)]
            infos = first[0][1]
            while envs[0].agents:
                assert envs[0].agents == envs[1].agents
                steps = []
                for env, rng in zip(envs, rngs):
                    actions = {
                        a: int(rng.choice(np.flatnonzero(infos[a]["action_mask"])))
                        for a in env.agents
                    }
                    steps.append(env.step(actions))
                assert data_equivalence(steps[0], steps[1])
                infos = steps[0][4]
            assert not envs[1].agents
            assert envs[0].np_random.random() == envs[1].np_random.random()
    finally:
        for env in envs:
            env.close()


def test_the_last_round_ends_every_agent_as_gymnasium_defines_it():
    """Round max_rounds truncates everyone live in it; those out of budget in it are terminated
    too.  RLlib's ``__all__`` (all truncated) and TorchRL's done (any flag) both end there."""
    env = fedenv.parallel_env("tiny", max_rounds=2)
    try:
        env.reset(seed=0)
        _, _, terminations, truncations, _ = env.step(always_max(env))
        assert not any(terminations.values()) and not any(truncations.values())
        _, _, terminations, truncations, infos = env.step(always_max(env))
        # citycare and skyway cannot afford another round; northbank still could
        assert terminations == {"northbank": False, "citycare": True, "skyway": True}
        assert all(truncations.values()) and env.agents == []
        assert infos["northbank"]["action_mask"].tolist() == [1, 1, 0]
        assert infos["citycare"]["action_mask"].tolist() == [1, 0, 0]
    finally:
        env.close()


def round_cost(scenario, org, level) -> float:
    """What the scenario says a round at ``level`` costs ``org`` (costs.py's table, by hand)."""
    if not level:
        return 0.0
    spec = next(o for o in scenario.organizations if o.name == org)
    costs = scenario.costs
    return (
        spec.unit_cost * scenario.level(level).compute
        + costs.communication_per_update
        + 2 * costs.ledger_fee_per_tx
    )


def test_always_max_never_spends_past_a_budget():
    env = fedenv.parallel_env("tiny", max_rounds=6)
    try:
        env.reset(seed=1)
        sc = env.scenario
        budgets = {o.name: o.budget for o in sc.organizations}
        spent, played = dict.fromkeys(budgets, 0.0), []
        while env.agents:
            _, _, terminations, _, infos = env.step(always_max(env))
            for org, info in infos.items():
                assert info["cost_total"] == pytest.approx(round_cost(sc, org, info["resource"]))
                spent[org] += info["cost_total"]
                played.append(info["resource"])
                assert spent[org] <= budgets[org] * (1 + 1e-9)
                affordable = [
                    spent[org] + round_cost(sc, org, k) <= budgets[org] + 1e-9 for k in (0, 1, 2)
                ]
                assert info["action_mask"].tolist() == [int(a) for a in affordable]
                assert terminations[org] == (not any(affordable[1:]))
        assert 1 in played and 2 in played  # the max level, then what was left
        assert all(budgets[o] - spent[o] < round_cost(sc, o, 1) for o in budgets)  # all used up
    finally:
        env.close()


def test_strict_mode_refuses_what_the_default_forgives():
    env = fedenv.parallel_env("tiny", strict=True)
    try:
        env.reset(seed=0)
        env.step({"citycare": 2})
        height = env.run.ledgers.public.height
        with pytest.raises(InvalidActionError, match=r"action 2 of 'citycare' is masked: level 2 "
                           r"costs 2\.12, 1\.88 of its budget 4 is left \(action_mask \[1, 1, 0\]\)"):
            env.step({"citycare": 2})
        assert env.run.ledgers.public.height == height and len(env.round_log) == 1
        env.step({"citycare": 1})  # out of budget now
        assert "citycare" not in env.agents
        with pytest.raises(InvalidActionError, match="'citycare', which is done .*strict mode"):
            env.step({"citycare": 0, "skyway": 1})
        with pytest.raises(InvalidActionError, match="'acme', which is not an agent"):
            env.step({"acme": 1})
    finally:
        env.close()


def test_dict_observations_carry_the_mask():
    env = fedenv.parallel_env("tiny", mask_observations=True)
    try:
        observations, _ = env.reset(seed=0)
        space = env.observation_space("citycare")
        assert isinstance(space, spaces.Dict) and set(space) == {"observation", "action_mask"}
        assert all(space.contains(o) for o in observations.values())
        observations, *_ = env.step({"citycare": 2})
        mask = observations["citycare"]["action_mask"]
        assert mask.tolist() == [1, 1, 0] and env.action_space("citycare").sample(mask) in (0, 1)
    finally:
        env.close()


def test_max_cycles_is_max_rounds():
    env = fedenv.parallel_env("tiny", max_cycles=2)
    try:
        env.reset(seed=0)
        rounds = 0
        while env.agents:
            env.step({})
            rounds += 1
        assert rounds == 2 == env.scenario.max_rounds
    finally:
        env.close()
    with pytest.raises(ConfigError, match="max_cycles: is PettingZoo's name for max_rounds"):
        fedenv.parallel_env("tiny", max_cycles=2, max_rounds=3)


# --- copies and close --------------------------------------------------------------------------


@pytest.mark.parametrize("named", [False, True])
def test_a_copy_of_a_stepped_env_continues_as_the_original(tmp_path, named):
    original = fedenv.parallel_env("tiny", run_dir=tmp_path / "run" if named else None)
    copies = []
    try:
        original.reset(seed=5)
        original.step({"northbank": 1, "skyway": 2})
        before = heads(original.run.path)
        copies = [copy.deepcopy(original), pickle.loads(pickle.dumps(original))]
        folders = {original.run.path, *(c.run.path for c in copies)}
        assert len(folders) == 3  # never one folder for two envs
        if named:
            assert sorted(c.run.path.name for c in copies) == ["run.copy-1", "run.copy-2"]
        assert heads(original.run.path) == before  # copying left the original alone
        for c in copies:
            assert c.round_log == original.round_log and c.agents == original.agents
            assert np.array_equal(c.state(), original.state())
        while original.agents:
            actions = always_max(original)
            results = [e.step(actions) for e in (original, *copies)]
            assert data_equivalence(results[0], results[1])
            assert data_equivalence(results[0], results[2])
        assert all(not c.agents for c in copies)
        # the same ledgers, block for block, in three folders
        assert heads(original.run.path) == heads(copies[0].run.path) == heads(copies[1].run.path)
    finally:
        for env in (original, *copies):
            env.close()


def test_a_copy_of_a_fresh_env_plays_like_a_fresh_env():
    original = fedenv.parallel_env("tiny")
    duplicate = pickle.loads(pickle.dumps(original))
    try:
        assert duplicate.run.path != original.run.path
        results = [e.reset(seed=3) + e.step({"northbank": 1}) for e in (original, duplicate)]
        assert data_equivalence(results[0], results[1])
    finally:
        original.close()
        duplicate.close()


def test_a_closed_env_says_so():
    env = fedenv.parallel_env("tiny")
    env.reset(seed=0)
    env.close()
    env.close()  # twice is fine
    for call in (env.reset, lambda: env.step({}), env.state, env.render, lambda: pickle.dumps(env)):
        with pytest.raises(EnvClosedError, match="this fedorg_v0 env is closed; build a new one"):
            call()


def test_render_takes_the_argument_old_wrappers_pass():
    env = fedenv.parallel_env("tiny", render_mode="ansi")
    try:
        env.reset(seed=0)
        env.step({"skyway": 1})
        assert env.render(None) == env.render() and "skyway" in env.render()
        with pytest.raises(ConfigError, match="render_mode: must be one of"):
            env.render("rgb_array")
    finally:
        env.close()
