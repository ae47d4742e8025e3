"""The scenario's [ledger] and [[channels]]: defaults that keep the one consortium channel, and a
clear error naming the key for every malformed channel table."""

from __future__ import annotations

import sys

import pytest

from fedenv.errors import ConfigError
from fedenv.ledgers import ChannelLayout, endorsement_policy
from fedenv.scenario import ChannelSettings, load_scenario, resolved_channels
from fedenv.scenario.ledger import eth_extra_missing

ORGS = """
[[resource_levels]]
local_steps = 1
[[organizations]]
name = "bank"
domain = "bank"
data_size = 10
[[organizations]]
name = "ins"
domain = "insurance"
data_size = 10
[[organizations]]
name = "clinic"
domain = "clinic"
data_size = 10
[[organizations]]
name = "air"
domain = "airline"
data_size = 10
"""

CHANNELS = """
[[channels]]
name = "finance"
members = ["bank", "ins"]
carries = ["updates", "scoring", "benchmark"]
endorsement = "all"

[[channels.collections]]
name = "bank-updates"
members = ["bank", "ins"]
block_to_live = 3

[[channels]]
name = "care"
members = ["clinic", "air"]
endorsement = "OR('clinic.peer', 'air.peer')"

[[channels]]
name = "all"
members = ["bank", "ins", "clinic", "air"]
carries = ["scoring"]
fee_per_tx = 0.5
"""


def write(tmp_path, text):
    path = tmp_path / "x.toml"
    path.write_text(text)
    return path


def test_without_channels_the_one_consortium_channel_is_todays(tmp_path):
    sc = load_scenario(write(tmp_path, ORGS))
    assert sc.channels == ()
    (channel,) = resolved_channels(sc.channels, sc.org_names)
    assert channel == ChannelSettings(name="consortium", members=sc.org_names)
    assert channel.carries == ("updates", "scoring") and channel.endorsement == ""
    (plan,) = ChannelLayout(sc.org_names, sc.channels, ledger=sc.ledger, fee_per_tx=0.01).plans
    assert plan.policy == endorsement_policy(sc.org_names, "majority")
    assert [c.name for c in plan.collections] == [
        "bank-updates",
        "ins-updates",
        "clinic-updates",
        "air-updates",
        "scores",
    ]
    assert plan.collections[0].member_policy == "OR('bank.member')"
    assert plan.collections[0].endorsement_policy == "OR('bank.peer')"
    assert plan.collections[-1].member_policy == (
        "OR('bank.member', 'ins.member', 'clinic.member', 'air.member')"
    )
    assert plan.functions == ("certify", "forget", "purge", "record", "store") and plan.fee(1) == 0.01
    assert (sc.ledger.public, sc.ledger.ethereum_url, sc.ledger.block_to_live) == ("sqlite", "", None)


def test_declared_channels_become_the_layout(tmp_path):
    sc = load_scenario(write(tmp_path, ORGS + CHANNELS))
    layout = ChannelLayout(sc.org_names, sc.channels, ledger=sc.ledger, fee_per_tx=0.01)
    finance, care, everyone = layout.plans
    assert finance.policy == "OutOf(2, 'bank.peer', 'ins.peer')"
    assert care.policy == "OR('clinic.peer', 'air.peer')"
    assert everyone.policy == endorsement_policy(sc.org_names, "majority")
    shared = finance.collection("bank-updates")
    assert (shared.member_policy, shared.block_to_live) == ("OR('bank.member', 'ins.member')", 3)
    assert finance.collection("ins-updates").member_policy == "OR('ins.member')"
    assert finance.collection("benchmark").endorsement_policy == finance.policy
    assert [c.name for c in everyone.collections] == ["scores"]
    assert everyone.functions == ("attest", "forget", "record") and finance.functions == (
        "benchmark",
        "certify",
        "forget",
        "purge",
        "record",
        "store",
    )
    assert (everyone.fee(3), care.fee(1)) == (0.5, 0.01)
    assert layout.updates_channel("air").name == "care"
    assert layout.scoring_channel(["bank"]).name == "finance"
    assert layout.scoring_channel(["bank", "ins"]).name == "finance"
    assert layout.scoring_channel(["ins", "air"]).name == "all"
    assert [p.name for p in layout.benchmark_channels()] == ["finance"]


MALFORMED = [
    # (replace in CHANNELS, by, error)
    (
        'members = ["bank", "ins"]\ncarries',
        'members = ["bank", "acme"]\ncarries',
        (
            "channels[0].members[1]: unknown organization 'acme' (organizations: bank, ins, clinic, "
            "air)"
        ),
    ),
    (
        'members = ["clinic", "air"]',
        "members = []",
        "channels[1].members: must not be empty",
    ),
    (
        'members = ["clinic", "air"]',
        'members = ["clinic", "air"]\ncarries = ["scoring"]',
        (
            "channels: organization 'clinic' is on no channel that carries updates; every "
            "organization sends updates"
        ),
    ),
    (
        'members = ["bank", "ins", "clinic", "air"]\ncarries = ["scoring"]',
        'members = ["bank", "ins", "clinic", "air"]\ncarries = ["benchmark"]',
        "channels: no channel that carries scoring holds every organization",
    ),
    (
        'members = ["bank", "ins", "clinic", "air"]',
        'members = ["bank", "ins", "clinic"]',
        "channels: no channel that carries scoring holds every organization",
    ),
    (
        "endorsement = \"OR('clinic.peer', 'air.peer')\"",
        "endorsement = \"OR('clinic.peer', 'bank.peer')\"",
        (
            "channels[1].endorsement: names organizations outside the channel: bank (members: "
            "clinic, air)"
        ),
    ),
    (
        "endorsement = \"OR('clinic.peer', 'air.peer')\"",
        "endorsement = \"AND('clinic.peer', 'clinic.peer')\"",
        "channels[1].endorsement: \"AND('clinic.peer', 'clinic.peer')\" cannot be satisfied",
    ),
    (
        "endorsement = \"OR('clinic.peer', 'air.peer')\"",
        "endorsement = \"OR('clinic.admin')\"",
        "channels[1].endorsement: \"OR('clinic.admin')\" cannot be satisfied",
    ),
    (
        "endorsement = \"OR('clinic.peer', 'air.peer')\"",
        "endorsement = \"OR('clinic.peer' 'air.peer')\"",
        (
            "channels[1].endorsement: must be majority, all, any or a Fabric endorsement policy; bad "
            "endorsement policy at position 17"
        ),
    ),
    ('name = "care"', 'name = "finance"', "channels[1].name: duplicate channel 'finance'"),
    ('name = "care"', 'name = "Care"', "channels[1].name: must be lowercase letters"),
    (
        'members = ["clinic", "air"]',
        'members = ["clinic", "air", "clinic"]',
        "channels[1].members[2]: duplicate member 'clinic'",
    ),
    (
        'carries = ["scoring"]',
        'carries = ["scoring", "gossip"]',
        "channels[2].carries[1]: must be one of 'updates', 'scoring', 'benchmark', got 'gossip'",
    ),
    (
        'carries = ["scoring"]',
        'carries = ["scoring", "updates"]',
        "channels[2].members[0]: 'bank' already sends its updates to channel 'finance'",
    ),
    (
        'name = "bank-updates"',
        'name = "air-updates"',
        (
            "channels[0].collections[0].name: channel 'finance' has no collection 'air-updates' (its "
            "collections, from what it carries: bank-updates, ins-updates, scores, benchmark)"
        ),
    ),
    (
        'members = ["bank", "ins"]\nblock_to_live',
        'members = ["bank", "air"]\nblock_to_live',
        "channels[0].collections[0].members[1]: 'air' is not a member of channel 'finance'",
    ),
    (
        'members = ["bank", "ins"]\nblock_to_live',
        'members = ["ins"]\nblock_to_live',
        "channels[0].collections[0].members: must include the owner of the updates, 'bank'",
    ),
    (
        'name = "bank-updates"\nmembers = ["bank", "ins"]',
        'name = "scores"\nmembers = ["bank"]',
        "channels[0].collections[0].members: is the channel's for 'scores': the scoring record",
    ),
    ("block_to_live = 3", "block_to_live = -1", "channels[0].collections[0].block_to_live: must"),
    ("fee_per_tx = 0.5", "fee_per_tx = -0.5", "channels[2].fee_per_tx: must be >= 0, got -0.5"),
    ("fee_per_tx = 0.5", "fees = 0.5", "channels[2].fees: unknown key (known: name, members, "),
    (
        'carries = ["scoring"]',
        'carries = ["scoring", "scoring"]',
        "channels[2].carries[1]: 'scoring' is listed twice",
    ),
]


def test_an_organization_on_no_scoring_channel_is_named(tmp_path):
    text = ORGS + CHANNELS.replace(
        'members = ["clinic", "air"]', 'members = ["clinic", "air"]\ncarries = ["updates"]'
    ).replace('members = ["bank", "ins", "clinic", "air"]', 'members = ["bank", "ins", "clinic"]')
    with pytest.raises(
        ConfigError,
        match=r"x.toml: channels: organization 'air' is on no "
        r"channel that carries scoring; every organization is "
        r"scored$",
    ):
        load_scenario(write(tmp_path, text))


@pytest.mark.parametrize("old, new, message", MALFORMED, ids=[m[2][:40] for m in MALFORMED])
def test_a_malformed_channel_table_names_the_key(tmp_path, old, new, message):
    assert old in CHANNELS, old
    path = write(tmp_path, ORGS + CHANNELS.replace(old, new, 1))
    with pytest.raises(ConfigError) as err:
        load_scenario(path)
    assert str(err.value).startswith(f"{path}: {message}"), str(err.value)


@pytest.mark.parametrize(
    "ledger, message",
    [
        ('endorsement = "most"', "ledger.endorsement: must be majority, all, any or a Fabric"),
        (
            "endorsement = \"OR('bank.peer', 'air.peer')\"",
            (
                "ledger.endorsement: names organizations outside the channel: air (members: bank, "
                "ins)"
            ),
        ),
        ('public = "bitcoin"', "ledger.public: must be one of 'sqlite', 'ethereum', got 'bitcoin'"),
        ('ethereum_url = "http://node:8545"', "ledger.ethereum_url: is only used with public"),
        (
            'public = "ethereum"\nethereum_url = "node:8545"',
            "ledger.ethereum_url: must be an http(s):// or ws(s):// URL, got 'node:8545'",
        ),
        ("block_to_live = -2", "ledger.block_to_live: must be >= 0, got -2"),
    ],
)
def test_a_malformed_ledger_table_names_the_key(tmp_path, ledger, message):
    """[ledger].endorsement is the default of every channel that sets none: it must hold over
    each of them (here "finance" takes it)."""
    text = ORGS + "[ledger]\n" + ledger + "\n" + CHANNELS.replace('endorsement = "all"\n', "")
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_scenario(path)
    assert str(err.value).startswith(f"{path}: {message}"), str(err.value)


def test_ethereum_without_the_eth_extra_is_an_error_at_load(tmp_path, monkeypatch):
    path = write(tmp_path, ORGS + '[ledger]\npublic = "ethereum"\n')
    monkeypatch.setitem(sys.modules, "eth_tester", None)  # as if the extra were not installed
    assert "eth_tester" in eth_extra_missing()
    with pytest.raises(ConfigError) as err:
        load_scenario(path)
    assert str(err.value) == (
        f"{path}: ledger.public: 'ethereum' needs the optional 'eth' extra (eth_tester not "
        "installed): pip install 'fedenv[eth]'"
    )
    monkeypatch.setitem(sys.modules, "web3", None)
    with pytest.raises(ConfigError, match=r"ledger.public: 'ethereum' needs .* \(web3 not"):
        load_scenario(
            write(
                tmp_path,
                ORGS + '[ledger]\npublic = "ethereum"\nethereum_url = "http://127.0.0.1:8545"\n',
            )
        )


@pytest.mark.eth
def test_ethereum_loads_with_the_extra(tmp_path):
    pytest.importorskip("eth_tester")
    sc = load_scenario(write(tmp_path, ORGS + '[ledger]\npublic = "ethereum"\n'))
    assert sc.ledger.public == "ethereum" and sc.ledger.ethereum_url == ""
    assert load_scenario("ethereum").ledger.public == "ethereum"
