"""What a step makes of its action dict, by default and in strict mode."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces

from fedenv.actions import InvalidActionError, resolve_actions
from fedenv.budgets import Budgets

POSSIBLE = ("a", "b", "c")


def resolve(actions, *, strict=False, live=("a", "b"), spent_by_a=0.0):
    budgets = Budgets(dict.fromkeys(POSSIBLE, 2.0), 2, lambda org, level: float(level))
    budgets.spend("a", spent_by_a)
    return resolve_actions(
        actions,
        live=list(live),
        possible=POSSIBLE,
        space=spaces.Discrete(3),
        budgets=budgets,
        strict=strict,
    )


def test_missing_agents_sit_out_and_levels_come_in_live_order():
    assert resolve({"b": np.int64(2)}) == {"a": 0, "b": 2}


@pytest.mark.parametrize("strict", [False, True])
def test_a_done_agents_action_is_ignored_unless_strict(strict):
    if strict:
        with pytest.raises(InvalidActionError, match=r"'c', which is done .*strict mode"):
            resolve({"a": 1, "c": 2}, strict=True)
    else:
        assert resolve({"a": 1, "c": 2}) == {"a": 1, "b": 0}


@pytest.mark.parametrize("strict", [False, True])
def test_a_masked_level_plays_the_highest_affordable_one_unless_strict(strict):
    if strict:
        message = r"action 2 of 'a' is masked: level 2 costs 2, 1.5 of its budget 2 is left"
        with pytest.raises(InvalidActionError, match=message):
            resolve({"a": 2}, strict=True, spent_by_a=0.5)
    else:
        assert resolve({"a": 2}, spent_by_a=0.5) == {"a": 1, "b": 0}
        assert resolve({"a": 2}, spent_by_a=1.5) == {"a": 0, "b": 0}


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize(
    "actions, message",
    [
        ({"a": 3}, r"action 3 of 'a' is not in Discrete\(3\)"),
        ({"a": True}, r"action True of 'a' is not in"),
        ({"a": 1.0}, r"action 1.0 of 'a' is not in"),
        ({"zed": 1}, r"'zed', which is not an agent of this env"),
        ([1, 2], r"actions must be a dict agent -> action, got list"),
    ],
)
def test_always_errors(actions, message, strict):
    with pytest.raises(InvalidActionError, match=message):
        resolve(actions, strict=strict)


def test_no_live_agent_means_reset_first():
    with pytest.raises(InvalidActionError, match=r"call reset\(\) before step\(\)"):
        resolve({}, live=())
