"""The env on the "tiny" scenario: spaces, bad actions, rewards and costs, and a short episode
with real training whose run folder verifies offline.  PettingZoo's own tests, the ends of an
episode, masks, budgets and copies: tests/test_fedorg.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from gymnasium import spaces

import fedenv
from chains import verify_path
from fedenv.errors import ConfigError
from fedenv.fedorg import INFO_KEYS, OBS_FIELDS, InvalidActionError
from fedenv.records import RoundOutcome
from fedenv.render import round_table

pytestmark = pytest.mark.usefixtures("shared_cache")


@pytest.fixture(scope="module")
def env(shared_cache, tmp_path_factory):
    env = fedenv.parallel_env("tiny", run_dir=tmp_path_factory.mktemp("run"), render_mode="ansi")
    yield env
    env.close()


def full_effort(env):
    return {a: env.action_space(a).n - 1 for a in env.agents}


def test_metadata_spaces_and_docs(env):
    assert env.metadata == {
        "name": "fedorg_v0",
        "render_modes": ["ansi", "human"],
        "is_parallelizable": True,
        "render_fps": 1,
    }
    assert env.possible_agents == ["northbank", "citycare", "skyway"]
    obs_spaces = {id(env.observation_space(a)) for a in env.possible_agents}
    act_spaces = {id(env.action_space(a)) for a in env.possible_agents}
    assert len(obs_spaces) == len(act_spaces) == 1
    assert env.action_space("skyway") == spaces.Discrete(1 + env.scenario.num_levels)
    box = env.observation_space("skyway")
    assert box.shape == (len(OBS_FIELDS),) and box.dtype == np.float32
    assert fedenv.OBS_FIELDS == fedenv.fedorg.OBS_FIELDS == OBS_FIELDS
    assert all(f"| {name}" in fedenv.fedorg.__doc__ for name in OBS_FIELDS)
    with pytest.raises(InvalidActionError, match="unknown agent 'acme'"):
        env.action_space("acme")


def test_import_fedenv_stays_light():
    code = "import sys, fedenv; print(sorted({'torch', 'transformers', 'chains'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_run_folder_can_be_reopened(tmp_path):
    for expected_episode in (0, 1):
        env = fedenv.parallel_env("tiny", run_dir=tmp_path)
        env.reset(seed=0)
        env.step({"skyway": 1})
        assert env.round_log[-1].episode == expected_episode
        env.close()
    assert (
        subprocess.run(
            [sys.executable, "-m", "chains", "verify", str(tmp_path)],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )
    with pytest.raises(ConfigError, match="run_dir: holds a run of a different scenario"):
        fedenv.parallel_env("tiny", run_dir=tmp_path, seed=1)


@pytest.mark.parametrize(
    "actions, message",
    [
        ({"northbank": 3}, r"action 3 of 'northbank' is not in Discrete\(3\)"),
        ({"northbank": -1}, r"action -1 of 'northbank' is not in"),
        ({"northbank": 1.5}, r"action 1.5 of 'northbank' is not in"),
        ({"northbank": "1"}, r"action '1' of 'northbank' is not in"),
        ({"northbank": True}, r"action True of 'northbank' is not in"),
        ({"acme": 1}, r"action for 'acme', which is not an agent of this env"),
        ([1, 1, 1], r"actions must be a dict agent -> action, got list"),
    ],
)
def test_bad_actions_raise_before_anything_runs(env, actions, message):
    env.reset(seed=0)
    height = env.run.ledgers.public.height
    with pytest.raises(InvalidActionError, match=message):
        env.step(actions)
    assert env.round_log == [] and env.run.ledgers.public.height == height


def test_done_agents_and_missing_agents(env):
    env.reset(seed=0)
    _, _, _, _, infos = env.step({"citycare": np.int64(2)})  # others missing: they sit out
    assert [infos[a]["participated"] for a in env.possible_agents] == [False, True, False]
    while "citycare" in env.agents:  # citycare's budget runs out at level 2
        env.step({"citycare": 2})
    _, _, _, _, infos = env.step({"citycare": 1, "skyway": 1})  # a done agent's action: ignored
    assert "citycare" not in infos and infos["skyway"]["resource"] == 1
    while env.agents:
        env.step({})
    with pytest.raises(InvalidActionError, match=r"the episode is over .*call reset\(\)"):
        env.step({})
    fresh = fedenv.parallel_env("tiny")
    with pytest.raises(InvalidActionError, match=r"no live agents: call reset\(\) before step"):
        fresh.step({})
    fresh.close()


def test_attackers_are_screened_and_free_riders_pay_no_compute():
    orgs = fedenv.load_scenario("tiny").to_dict()["organizations"]
    orgs[1]["behaviour"], orgs[2]["behaviour"] = "free_rider", "noise"
    env = fedenv.parallel_env("tiny", organizations=orgs)
    try:
        env.reset(seed=0)
        _, _, _, _, infos = env.step(dict.fromkeys(env.agents, 1))
    finally:
        env.close()
    noise, free_rider = infos["skyway"], infos["citycare"]
    assert not free_rider["accepted"] and free_rider["payout"] == 0
    assert free_rider["reasons"][0].startswith("near_global:")
    assert free_rider["cost_compute"] == 0 < free_rider["cost_total"]
    # the noise is cut down to its level's norm budget, where it is nearly harmless
    assert noise["reasons"][0].startswith("norm: change x0.0")
    assert noise["payout"] <= 0.01 * env.scenario.incentives.reward_pool
    assert infos["northbank"]["cost_compute"] > 0 and infos["northbank"]["accepted"]


def test_bad_render_mode_is_refused():
    with pytest.raises(ConfigError, match="render_mode: must be one of"):
        fedenv.parallel_env("tiny", render_mode="rgb_array")


def test_short_episode_trains_scores_pays_and_verifies(env, capsys):
    obs, _ = env.reset(seed=1)
    base = obs["northbank"][OBS_FIELDS.index("global_score")]
    episode, tables, terminated = [], [], set()
    while env.agents:
        _, rewards, terms, _, infos = env.step(full_effort(env))
        episode.append(infos)
        tables.append(env.render())
        terminated |= {a for a, t in terms.items() if t}
        record = env.round_log[-1]  # the typed record the infos are made from, at the env's edge
        assert isinstance(record, RoundOutcome) and list(record.orgs) == list(infos)
        masks = {a: info.pop("action_mask") for a, info in infos.items()}  # the env's, at its edge
        assert infos == {a: record.info(a) for a in infos}
        assert all(mask.dtype == np.int8 and mask[0] == 1 for mask in masks.values())
        assert tables[-1] == round_table(record)
        assert {"train", "scoring", "ledgers", "aggregate", "step"} <= set(record.timings)
        for a, info in infos.items():
            assert set(info) == set(INFO_KEYS)
            assert rewards[a] == pytest.approx(
                info["payout"] + info["model_value"] - info["cost_total"]
            )
            assert info["cost_total"] > 0 and info["cost_total"] == pytest.approx(
                info["cost_compute"] + info["cost_communication"] + info["cost_ledger"]
            )
            assert len(info["tx_ids"]) == 2 and info["local_steps"] > 0
    rows = [info for infos in episode for info in infos.values()]
    assert any(abs(r["contribution"]) > 1e-4 for r in rows)
    assert sum(r["payout"] for r in rows) > 0
    assert episode[-1]["northbank"]["global_score"] > base * 10  # the model improved
    assert terminated == {"northbank", "citycare", "skyway"}  # budgets ran out at full effort
    assert [len(infos) for infos in episode] == [3, 3, 1]
    assert [r.round for r in env.round_log] == [0, 1, 2]
    assert all(r.scoring_tx and len(r.anchor_txs) == 1 for r in env.round_log)
    assert all(org in tables[0] for org in env.possible_agents) and "contribution" in tables[0]
    assert "round 3/3" in tables[-1] and "skyway" not in tables[-1]

    verify = [sys.executable, "-m", "chains", "verify", str(env.run.path)]
    ok = subprocess.run(verify, capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    adapter = max(env.run.path.glob("adapters/e*/r0000/skyway.safetensors"))
    data = bytearray(adapter.read_bytes())
    data[-1] ^= 1
    adapter.write_bytes(bytes(data))
    bad = subprocess.run(verify, capture_output=True, text=True, check=False)
    assert bad.returncode != 0
    assert str(adapter.relative_to(env.run.path)) in bad.stdout + bad.stderr


def test_reset_restores_the_base_model_and_budgets(env):
    first, _ = env.reset(seed=2)
    digest = env.round_log, env._player.engine.global_digest
    env.step(full_effort(env))
    assert env._player.engine.global_digest != digest[1]
    again, infos = env.reset(seed=2)
    assert env._player.engine.global_digest == digest[1] and env.round_log == []
    assert all(np.array_equal(first[a], again[a]) for a in env.agents)
    assert all(set(info) == {"action_mask"} for info in infos.values())


def test_the_shapley_mechanism_pays_on_shapley_values_whatever_decides_acceptance():
    """With every update accepted, the payouts of the `shapley` mechanism must not depend on the
    scoring method (loo or exact shapley): both pay on Shapley values of the same coalitions."""
    paid = {}
    for method in ("loo", "shapley"):
        env = fedenv.parallel_env(
            "tiny",
            mechanism="shapley",
            contribution=method,
            max_rounds=1,
            **{"scoring.reject_negative": False},
        )
        env.reset(seed=5)
        _, _, _, _, infos = env.step(full_effort(env))
        paid[method] = {a: i["payout"] for a, i in infos.items()}
        env.close()
    assert sum(paid["shapley"].values()) > 0
    assert paid["loo"] == pytest.approx(paid["shapley"], abs=1e-9)


def test_the_collective_term_pays_participants_for_the_global_scores_gain():
    """``incentives.collective_weight`` adds weight x (global score after - before) to each
    participant's model value and reward, and nothing to an organization that sat out."""
    steps = {}
    for weight in (0.0, 2.5):
        env = fedenv.parallel_env("tiny", max_rounds=1, collective_weight=weight,
                                  **{"scoring.reject_negative": False})
        observations, _ = env.reset(seed=5)
        before = 10.0 * float(observations["northbank"][OBS_FIELDS.index("global_score")])
        actions = {**full_effort(env), "skyway": 0}
        _, rewards, _, _, infos = env.step(actions)
        steps[weight] = (rewards, infos, before)
        env.close()
    (plain, plain_infos, before), (collective, infos, _) = steps[0.0], steps[2.5]
    gain = infos["northbank"]["global_score"] - before
    assert abs(gain) > 1e-3
    for org in ("northbank", "citycare"):
        assert collective[org] - plain[org] == pytest.approx(2.5 * gain, abs=1e-5)
        assert infos[org]["model_value"] - plain_infos[org]["model_value"] == pytest.approx(
            2.5 * gain, abs=1e-5)
    assert collective["skyway"] == plain["skyway"] == 0.0


def test_the_same_seed_writes_the_same_ledgers_byte_for_byte(tmp_path):
    """Determinism an auditor relies on: one seed gives the same public tree head and the same
    channel block hashes, in two separate run folders."""
    heads = []
    for name in ("a", "b"):
        env = fedenv.parallel_env("tiny", run_dir=tmp_path / name, max_rounds=2)
        env.reset(seed=11)
        while env.agents:
            env.step(full_effort(env))
        env.close()
        reports = verify_path(tmp_path / name)
        assert all(r.ok for r in reports)
        heads.append(sorted((Path(r.path).name, r.head) for r in reports))
    assert heads[0] == heads[1]
    assert any("root=" in head for _, head in heads[0])
