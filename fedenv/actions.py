"""What a step makes of its action dict: each live organization's resource level.

:func:`resolve_actions` checks an action dict against the env's agents, the action space and the
hard budgets (:mod:`fedenv.budgets`) before anything of the round runs.  Always an error
(:class:`InvalidActionError`): no live agent (step before ``reset()`` or after the episode),
something else than a dict, an agent the env does not have, a value outside ``Discrete(1 + R)``
(floats, strings and bools included).  The two lenient rules, and their strict counterparts:

| case                                  | default (``strict=False``)            | ``strict=True`` |
| ------------------------------------- | ------------------------------------- | --------------- |
| action for a done organization        | ignored (as ``aec_to_parallel`` does) | error           |
| a masked level (over budget)          | the highest affordable level below    | error           |

A live organization missing from the dict sits the round out (action 0).  The level an
organization actually played is its info's ``resource``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

from fedenv.budgets import Budgets
from fedenv.errors import FedenvError


class InvalidActionError(FedenvError, ValueError):
    """An action the env refuses: outside the action space, for an agent that is not in
    ``env.agents`` (strict mode, or unknown), or a masked level in strict mode."""


def resolve_actions(
    actions: Any,
    *,
    live: Sequence[str],
    possible: Sequence[str],
    space: spaces.Discrete,
    budgets: Budgets,
    strict: bool,
) -> dict[str, int]:
    """The resource level of every live organization, in ``live``'s order."""
    if not live:
        raise InvalidActionError("no live agents: call reset() before step()")
    if not isinstance(actions, Mapping):
        raise InvalidActionError(
            f"actions must be a dict agent -> action, got {type(actions).__name__}"
        )
    for agent, action in actions.items():
        if agent not in possible:
            raise InvalidActionError(
                f"action for {agent!r}, which is not an agent of this env; live agents: {live}"
            )
        if agent not in live:
            if strict:
                raise InvalidActionError(
                    f"action for {agent!r}, which is done (terminated or truncated); live "
                    f"agents: {list(live)} (strict mode; by default such actions are ignored)"
                )
            continue
        if isinstance(action, (bool, np.bool_)) or not space.contains(action):
            raise InvalidActionError(
                f"action {action!r} of {agent!r} is not in {space} (0 = sit out, "
                f"1..{space.n - 1} = resource level)"
            )
    levels = {agent: int(actions.get(agent, 0)) for agent in live}
    for agent, level in levels.items():
        mask = budgets.mask(agent)
        if mask[level]:
            continue
        if strict:
            raise InvalidActionError(
                f"action {level} of {agent!r} is masked: level {level} costs "
                f"{budgets.costs[agent][level]:g}, {budgets.left(agent):g} of its budget "
                f"{budgets.budget[agent]:g} is left (action_mask {mask.tolist()})"
            )
        levels[agent] = budgets.affordable(agent, level)
    return levels
