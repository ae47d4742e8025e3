"""The scenario's unlearning: scheduled requests (``[[unlearning]]``) and how they are carried out
(``[unlearning_policy]``).

::

    [unlearning_policy]
    clawback = false            # claw back the forgotten organization's past payouts
    oracle = true               # also run `retrain`, to report each method's distance to it
    calibration_budget = 0.25   # calibrated_replay trains at most this share of retrain's steps
    mia_non_member_ratio = 4    # membership inference: unseen dialogues per member

    [[unlearning]]
    round = 2                   # applied at the start of round 2 (0-based), after rounds 0-1
    org = "skyway"
    method = "exact_replay"     # exact_replay | retrain | calibrated_replay | lora_gradient_ascent

:func:`check_unlearning` refuses, at load time and naming the key, a request for an unknown
organization, a second request for the same one, a round before any round was played or past the
episode, and a method that cannot work with ``training.aggregator`` (:data:`INCOMPATIBLE`).
Every method works under every ``[defence]``: the replays recommit what the rounds recorded
(:mod:`fedenv.unlearning.replay`).
What each method does is :mod:`fedenv.unlearning`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from pydantic import AfterValidator, Field

from fedenv.settings import Settings, field_problem, one_of

METHODS = ("exact_replay", "retrain", "calibrated_replay", "lora_gradient_ascent")
"""The unlearning methods, by name (see :mod:`fedenv.unlearning.methods`)."""

INCOMPATIBLE = {
    ("calibrated_replay", "flora"): (
        "FedEraser's calibration keeps each stored update's magnitude relative to its round's "
        "starting adapter, but flora re-seeds the adapter from every aggregate, so a replayed "
        "round starts from another adapter; use exact_replay or retrain"
    ),
}
"""(method, aggregator) pairs that cannot work, with the reason."""


def method_problem(method: str, aggregator: str) -> str | None:
    """Why ``method`` cannot work with ``aggregator`` (None when it can)."""
    if method not in METHODS:
        return f"must be one of {', '.join(map(repr, METHODS))}, got {method!r}"
    reason = INCOMPATIBLE.get((method, aggregator))
    if reason is not None:
        return f"{method!r} cannot work with aggregator {aggregator!r}: {reason}"
    return None


class UnlearningPolicy(Settings):
    """``[unlearning_policy]``: how every request of the scenario (scheduled or at run time) is
    carried out and measured."""

    clawback: bool = Field(
        False, description="the forgotten organization pays back its past payouts of the episode"
    )
    oracle: bool = Field(
        True, description="also run 'retrain' for each request, to report the distance to it"
    )
    calibration_steps: int = Field(
        1, ge=1, description="calibrated_replay: local steps of each remaining org per calibration"
    )
    calibration_interval: int = Field(
        5,
        ge=1,
        description="calibrated_replay: calibrate every n-th replayed round (FedEraser's dt) "
        "when calibration_budget allows it",
    )
    calibration_budget: float = Field(
        0.25,
        ge=0.0,
        le=1.0,
        description="calibrated_replay: its local training steps are at most this fraction of "
        "the steps retrain would run (fedenv.unlearning.calibration: fewer calibrated rounds, "
        "then fewer steps, then none)",
    )
    ascent_steps: int = Field(
        4,
        ge=1,
        description="lora_gradient_ascent: optimizer steps (each a forget and a retain batch)",
    )
    ascent_learning_rate: float = Field(
        5e-3, gt=0.0, description="lora_gradient_ascent: AdamW learning rate"
    )
    ascent_retain_weight: float = Field(
        1.0, ge=0.0, description="lora_gradient_ascent: weight of the retain (others' data) loss"
    )
    ascent_max_forget_loss: float = Field(
        6.0,
        gt=0.0,
        description="lora_gradient_ascent: the forget loss is not raised past this (nats)",
    )
    mia_non_member_ratio: int = Field(
        4,
        ge=1,
        description="membership inference: unseen dialogues per member (every dialogue the "
        "organization trained on in the episode)",
    )


class UnlearningRequest(Settings):
    """One ``[[unlearning]]`` table: forget ``org`` at the start of round ``round``."""

    round: int = Field(ge=0, description="0-based round at whose start the request is applied")
    org: str = Field(min_length=1, description="the organization to forget")
    method: Annotated[str, AfterValidator(one_of(METHODS))] = Field(
        "exact_replay",
        description="exact_replay, retrain, calibrated_replay or lora_gradient_ascent",
    )


def check_unlearning(
    requests: Sequence[UnlearningRequest],
    orgs: Sequence[str],
    max_rounds: int,
    aggregator: str,
):
    """The first problem of ``requests`` as a pydantic error naming the key (None if fine)."""
    seen: set[str] = set()
    for i, request in enumerate(requests):
        if request.org not in orgs:
            return field_problem(
                f"unlearning[{i}].org", f"unknown organization {request.org!r}; known: {list(orgs)}"
            )
        if request.org in seen:
            return field_problem(
                f"unlearning[{i}].org",
                f"{request.org!r} is already forgotten by an earlier request",
            )
        seen.add(request.org)
        if request.round < 1:
            return field_problem(
                f"unlearning[{i}].round",
                f"round 0 is before {request.org!r} could take part (requests apply at the start "
                "of their round, after the rounds before it)",
            )
        if request.round >= max_rounds:
            return field_problem(
                f"unlearning[{i}].round",
                f"must be < max_rounds ({max_rounds}), got {request.round}: it would never apply",
            )
        problem = method_problem(request.method, aggregator)
        if problem:
            return field_problem(f"unlearning[{i}].method", problem)
    return None
