"""Scenario files: the bundled ones load, and every kind of bad file gets a precise error."""

from __future__ import annotations

import json
import re

import pytest

from fedenv.errors import ConfigError
from fedenv.scenario import (
    SCENARIO_DIR,
    Organization,
    Scenario,
    load_scenario,
    scenario_from_dict,
)
from fedenv.scenario.ledger import eth_extra_missing

GOOD = """
max_rounds = 2
[[resource_levels]]
local_steps = 1
[[organizations]]
name = "a"
domain = "bank"
data_size = 10
[[organizations]]
name = "b"
domain = "clinic"
data_size = 20
"""


def write(tmp_path, text, name="x.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_bundled_scenarios_load():
    default = load_scenario("default")
    assert default.name == "default" and len(default.organizations) == 4
    assert len({o.domain for o in default.organizations}) == 4
    assert len({o.unit_cost for o in default.organizations}) == 4
    assert (default.model.preset, default.scoring.contribution, default.incentives.mechanism) == (
        "tiny",
        "loo",
        "loo",
    )
    tiny = load_scenario("tiny")
    assert (len(tiny.organizations), tiny.model.preset) == (3, "test")
    assert tiny.max_rounds <= 3 and all(lv.local_steps <= 2 for lv in tiny.resource_levels)
    assert {p.stem for p in SCENARIO_DIR.glob("*.toml")} >= {"default", "tiny"}


def test_a_minimal_file_gets_the_documented_defaults(tmp_path):
    sc = load_scenario(write(tmp_path, GOOD))
    assert sc.name == "x" and sc.org_names == ("a", "b")
    assert sc.organizations[0] == Organization(name="a", domain="bank", data_size=10)
    assert sc.level(1).data_share == 1.0 and sc.num_levels == 1
    sections = [Scenario, Organization, *(type(getattr(sc, k)) for k in ("model", "lora",
                "training", "benchmark", "scoring", "incentives", "costs", "ledger"))]
    for section in sections:
        for name, field in section.model_fields.items():
            assert field.description, f"{section.__name__}.{name} has no help text"


def test_round_trip_through_plain_data():
    sc = load_scenario("default")
    assert scenario_from_dict(sc.to_dict()) == sc


def test_overrides_are_validated_like_the_file():
    sc = load_scenario("tiny", seed=7, contribution="shapley", reward_pool=3, **{"lora.r": 2})
    assert (sc.seed, sc.scoring.contribution, sc.incentives.reward_pool, sc.lora.r) == (
        7,
        "shapley",
        3.0,
        2,
    )
    with pytest.raises(ConfigError, match=r"^overrides: max_rounds: must be >= 1, got 0$"):
        load_scenario("tiny", max_rounds=0)
    with pytest.raises(ConfigError, match=r"^overrides: colour: unknown override"):
        load_scenario("tiny", colour="red")
    with pytest.raises(ConfigError, match=r"^overrides: lora.rank: unknown key"):
        load_scenario("tiny", **{"lora.rank": 2})


BAD = [
    # (what to change in GOOD, key named, problem)
    ("max_rounds = 2", "max_rounds = 0", "max_rounds: must be >= 1, got 0"),
    ("max_rounds = 2", 'max_rounds = "two"', "max_rounds: must be an integer, got string 'two'"),
    ("max_rounds = 2", "max_rounds = 2.5", "max_rounds: must be an integer, got number 2.5"),
    ("max_rounds = 2", "max_round = 2", "max_round: unknown key (known: organizations, "),
    ("max_rounds = 2", 'device = "tpu"', "device: must be auto, cpu, cuda or cuda:N, got 'tpu'"),
    ("max_rounds = 2", 'device = "mps"', "device: 'mps' is not supported (MPS has no float64)"),
    ("max_rounds = 2", "seed = true", "seed: must be an integer, got boolean True"),
    (
        "[[resource_levels]]\nlocal_steps = 1",
        "resource_levels = 3",
        "resource_levels: must be an array, got integer 3",
    ),
    ("max_rounds = 2", "[lora]\nr = 0", "lora.r: must be >= 1, got 0"),
    ("max_rounds = 2", "[lora]\ntarget_modules = []", "lora.target_modules: must not be empty"),
    (
        "max_rounds = 2",
        '[lora]\ntarget_modules = ["q", 1]',
        "lora.target_modules[1]: must be a string, got integer 1",
    ),
    ("max_rounds = 2", "[lora]\ndropout = nan", "lora.dropout: must be a finite number, got nan"),
    ("max_rounds = 2", '[training]\naggregator = "median"', "training.aggregator: must be one of"),
    (
        "max_rounds = 2",
        '[scoring]\ncontribution = "banzhaf"',
        "scoring.contribution: must be one of 'loo', 'shapley', 'tmc_shapley', got 'banzhaf'",
    ),
    ("max_rounds = 2", '[incentives]\nmechanism = "vcg"', "incentives.mechanism: must be one of"),
    ("max_rounds = 2", "[incentives]\nreward_pool = -1", "incentives.reward_pool: must be >= 0"),
    ("max_rounds = 2", 'model = "tiny"', "model: must be a table, got string 'tiny'"),
    (
        "local_steps = 1",
        "local_steps = 1\ndata_share = 0",
        "resource_levels[0].data_share: must be in (0, 1], got 0",
    ),
    ("local_steps = 1", "data_share = 1.0", "resource_levels[0].local_steps: missing required key"),
    (
        "data_size = 20",
        "data_size = 20\nunit_cost = -1",
        "organizations[1].unit_cost: must be >= 0, got -1",
    ),
    (
        "data_size = 20",
        'data_size = 20\nbehaviour = "evil"',
        "organizations[1].behaviour: must be one of 'honest', ",
    ),
    ("data_size = 20", "data_size = 20\nbudget = 0", "organizations[1].budget: must be > 0, got 0"),
    (
        "data_size = 20",
        "data_size = 20\nquality = 1.5",
        "organizations[1].quality: must be in [0, 1], got 1.5",
    ),
    (
        "data_size = 20",
        'data_size = 20\ndata_path = "missing.jsonl"',
        "organizations[1].data_path: no such file: ",
    ),
    ('domain = "clinic"', 'domain = "mars"', "organizations[1].domain: must be one of 'bank'"),
    ('name = "b"', 'name = "a"', "organizations[1].name: duplicate organization 'a'"),
    ('name = "b"', 'name = "b_c"', "organizations[1].name: must be 1-32 letters, digits or '-'"),
    ("max_rounds = 2", "max_rounds = [", "toml: "),
]


@pytest.mark.parametrize("old, new, message", BAD, ids=[b[2].split(":")[0] for b in BAD])
def test_bad_files_name_the_file_and_the_key(tmp_path, old, new, message):
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(ConfigError) as err:
        load_scenario(path)
    assert str(err.value).startswith(f"{path}: {message}"), str(err.value)


def test_missing_sections_are_named(tmp_path):
    with pytest.raises(ConfigError, match=r"x.toml: organizations: missing required key"):
        load_scenario(write(tmp_path, "[[resource_levels]]\nlocal_steps = 1\n"))
    with pytest.raises(ConfigError, match=r"x.toml: organizations: must not be empty"):
        load_scenario(write(tmp_path, "organizations = []\n[[resource_levels]]\nlocal_steps = 1"))


def test_exact_shapley_is_refused_beyond_eight_organizations(tmp_path):
    orgs = "".join(
        f'[[organizations]]\nname = "o{i}"\ndomain = "bank"\ndata_size = 4\n' for i in range(9)
    )
    text = '[scoring]\ncontribution = "shapley"\n[[resource_levels]]\nlocal_steps = 1\n' + orgs
    with pytest.raises(
        ConfigError,
        match=r"scoring.contribution: exact 'shapley' supports at "
        r"most 8 organizations, got 9; use 'tmc_shapley'",
    ):
        load_scenario(write(tmp_path, text))


def test_unknown_scenario_name_lists_the_bundled_ones():
    with pytest.raises(ConfigError, match=re.escape("no such file (bundled scenarios: ")):
        load_scenario("nope")


def test_data_path_is_resolved_next_to_the_scenario(tmp_path):
    (tmp_path / "a.jsonl").write_text("")
    text = GOOD.replace("data_size = 10", 'data_size = 10\ndata_path = "a.jsonl"')
    sc = load_scenario(write(tmp_path, text))
    assert sc.organizations[0].data_path == str((tmp_path / "a.jsonl").resolve())


BUNDLED = sorted(SCENARIO_DIR.rglob("*.toml"))


@pytest.mark.parametrize("path", BUNDLED, ids=[p.stem for p in BUNDLED])
def test_every_bundled_scenario_loads_and_plays_a_round(path, tmp_path):
    """Each scenario file works as shipped: it loads, builds its env and plays one step.  The
    base model is the test suite's "test" preset (the file's own preset is built on first use
    and cached; it changes the weights, not what is checked here)."""
    import fedenv

    if "ethereum" in path.read_text() and eth_extra_missing():
        pytest.skip("the scenario anchors on Ethereum: needs the optional 'eth' extra")
    scenario = load_scenario(path)
    assert scenario.name == path.stem
    env = fedenv.parallel_env(scenario.with_overrides(preset="test"), run_dir=str(tmp_path))
    try:
        env.reset(seed=0)
        actions = {org: 1 for org in env.agents}  # everyone takes part at level 1
        _, rewards, _, _, infos = env.step(actions)
        assert set(rewards) == set(scenario.org_names)
        assert all(info["participated"] and info["public_height"] > 0 for info in infos.values())
    finally:
        env.close()


def test_engine_sections_are_the_engines_own_settings():
    """One model per concept: the scenario's [lora]/[training]/... are the engine's settings
    objects (one set of bounds), handed to the engine as they are."""
    from fedenv.engine.settings import LoraSettings, TrainingSettings

    sc = load_scenario("tiny")
    assert type(sc.lora) is LoraSettings and type(sc.training) is TrainingSettings
    config = sc.engine_config()
    assert (config.lora, config.training, config.seed) == (sc.lora, sc.training, sc.seed)
    assert load_scenario("tiny", **{"lora.dropout": 0.95}).lora.dropout == 0.95
    with pytest.raises(ConfigError) as in_file:
        load_scenario("tiny", **{"lora.dropout": 1.0})
    with pytest.raises(ConfigError) as direct:
        LoraSettings(dropout=1.0)
    assert in_file.value.problem == direct.value.problem == "must be in [0, 1), got 1"


ATTACKED = GOOD + 'behaviour = "sybil"\n'  # b is a sybil identity
BAD_ATTACKS = [
    (GOOD + "[defence]\nfilters = [\"bulyan\"]\n", "defence.filters: must be one of 'krum'"),
    (GOOD + "[defence]\naggregation = \"mode\"\n", "defence.aggregation: must be one of 'mean'"),
    (GOOD + "[defence]\nnorm = \"squash\"\n", "defence.norm: must be one of 'normalize'"),
    (GOOD + "[defence]\nshield = true\n", "defence.shield: unknown key"),
    (ATTACKED, "organizations[1].behaviour: 'sybil' needs a [[sybils]] group naming it"),
    (
        ATTACKED + '[[sybils]]\nmembers = ["b", "ghost"]\n',
        "sybils[0].members[1]: unknown organization 'ghost' (known: a, b)",
    ),
    (
        ATTACKED + '[[sybils]]\nmembers = ["a", "b"]\n',
        "sybils[0].members[0]: 'a' has behaviour 'honest'; a sybil group's are 'sybil'",
    ),
    (
        GOOD + '[training]\naggregator = "flora"\n[defence]\naggregation = "median"\n',
        "defence.aggregation: 'median' needs an aggregator that averages parameters",
    ),
    (
        GOOD + '[defence]\naggregation = "trimmed_mean"\nfilters = ["fltrust"]\n',
        "defence.filters: 'fltrust' weighs a mean; it cannot combine with aggregation = 'trim",
    ),
    (GOOD + "strength = 2.0\n", "organizations[1].strength: an honest organization has no attack"),
]


@pytest.mark.parametrize("text, message", BAD_ATTACKS, ids=[b[1].split(":")[0] for b in BAD_ATTACKS])
def test_bad_attacks_and_defences_name_the_key_before_anything_runs(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_scenario(path)
    assert str(err.value).startswith(f"{path}: {message}"), str(err.value)


def test_the_bundled_attack_scenarios_extend_the_default_one():
    default = load_scenario("default")
    for path in sorted((SCENARIO_DIR / "attacks").glob("*.toml")):
        attacked = load_scenario(path)
        assert attacked.name == path.stem
        attackers = [o for o in attacked.organizations if o.behaviour != "honest"]
        assert attackers and attackers[0].behaviour.startswith(path.stem.split("_")[0])
        assert attacked.org_names[: len(default.org_names)] == default.org_names


@pytest.mark.parametrize("name", ["../../escaped", "/etc/passwd", "a/b", "..", ".hidden",
                                  "x" * 129, "x" * 300, "tab\there", "nul\x00", ""])
def test_hostile_names_are_refused_at_load(tmp_path, name):
    """A scenario's name becomes a folder name (evaluate.py's envs/<name>/...)."""
    path = write(tmp_path, f"name = {json.dumps(name)}\n" + GOOD)
    with pytest.raises(ConfigError, match="name: must be 1-128 letters, digits"):
        load_scenario(path)
    with pytest.raises(ConfigError, match="name: must be 1-128"):
        load_scenario("tiny").with_overrides(name=name)


def test_a_50_mb_name_or_file_is_refused_at_once(tmp_path):
    import time

    start = time.perf_counter()
    with pytest.raises(ConfigError, match=r"x.toml: scenario: the file has \d+ bytes; a scenario"):
        load_scenario(write(tmp_path, f'name = "{"n" * (50 << 20)}"\n' + GOOD))
    with pytest.raises(ConfigError, match=r"name: must be 1-128 .* \(52428800 characters\)"):
        scenario_from_dict({**load_scenario("tiny").to_dict(), "name": "n" * (50 << 20)})
    assert time.perf_counter() - start < 5


def test_a_default_name_from_an_odd_file_name_is_made_safe(tmp_path):
    assert load_scenario(write(tmp_path, GOOD, "my scenario (v2).toml")).name == "my-scenario-v2"
    assert load_scenario(write(tmp_path, GOOD, "run.2+b.toml")).name == "run.2+b"


CHANNEL = """
[[channels]]
name = {channel}
members = ["a", "b"]
carries = ["updates", "scoring", "benchmark"]
[[channels.collections]]
name = {collection}
"""


@pytest.mark.parametrize("name", ["../../escaped", "/etc/passwd", "a/b", "..", "x" * 300,
                                  "nul\x00", "new\nline", ""])
@pytest.mark.parametrize("where", ["organization", "channel", "collection"])
def test_hostile_organization_channel_and_collection_names_are_refused_at_load(
        tmp_path, where, name):
    """They name files and folders too (adapters/<org>.safetensors, fabric/<channel>/,
    peer0.<org>.db): each is refused at load, naming its key."""
    text, key = GOOD, {"organization": "organizations[0].name", "channel": "channels[0].name",
                       "collection": "channels[0].collections[0].name"}[where]
    if where == "organization":
        text = text.replace('name = "a"', f"name = {json.dumps(name)}")
    else:
        text += CHANNEL.format(
            channel=json.dumps(name if where == "channel" else "ok"),
            collection=json.dumps(name if where == "collection" else "a-updates"))
    with pytest.raises(ConfigError) as refused:
        load_scenario(write(tmp_path, text))
    assert str(refused.value).startswith(f"{tmp_path / 'x.toml'}: {key}: must be"), refused.value


@pytest.mark.parametrize(
    ("overrides", "key", "problem"),
    [
        ({"unlearning": [{"round": 1, "org": "acme"}]}, "unlearning[0].org", "unknown organization"),
        ({"unlearning": [{"round": 0, "org": "skyway"}]}, "unlearning[0].round", "before"),
        ({"unlearning": [{"round": 3, "org": "skyway"}]}, "unlearning[0].round", "max_rounds"),
        (
            {"unlearning": [{"round": 1, "org": "skyway"}, {"round": 2, "org": "skyway"}]},
            "unlearning[1].org",
            "already forgotten",
        ),
        (
            {"unlearning": [{"round": 1, "org": "skyway", "method": "calibrated_replay"}],
             "aggregator": "flora"},
            "unlearning[0].method",
            "cannot work with aggregator 'flora'",
        ),
        ({"unlearning": [{"round": 1, "org": "skyway", "method": "nope"}]}, "unlearning[0].method",
         "must be one of"),
    ],
)
def test_bad_unlearning_requests_fail_at_load_naming_the_key(overrides, key, problem):
    with pytest.raises(ConfigError, match=rf"{re.escape(key)}: .*{re.escape(problem)}"):
        load_scenario("tiny", **overrides)


@pytest.mark.parametrize("method", ["exact_replay", "retrain", "calibrated_replay"])
def test_a_replaying_method_loads_under_the_defences(method):
    """The replays recommit what the rounds recorded, so the default defences (and robust
    aggregation) do not refuse them."""
    request = [{"round": 1, "org": "skyway", "method": method}]
    assert load_scenario("tiny", unlearning=request).defence.norm == "normalize"
    load_scenario("tiny", unlearning=request, **{"defence.aggregation": "median"})


def test_an_unlearning_request_loads_with_its_defaults():
    scenario = load_scenario("tiny", unlearning=[{"round": 2, "org": "skyway"}])
    assert scenario.unlearning[0].method == "exact_replay"
    assert scenario.unlearning_policy.clawback is False and scenario.unlearning_policy.oracle
