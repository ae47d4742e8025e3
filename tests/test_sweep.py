"""Sweep axes, their errors, and the grid of cells with the same seeds."""

from __future__ import annotations

import pytest

from fedenv.errors import ConfigError
from fedenv.evaluation.play import plan_comparison
from fedenv.evaluation.sweep import (
    SweepAxis,
    check_duplicate_keys,
    expand_plan,
    parse_sweeps,
)


def test_axes_parse_json_values_and_full_key_paths():
    axes = parse_sweeps(["reward_pool=5,10.5", "lora.target_modules=[\"q_proj\",\"v_proj\"],x",
                         "training.aggregator=fedavg, ffa"])
    assert axes == [SweepAxis("incentives.reward_pool", (5, 10.5)),
                    SweepAxis("lora.target_modules", (["q_proj", "v_proj"], "x")),
                    SweepAxis("training.aggregator", ("fedavg", "ffa"))]


@pytest.mark.parametrize("items, problem", [
    (["reward_pool"], "expected KEY=V1,V2"),
    (["=1,2"], "expected KEY=V1,V2"),
    (["lora.r=4,,8"], "empty value"),
    (["lora.r=4,4"], "value 4 is given twice"),
    (["reward_pool=5", "incentives.reward_pool=10"], "swept twice"),
])
def test_malformed_sweeps_are_refused(items, problem):
    with pytest.raises(ConfigError, match=problem) as info:
        parse_sweeps(items)
    assert info.value.field == "sweep"


def test_a_key_both_overridden_and_swept_is_refused():
    axes = parse_sweeps(["incentives.reward_pool=5,10"])
    with pytest.raises(ConfigError, match="both swept and set by --override"):
        check_duplicate_keys({"reward_pool": 3}, axes)
    check_duplicate_keys({"lora.r": 4}, axes)


def test_the_grid_is_the_product_with_the_same_seeds_in_every_cell():
    plan = plan_comparison(["tiny"], ["equal", "none"], seeds=[0, 1])
    grid, cells = expand_plan(plan, parse_sweeps(["reward_pool=5,20", "lora.r=2,4"]))
    assert [s.name for s in grid.scenarios] == [
        "tiny[incentives.reward_pool=5,lora.r=2]", "tiny[incentives.reward_pool=5,lora.r=4]",
        "tiny[incentives.reward_pool=20,lora.r=2]", "tiny[incentives.reward_pool=20,lora.r=4]"]
    assert grid.seeds == plan.seeds and grid.mechanisms == plan.mechanisms
    last = grid.scenarios[-1]
    assert last.incentives.reward_pool == 20 and last.lora.r == 4 and last.seed == 0
    assert dict(cells[last.name].keys) == {"incentives.reward_pool": 20, "lora.r": 4}
    assert len(grid.runs()) == 4 * 2 * 2
    assert expand_plan(plan, []) == (plan, {})


def test_a_cell_the_scenario_refuses_is_an_error_before_any_run():
    plan = plan_comparison(["tiny"], ["equal"], seeds=[0])
    with pytest.raises(ConfigError, match=r"lora.r.*cell tiny\[lora.r=-1\]") as info:
        expand_plan(plan, parse_sweeps(["lora.r=4,-1"]))
    assert info.value.field == "sweep"
    with pytest.raises(ConfigError, match="wealth"):
        expand_plan(plan, parse_sweeps(["wealth=1,2"]))
