"""Which rounds ``calibrated_replay`` calibrates, and with how many steps: bounded by a budget.

``calibrated_replay`` replays the rounds from the first that accepted the forgotten
organization; in a calibrated round every remaining organization trains ``steps`` local steps
from the replayed global.  ``retrain`` would train every remaining organization its level's
``local_steps`` in each of those rounds: ``retrain_steps`` in all.  The calibrations may cost at
most ``budget_steps = floor(calibration_budget * retrain_steps)`` steps, so their training is
bounded by construction, whatever the rounds the organization took part in.

Only rounds whose replayed start can differ from the recorded one are worth calibrating: the
first replayed round starts from the state it started from when it was played, so its stored
updates are the very updates ``retrain`` trains there (same start, seeds, organizations and
levels), and a calibration could only replace them by an approximation.  The candidates are the
replayed rounds after the first, and the plan is the first that fits of:

1. wanted: every ``calibration_interval``-th candidate (the first included, FedEraser's Δt) at
   ``calibration_steps``;
2. if that costs more than the budget, fewer rounds, evenly spaced over the candidates with the
   first included (``k`` rounds at positions ``i * n // k``), from the wanted count down to
   one, each at the most steps (up to ``calibration_steps``) the budget allows;
3. if not even the first candidate fits at one step, the earliest candidate whose remaining
   organizations fit (fewer of them took part);
4. otherwise none: the replay applies the stored changes only, and ``note`` says so.

A step here is one local optimizer step of one organization (one batch), the unit of
``retrain``'s and the calibrations' training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fedenv.scenario.unlearning import UnlearningPolicy
from fedenv.unlearning.episode import EpisodeRecord, RoundRecord


@dataclass(frozen=True)
class CalibrationPlan:
    """The calibrated rounds (indices) and the steps each remaining organization trains in them."""

    rounds: tuple[int, ...]
    steps: int
    training_steps: int  # the calibrations' local steps, summed over organizations
    retrain_steps: int
    budget_steps: int
    note: str = ""

    def fields(self) -> dict:
        return {
            "calibrated_rounds": list(self.rounds),
            "calibration_steps": self.steps,
            "calibration_training_steps": self.training_steps,
            "calibration_budget_steps": self.budget_steps,
            "retrain_training_steps": self.retrain_steps,
            **({"calibration_note": self.note} if self.note else {}),
        }


def replayed_rounds(record: EpisodeRecord) -> list[RoundRecord]:
    """The rounds ``retrain`` and ``calibrated_replay`` rerun: from the first that accepted an
    excluded organization, those with remaining accepted organizations."""
    first = record.first_accepted
    if first is None:
        return []
    return [r for r in record.rounds if r.index >= first and record.remaining(r)]


def retrain_steps(record: EpisodeRecord) -> int:
    """The local steps ``retrain`` trains: each remaining organization's level's, per round."""
    return sum(
        record.scenario.level(k).local_steps
        for r in replayed_rounds(record)
        for k in record.remaining(r).values()
    )


def calibration_plan(record: EpisodeRecord, policy: UnlearningPolicy) -> CalibrationPlan:
    """The calibrations of ``calibrated_replay`` on ``record`` under ``policy`` (module doc)."""
    rounds = replayed_rounds(record)
    total = retrain_steps(record)
    budget = math.floor(policy.calibration_budget * total + 1e-9)
    candidates = rounds[1:]  # the first replayed round starts as it was played (module doc)
    orgs = [len(record.remaining(r)) for r in candidates]

    def plan(positions: list[int], steps: int, note: str = "") -> CalibrationPlan:
        cost = steps * sum(orgs[p] for p in positions)
        return CalibrationPlan(
            tuple(candidates[p].index for p in positions), steps, cost, total, budget, note
        )

    if not rounds:
        return plan([], 0, "nothing to replay: the organization was never accepted")
    if not candidates:
        return plan(
            [],
            0,
            f"only round {rounds[0].index} is replayed, from the state it was played from: its "
            "stored updates are retrain's, nothing to calibrate",
        )
    n = len(candidates)
    wanted = list(range(0, n, policy.calibration_interval))
    for k in range(len(wanted), 0, -1):
        positions = wanted if k == len(wanted) else [i * n // k for i in range(k)]
        per_step = sum(orgs[p] for p in positions)
        steps = min(policy.calibration_steps, budget // per_step)
        if steps >= 1:
            reduced = k < len(wanted) or steps < policy.calibration_steps
            note = (
                f"calibration budget ({budget} of {total} steps) allows {k} of the "
                f"{len(wanted)} wanted rounds at {steps} step(s)"
                if reduced
                else ""
            )
            return plan(positions, steps, note)
    fits = [p for p in range(n) if orgs[p] <= budget]
    if fits:
        return plan(
            fits[:1],
            1,
            f"calibration budget ({budget} of {total} steps) is too small for round "
            f"{candidates[0].index} ({orgs[0]} organizations): round "
            f"{candidates[fits[0]].index} calibrated instead",
        )
    return plan(
        [],
        0,
        f"calibration budget ({budget} of {total} steps) allows no calibration step: "
        "replayed with the stored changes only",
    )
