"""What an unlearning method works from: the episode's rounds so far and its stored files.

:class:`EpisodeRecord` holds, per round played, who took part at which level and whose update
was accepted (from the env's :class:`~fedenv.records.RoundOutcome`\\ s), and reads the run
folder's adapter files (:mod:`fedenv.run_folder`): the base state, each round's global state and
the updates as sent.  The forgotten organization's files are erased before any method runs, so
no method can read them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from fedenv.engine.federation import Participant
from fedenv.engine.lora import Adapter
from fedenv.records import RoundOutcome
from fedenv.round import RoundPlayer
from fedenv.run_folder import adapter_path
from fedenv.unlearning.replay import StoredUpdate, load_adapter, stored_update


@dataclass(frozen=True)
class RoundRecord:
    """One round played: each participant's level, and the accepted organizations."""

    index: int
    levels: Mapping[str, int]
    accepted: tuple[str, ...]


def round_records(outcomes: Sequence[RoundOutcome]) -> list[RoundRecord]:
    """The rounds of an episode's outcomes, in order."""
    return [
        RoundRecord(
            o.round,
            {org: row.level for org, row in o.orgs.items() if row.level},
            tuple(sorted(org for org, row in o.orgs.items() if row.accepted)),
        )
        for o in outcomes
    ]


class EpisodeRecord:
    """The current episode of ``player`` (its rounds so far) with ``org`` to be forgotten, and
    the organizations ``forgotten`` before it in the episode (their updates stay out too)."""

    def __init__(
        self,
        player: RoundPlayer,
        rounds: Sequence[RoundRecord],
        org: str,
        forgotten: Sequence[str] = (),
    ) -> None:
        self.player = player
        self.engine = player.engine
        self.scenario = player.scenario
        self.run = player.run
        self.episode = player.episode
        self.rounds = list(rounds)
        self.org = org
        self.excluded = frozenset((org, *forgotten))
        accepted = [r.index for r in self.rounds if self.excluded & set(r.accepted)]
        self.first_accepted: int | None = accepted[0] if accepted else None

    # --- who took part ------------------------------------------------------------------------
    def took_part(self) -> list[int]:
        """The rounds in which ``org`` sent an update."""
        return [r.index for r in self.rounds if org_in(r, self.org)]

    def remaining(self, record: RoundRecord) -> dict[str, int]:
        """The accepted organizations of a round other than the excluded ones, with levels."""
        return {o: record.levels[o] for o in record.accepted if o not in self.excluded}

    def participant(self, org: str, level: int, local_steps: int | None = None) -> Participant:
        spec = self.scenario.level(level)
        steps = spec.local_steps if local_steps is None else local_steps
        return Participant(org, steps, spec.data_share)

    def num_examples(self, org: str, level: int) -> int:
        return self.engine.num_examples(self.participant(org, level))

    # --- files --------------------------------------------------------------------------------
    def update_file(self, round_index: int, org: str) -> str:
        return adapter_path(self.episode, round_index, org)

    def global_file(self, round_index: int) -> str:
        """The global state after round ``round_index`` (-1: the episode's base)."""
        if round_index < 0:
            return adapter_path(None, None, "base")
        return adapter_path(self.episode, round_index, "global")

    def global_after(self, round_index: int) -> Adapter:
        return load_adapter(self.run.read(self.global_file(round_index)))

    def stored(self, record: RoundRecord) -> list[StoredUpdate]:
        """The round's accepted updates other than ``org``'s, read from their files."""
        return [
            stored_update(
                o, self.run.read(self.update_file(record.index, o)), self.num_examples(o, k)
            )
            for o, k in sorted(self.remaining(record).items())
        ]

    def replay_plan(self) -> list[dict]:
        """Per round, the updates ``exact_replay`` commits: ``{"round", "updates": [{"org",
        "artifact", "num_examples"}]}`` (the certificate's recipe)."""
        return [
            {
                "round": r.index,
                "updates": [
                    {
                        "org": o,
                        "artifact": self.update_file(r.index, o),
                        "num_examples": self.num_examples(o, k),
                    }
                    for o, k in sorted(self.remaining(r).items())
                ],
            }
            for r in self.rounds
        ]


def org_in(record: RoundRecord, org: str) -> bool:
    return org in record.levels


def on_device(adapter: Adapter, like: Mapping[str, torch.Tensor]) -> Adapter:
    """``adapter`` on the device and in the dtype of ``like``'s tensors."""
    return {k: v.to(like[k].device, like[k].dtype) for k, v in adapter.items()}
