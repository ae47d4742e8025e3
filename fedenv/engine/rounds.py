"""The records of federated rounds: who takes part, what comes back.

:class:`Participant` (one organization's part in a round, validated against the same bounds as a
scenario's resource levels), :class:`ClientUpdate` (its trained adapter and digest) and
:class:`RoundResult` (a committed round).  The engine's settings are
:mod:`fedenv.engine.settings`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import Field

from fedenv.engine.lora import Adapter, adapter_digest
from fedenv.engine.settings import DataShare, LocalSteps
from fedenv.errors import ConfigError, NoParticipantsError, UnknownOrganizationError
from fedenv.settings import Settings

if TYPE_CHECKING:
    from fedenv.data.benchmark import BenchmarkResult


def positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


class Participant(Settings):
    """One organization taking part in a round: ``local_steps`` optimizer steps on the first
    ``ceil(data_share * n)`` of its ``n`` examples.  ``Participant(org, local_steps,
    data_share=1.0)``; a bad value raises :class:`~fedenv.errors.ConfigError` naming it."""

    org: str = Field(min_length=1, description="the organization's id")
    local_steps: LocalSteps
    data_share: DataShare = 1.0

    def __init__(self, org: str, local_steps: int, data_share: float = 1.0) -> None:
        super().__init__(org=org, local_steps=local_steps, data_share=data_share)

    def check(self) -> None:
        """Check the fields again (the engine re-checks every round)."""
        type(self).from_dict(self.model_dump(), source=f"participant {self.org!r}")


def check_participants(
    participants: Sequence[Participant], orgs: Sequence[str]
) -> list[Participant]:
    """``participants`` as a list, each checked again and known among ``orgs``, none twice."""
    participants = list(participants)
    if not participants:
        raise NoParticipantsError("a round needs at least one participant")
    seen = set()
    for participant in participants:
        if not isinstance(participant, Participant):
            raise ConfigError(
                "participants", f"expected Participant, got {type(participant).__name__}"
            )
        participant.check()
        if participant.org not in orgs:
            raise UnknownOrganizationError(participant.org, tuple(orgs))
        if participant.org in seen:
            raise ConfigError("participants", f"organization {participant.org!r} appears twice")
        seen.add(participant.org)
    return participants


@dataclass
class ClientUpdate:
    """What one organization sends back: its trained adapter and the adapter's digest."""

    org: str
    adapter: Adapter
    num_examples: int
    local_steps: int
    train_loss: float
    digest: str
    seconds: float = 0.0

    @classmethod
    def create(
        cls,
        org: str,
        adapter: Adapter,
        *,
        num_examples: int,
        local_steps: int,
        train_loss: float = float("nan"),
        seconds: float = 0.0,
    ) -> ClientUpdate:
        """An update whose ``digest`` is computed from ``adapter`` (use it for crafted updates)."""
        return cls(
            org, adapter, num_examples, local_steps, train_loss, adapter_digest(adapter), seconds
        )


@dataclass
class RoundResult:
    """One committed round: its updates, the new global digest and the benchmark around it."""

    round: int
    updates: list[ClientUpdate]
    global_digest: str
    before: BenchmarkResult | None
    after: BenchmarkResult | None
    timings: dict[str, float]
