"""What an organization observes after each round: the fields, their bounds, the spaces and the
observation itself.

The fields and what they mean are tabled in :mod:`fedenv.fedorg`'s docstring (Observations),
the env's documentation; :data:`OBS_FIELDS` names them in order.  Scores (0..10 on the
benchmark) are divided by 10, money by the scenario's reward pool (1 if it is 0), and every
value is clipped to its field's bounds.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from gymnasium import spaces

if TYPE_CHECKING:  # torch: loaded on use
    from fedenv.data.benchmark import BenchmarkResult

_OBSERVATIONS = (  # field, low, high: see fedenv.fedorg's Observations table
    ("round_fraction", 0, 1),
    ("budget_fraction", 0, 1),
    ("last_reward", -10, 10),
    ("last_contribution", -1, 1),
    ("last_payout", 0, 1),
    ("global_score", 0, 1),
    ("own_domain_score", 0, 1),
    ("others_participation", 0, 1),
    ("acceptance_rate", 0, 1),
    ("last_level", 0, 1),
    ("channel_participation", 0, 1),
)
OBS_FIELDS = tuple(name for name, _, _ in _OBSERVATIONS)
OBS_LOW = np.array([low for _, low, _ in _OBSERVATIONS], dtype=np.float32)
OBS_HIGH = np.array([high for _, _, high in _OBSERVATIONS], dtype=np.float32)
ACTION_MASK = "action_mask"  # the infos' (and Dict observations') key, as in PettingZoo classic


@dataclass
class OrgMemory:
    """What the env remembers of one organization's episode for its observation."""

    reward: float = 0.0
    contribution: float = 0.0
    payout: float = 0.0
    level: int = 0
    submitted: int = 0
    accepted: int = 0


def observation_spaces(
    num_actions: int, num_agents: int, *, with_mask: bool
) -> tuple[spaces.Box | spaces.Dict, spaces.Box]:
    """(every agent's observation space, the state space of ``num_agents`` observations)."""
    box = spaces.Box(OBS_LOW, OBS_HIGH, dtype=np.float32)
    mask_box = spaces.Box(0, 1, (num_actions,), dtype=np.int8)
    observation = spaces.Dict({"observation": box, ACTION_MASK: mask_box}) if with_mask else box
    state = spaces.Box(
        np.tile(OBS_LOW, num_agents), np.tile(OBS_HIGH, num_agents), dtype=np.float32
    )
    return observation, state


def observation_box(
    memory: OrgMemory,
    *,
    round_fraction: float,
    budget_fraction: float,
    money_scale: float,
    scores: BenchmarkResult,
    domain: str,
    participated: Collection[str],
    others: Sequence[str],
    partners: Sequence[str],
    level_fraction: float,
) -> np.ndarray:
    """One organization's observation (:data:`OBS_FIELDS`, in order), clipped to the bounds."""
    values = (
        round_fraction,
        budget_fraction,
        memory.reward / money_scale,
        memory.contribution / 10.0,
        memory.payout / money_scale,
        scores.score / 10.0,
        scores.domains[domain].score / 10.0,
        sum(a in participated for a in others) / max(1, len(others)),
        memory.accepted / memory.submitted if memory.submitted else 1.0,
        level_fraction,
        share(participated, partners),
    )
    return np.clip(np.array(values, dtype=np.float32), OBS_LOW, OBS_HIGH)


def share(participated: Collection[str], orgs: Sequence[str]) -> float:
    """The share of ``orgs`` that took part (0 for none)."""
    return sum(o in participated for o in orgs) / len(orgs) if orgs else 0.0
